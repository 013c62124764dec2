/* vkllm run: one completion, streamed as it is made; speeds on stderr at the end. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "model/context.h"
#include "options.h"

static const char usage_text[] =
    "usage: vkllm run [-m MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
    "                 [--repeat-penalty R] [--repeat-last-n N] [--seed S] [--ctx N] [--kv TYPE]\n"
    "                 [--kv-k TYPE] [--kv-v TYPE] [--kv-rotate on|off] [--kv-center on|off] [--device INDEX|NAME]\n"
    "                 [--threads N]\n"
    "                 [--lookup [--lookup-ngram N]] [--draft D.gguf] [--draft-max K] [--draft-min-p P]\n"
    "                 [--no-adaptive] [--medusa HEADS.gguf [--medusa-tree SPEC]]\n"
    "  --kv (K and V), --kv-k, --kv-v: KV cache types f16 (default), f32, q8_0, q4_0; --kv-rotate off: no\n"
    "  Hadamard rotation of quantized keys; --kv-center off: quantized keys not stored relative to the model's mean key\n"
    "  --temp 0 is greedy decoding (argmax on the GPU); --device picks a device of 'vkllm devices'.\n"
    "  --threads N: threads of a CPU device (lavapipe): 1 none but the submitting one, 0 the driver's default\n"
    "  (one per core); default: 1 for small models, else 0 (VKLLM_CPU_THREADS overrides)\n"
    "  Speculative decoding (same text greedily, same distribution when sampling): --lookup drafts what followed\n"
    "  the last earlier occurrence of the last N tokens (default 3); --draft drafts with a smaller model of the same\n"
    "  vocabulary, up to K tokens (default 7) while its top probability stays >= P (default 0); --medusa drafts\n"
    "  with Medusa heads trained for the model (vkllm medusa-train), one token per head, or a tree of their top\n"
    "  candidates (--medusa-tree default, or paths of ranks like 0,1,0.0,0.1,0.0.0) verified in one pass.\n";

static void usage(FILE *out) { fputs(usage_text, out); }

typedef struct printer {
    bool at_start; /* nothing printed yet: the prompt was empty */
} printer;

static int print_piece(const char *piece, size_t len, void *user)
{
    printer *p = user;
    /* SentencePiece pieces carry the space before a word; after an empty prompt the first one has nothing
     * to separate, and the text would start with a stray space. */
    if (p->at_start && len && piece[0] == ' ') piece++, len--;
    if (len) p->at_start = false;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 1;
}

int cli_run(int argc, char **argv)
{
    cli_options o;
    char err[256];
    cli_parse_result r = cli_parse_run_options(argc, argv, &o, err, sizeof err);
    if (r != CLI_PARSE_OK) return cli_parse_exit("run", r, err, usage);
    if (!o.prompt) {
        fprintf(stderr, "vkllm run: -p PROMPT is required\n%s", usage_text);
        return 2;
    }
    vkllm_model *model;
    vkllm_context *ctx;
    if (cli_open_model("run", &o, &model, &ctx) != 0) return 1;
    vkllm_model *draft_model = NULL;
    vkllm_context *draft_ctx = NULL;
    if (cli_open_speculation("run", &o.spec, o.device, ctx->params.n_ctx, ctx, &draft_model, &draft_ctx) != 0) {
        vkllm_context_free(ctx);
        vkllm_model_free(model);
        return 1;
    }
    /* The prompt must fit before it is printed: a long one would otherwise scroll past before the error. */
    size_t n_prompt = 0;
    vkllm_status st = vkllm_tokenize(model, o.prompt, strlen(o.prompt), 1, 0, NULL, 0, &n_prompt);
    if (st == VKLLM_ERROR_BUFFER_TOO_SMALL) st = VKLLM_OK; /* only the count was asked for */
    if (st == VKLLM_OK && n_prompt >= ctx->params.n_ctx) {
        fprintf(stderr, "vkllm run: %s: the prompt is %zu tokens and the context holds %u (--ctx; the prompt and "
                "at least one generated token must fit)\n", vkllm_status_name(VKLLM_ERROR_CONTEXT_FULL), n_prompt,
                ctx->params.n_ctx);
        vkllm_context_free(ctx);
        vkllm_context_free(draft_ctx);
        vkllm_model_free(draft_model);
        vkllm_model_free(model);
        return 1;
    }
    vkllm_generate_stats stats = {0};
    printer p = {.at_start = !*o.prompt};
    if (st == VKLLM_OK) {
        fputs(o.prompt, stdout);
        fflush(stdout); /* the prompt shows before generation starts, even when stdout is a pipe */
        st = vkllm_generate(ctx, o.prompt, 0, (uint32_t)o.n_predict, &o.sampling, print_piece, &p, &stats);
        fputc('\n', stdout);
    }
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm run: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    } else {
        fprintf(stderr, "\nprompt: %u tokens in %.1f ms (%.1f tokens/s)\n", stats.n_prompt, stats.prompt_ms,
                stats.prompt_ms > 0 ? 1e3 * stats.n_prompt / stats.prompt_ms : 0.0);
        fprintf(stderr, "generation: %u tokens in %.1f ms (%.1f tokens/s)\n", stats.n_generated, stats.generate_ms,
                stats.generate_ms > 0 ? 1e3 * stats.n_decode / stats.generate_ms : 0.0);
        if (cli_spec_on(&o.spec)) cli_print_speculation(&stats);
    }
    vkllm_context_free(ctx);
    vkllm_context_free(draft_ctx);
    vkllm_model_free(draft_model);
    vkllm_model_free(model);
    return st == VKLLM_OK ? 0 : 1;
}
