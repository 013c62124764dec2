/* vkllm_generate_begin / vkllm_generate_step: vkllm_generate cut into steps that never block on the GPU, for a
 * render loop that calls one step per frame.  Each step polls the pass in flight (which, under max_submit_us, also
 * submits its next part), and once it finished takes its token, emits the text and submits the next pass. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "sampling/sampling.h"

struct generate_state {
    bool active, finished;
    sampler *smp;                  /* NULL: greedy, argmax on the GPU */
    vkllm_token *prompt;
    uint32_t n_prompt, n_predict;
    uint32_t evaluated;            /* prompt positions submitted so far (from the kept prefix on) */
    int32_t *pos, *seq;            /* [n_batch] */
    int8_t *want;                  /* [n_batch] */
    bool in_flight;                /* a pass of tokens [flight_start, +flight_n) is pending */
    uint64_t value;
    uint32_t flight_start, flight_n;
    bool flight_yields;            /* its last row gives the next token */
    const vkllm_token *flight_tokens;
    vkllm_token input;             /* the generated token being evaluated */
    bool have_next;
    vkllm_token next;
    uint32_t pos_next;             /* position of the next generated token's evaluation */
    vkllm_generate_stats stats;
    double begun_ms, first_token_ms;
    char *text;
    size_t len, cap;
};

void generate_state_free(generate_state *g)
{
    if (!g) return;
    sampler_free(g->smp);
    free(g->prompt), free(g->pos), free(g->seq), free(g->want), free(g->text);
    free(g);
}

static vkllm_status append(generate_state *g, const char *piece, size_t n)
{
    if (g->len + n > g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 256;
        while (cap < g->len + n) cap *= 2;
        char *grown = realloc(g->text, cap);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vkllm_generate_step: text of %zu bytes", cap);
        g->text = grown;
        g->cap = cap;
    }
    memcpy(g->text + g->len, piece, n);
    g->len += n;
    return VKLLM_OK;
}

vkllm_status vkllm_generate_begin(vkllm_context *ctx, const char *prompt, int parse_special, uint32_t n_predict,
                                  const vkllm_sampling *sampling)
{
    if (!ctx || !prompt) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_generate_begin: context or prompt is NULL");
    if (ctx->pending.active) VKLLM_TRY(context_wait(ctx, ctx->pending.value)); /* a generation abandoned mid-pass */
    generate_state_free(ctx->gen);
    ctx->gen = NULL;
    vkllm_sampling s = sampling ? *sampling : vkllm_sampling_default();
    size_t n = 0, len = strlen(prompt);
    vkllm_status st = vkllm_tokenize(ctx->model, prompt, len, 1, parse_special, NULL, 0, &n);
    if (st != VKLLM_OK && st != VKLLM_ERROR_BUFFER_TOO_SMALL) return st;
    if (n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_generate_begin: the prompt has no tokens");
    if (n >= ctx->params.n_ctx)
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "the prompt is %zu tokens; the context holds %u", n, ctx->params.n_ctx);
    generate_state *g = calloc(1, sizeof *g);
    uint32_t nb = ctx->params.n_batch;
    if (!g || !(g->prompt = malloc(n * sizeof *g->prompt)) || !(g->pos = malloc(nb * sizeof *g->pos)) ||
        !(g->seq = calloc(nb, sizeof *g->seq)) || !(g->want = calloc(nb, 1))) {
        generate_state_free(g);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vkllm_generate_begin: %zu prompt tokens", n);
    }
    st = vkllm_tokenize(ctx->model, prompt, len, 1, parse_special, g->prompt, n, &n);
    if (st == VKLLM_OK && s.temperature > 0) st = sampler_create(&s, (int32_t)ctx->model->cfg.n_vocab, &g->smp);
    for (size_t i = 0; st == VKLLM_OK && g->smp && i < n; i++) st = sampler_accept(g->smp, g->prompt[i]);
    if (st != VKLLM_OK) {
        generate_state_free(g);
        return st;
    }
    g->n_prompt = (uint32_t)n;
    g->n_predict = n_predict;
    g->stats.n_prompt = (uint32_t)n;
    /* Keys of a shared prefix are kept; the last prompt token is always evaluated for its logits. */
    uint32_t keep = 0;
    while (keep < ctx->n_history && keep + 1 < g->n_prompt && ctx->history[keep] == g->prompt[keep]) keep++;
    st = vkllm_seq_truncate(ctx, 0, keep);
    if (st != VKLLM_OK) {
        generate_state_free(g);
        return st;
    }
    g->evaluated = keep;
    g->pos_next = g->n_prompt;
    g->active = true;
    g->begun_ms = vkllm_log_clock_ms();
    ctx->gen = g;
    return VKLLM_OK;
}

/* Submits tokens [start, start + n) of sequence 0; yields: the last row's token is wanted. */
static vkllm_status submit(vkllm_context *ctx, generate_state *g, const vkllm_token *tokens, uint32_t n, uint32_t start,
                           bool yields)
{
    for (uint32_t i = 0; i < n; i++) g->pos[i] = (int32_t)(start + i);
    g->want[n - 1] = yields;
    vkllm_batch b = {n, tokens, g->pos, g->seq, g->want};
    recording *rec = NULL;
    uint32_t n_out = 0;
    ctx->n_history = start; /* the history past start is not in the cache until this pass finished */
    vkllm_status st = context_stage_batch(ctx, &b, yields && !g->smp, false, &rec, &n_out);
    if (st == VKLLM_OK) st = context_submit(ctx, rec, yields && !g->smp, n_out, &g->value);
    g->want[n - 1] = 0;
    if (st != VKLLM_OK) return st;
    g->in_flight = true;
    g->flight_start = start;
    g->flight_n = n;
    g->flight_yields = yields;
    g->flight_tokens = tokens;
    return VKLLM_OK;
}

/* The pass in flight finished: its tokens join the history, its last row gives the next token. */
static vkllm_status landed(vkllm_context *ctx, generate_state *g)
{
    g->in_flight = false;
    memcpy(ctx->history + g->flight_start, g->flight_tokens, g->flight_n * sizeof *g->flight_tokens);
    ctx->n_history = g->flight_start + g->flight_n;
    if (!g->flight_yields) return VKLLM_OK;
    if (g->smp) VKLLM_TRY(sampler_sample(g->smp, vkllm_get_logits(ctx, 0), &g->next));
    else g->next = ctx->greedy_tokens[0];
    g->have_next = true;
    if (g->first_token_ms == 0) {
        g->first_token_ms = vkllm_log_clock_ms();
        g->stats.prompt_ms = g->first_token_ms - g->begun_ms;
    }
    return VKLLM_OK;
}

/* Takes the next token (text, stop conditions) and submits its evaluation. */
static vkllm_status advance(vkllm_context *ctx, generate_state *g, vkllm_generate_step_result *step)
{
    if (g->evaluated < g->n_prompt) {
        uint32_t n = g->n_prompt - g->evaluated < ctx->params.n_batch ? g->n_prompt - g->evaluated : ctx->params.n_batch;
        uint32_t start = g->evaluated;
        g->evaluated += n;
        return submit(ctx, g, g->prompt + start, n, start, g->evaluated == g->n_prompt);
    }
    if (!g->have_next) return VKLLM_OK;
    g->have_next = false;
    if (vkllm_token_is_eog(ctx->model, g->next)) {
        g->stats.stopped_by_eog = 1;
        g->finished = true;
        return VKLLM_OK;
    }
    char piece[256];
    size_t n = 0;
    VKLLM_TRY(vkllm_token_to_piece(ctx->model, g->next, piece, sizeof piece, &n));
    VKLLM_TRY(append(g, piece, n));
    step->n_tokens++;
    g->stats.n_generated++;
    if (g->smp) VKLLM_TRY(sampler_accept(g->smp, g->next));
    if (g->stats.n_generated >= g->n_predict) {
        g->finished = true;
        return VKLLM_OK;
    }
    if (g->pos_next >= ctx->params.n_ctx) {
        g->finished = true;
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "the context of %u positions is full after %u prompt and %u "
                          "generated tokens, short of the %u asked for (a larger n_ctx holds more)", ctx->params.n_ctx,
                          g->n_prompt, g->stats.n_generated, g->n_predict);
    }
    g->input = g->next;
    g->stats.n_decode++;
    return submit(ctx, g, &g->input, 1, g->pos_next++, true);
}

vkllm_status vkllm_generate_step(vkllm_context *ctx, uint32_t budget_us, vkllm_generate_step_result *step)
{
    if (!ctx || !step) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_generate_step: context or step is NULL");
    memset(step, 0, sizeof *step);
    step->text = "";
    generate_state *g = ctx->gen;
    if (!g || !g->active)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_generate_step: no generation begun on this context "
                          "(vkllm_generate_begin)");
    double deadline = vkllm_log_clock_ms() + budget_us * 1e-3;
    g->len = 0;
    vkllm_status st = VKLLM_OK;
    while (st == VKLLM_OK && !g->finished) {
        if (g->in_flight) {
            bool done = false;
            st = context_poll(ctx, g->value, &done);
            if (st != VKLLM_OK) break;
            if (done) st = landed(ctx, g);
        }
        if (st == VKLLM_OK && !g->in_flight) st = advance(ctx, g, step);
        if (st != VKLLM_OK || g->finished) break;
        if (vkllm_log_clock_ms() >= deadline) break;
        struct timespec nap = {0, 50000}; /* the GPU is still at it: 50 us before the next look */
        nanosleep(&nap, NULL);
    }
    if (g->first_token_ms > 0) g->stats.generate_ms = vkllm_log_clock_ms() - g->first_token_ms;
    if (st != VKLLM_OK || g->finished) {
        g->active = false;
        step->done = 1;
        vkllm_log(VKLLM_LOG_INFO, "generate (steps): %u tokens, prompt %.1f ms, generation %.1f ms%s",
                  g->stats.n_generated, g->stats.prompt_ms, g->stats.generate_ms,
                  g->stats.stopped_by_eog ? " (end of generation token)" : "");
    }
    step->text = g->len ? g->text : "";
    step->len = g->len;
    step->stats = g->stats;
    return st;
}
