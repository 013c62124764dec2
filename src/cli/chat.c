/* vkllm chat: an interactive conversation.  Each turn re-sends the whole conversation through the chat
 * template; vkllm_generate keeps the cached prefix, so only the new text is processed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model/context.h"
#include "options.h"

static const char usage_text[] =
    "usage: vkllm chat [-m MODEL] [--template llama2|llama3|chatml|zephyr] [--system TEXT] [-n N]\n"
    "                  [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--ctx N] [--kv TYPE]\n"
    "                  [--kv-k TYPE] [--kv-v TYPE]   (KV cache types: f16, f32, q8_0, q4_0)\n"
    "                  [--kv-rotate on|off] [--kv-center on|off]   (quantized keys, as run's)\n"
    "                  [--device INDEX|NAME] [--lookup [--lookup-ngram N]] [--draft D.gguf] [--draft-max K]\n"
    "                  [--draft-min-p P] [--no-adaptive] [--medusa HEADS.gguf] [--threads N (as run's)]\n"
    "  Type a message and press enter; an empty line or end of input ends the chat.\n";

typedef struct reply {
    char *text;
    size_t len, cap;
} reply;

static void usage(FILE *out) { fputs(usage_text, out); }

static int collect(const char *piece, size_t len, void *user)
{
    reply *r = user;
    if (r->len + len + 1 > r->cap) {
        size_t cap = (r->cap + len + 1) * 2;
        char *grown = realloc(r->text, cap);
        if (!grown) return 0;
        r->text = grown;
        r->cap = cap;
    }
    memcpy(r->text + r->len, piece, len);
    r->len += len;
    r->text[r->len] = '\0';
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 1;
}

typedef struct conversation {
    vkllm_chat_message *messages;
    char **owned; /* contents to free */
    size_t n, cap;
} conversation;

static int add(conversation *c, const char *role, char *content)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        vkllm_chat_message *m = realloc(c->messages, cap * sizeof *m);
        if (!m) return -1;
        c->messages = m;
        char **o = realloc(c->owned, cap * sizeof *o);
        if (!o) return -1;
        c->owned = o;
        c->cap = cap;
    }
    c->messages[c->n] = (vkllm_chat_message){role, content};
    c->owned[c->n++] = content;
    return 0;
}

static int turn(vkllm_model *model, vkllm_context *ctx, const cli_options *o, conversation *c)
{
    char *prompt = NULL;
    vkllm_status st = vkllm_chat_format(model, o->chat_template, c->messages, c->n, 1, &prompt);
    reply r = {0};
    vkllm_generate_stats stats;
    if (st == VKLLM_OK) st = vkllm_generate(ctx, prompt, 1, (uint32_t)o->n_predict, &o->sampling, collect, &r, &stats);
    vkllm_free(prompt);
    printf("\n");
    fflush(stdout);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm chat: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        free(r.text);
        return -1;
    }
    fprintf(stderr, "[%u prompt tokens, %u generated, %.1f tokens/s]\n", stats.n_prompt, stats.n_generated,
            stats.generate_ms > 0 ? 1e3 * stats.n_decode / stats.generate_ms : 0.0);
    if (cli_spec_on(&o->spec)) cli_print_speculation(&stats);
    char *content = r.text ? r.text : strdup("");
    if (!content || add(c, "assistant", content) != 0) {
        free(content);
        return -1;
    }
    return 0;
}

int cli_chat(int argc, char **argv)
{
    cli_options o;
    char err[256];
    cli_parse_result r = cli_parse_run_options(argc, argv, &o, err, sizeof err);
    if (r != CLI_PARSE_OK) return cli_parse_exit("chat", r, err, usage);
    vkllm_model *model;
    vkllm_context *ctx;
    if (cli_open_model("chat", &o, &model, &ctx) != 0) return 1;
    vkllm_status st = VKLLM_OK;
    vkllm_model *draft_model = NULL;
    vkllm_context *draft_ctx = NULL;
    if (cli_open_speculation("chat", &o.spec, o.device, ctx->params.n_ctx, ctx, &draft_model, &draft_ctx) != 0)
        st = VKLLM_ERROR_INVALID_ARGUMENT; /* printed */
    if (!vkllm_chat_template_name(model, o.chat_template)) {
        fprintf(stderr, "vkllm chat: %s; pass --template llama2|llama3|chatml|zephyr\n",
                o.chat_template ? "unknown --template" : "the model has no chat template vkllm knows");
        st = VKLLM_ERROR_UNSUPPORTED;
    }
    conversation c = {0};
    if (st == VKLLM_OK && o.system && add(&c, "system", strdup(o.system)) != 0) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    if (st == VKLLM_OK) fprintf(stderr, "chat template: %s\n", vkllm_chat_template_name(model, o.chat_template));
    /* A whole line however long: a fixed buffer would split a long message into several turns. */
    char *line = NULL;
    size_t line_cap = 0;
    while (st == VKLLM_OK) {
        printf("> ");
        fflush(stdout);
        if (getline(&line, &line_cap, stdin) < 0) break;
        line[strcspn(line, "\r\n")] = '\0';
        if (!*line) break;
        char *text = strdup(line);
        if (!text || add(&c, "user", text) != 0) {
            free(text);
            st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        } else if (turn(model, ctx, &o, &c) != 0) {
            st = VKLLM_ERROR_INVALID_ARGUMENT; /* turn printed why */
        }
    }
    free(line);
    for (size_t i = 0; i < c.n; i++) free(c.owned[i]);
    free(c.messages);
    free(c.owned);
    vkllm_context_free(ctx);
    vkllm_context_free(draft_ctx);
    vkllm_model_free(draft_model);
    vkllm_model_free(model);
    return st == VKLLM_OK ? 0 : 1;
}
