/* vkllm_generate: prompt in chunks of n_batch, then one token per forward pass, streamed as text.  Greedy
 * decoding samples on the GPU (only the token id comes back); other settings read one row of logits and
 * run the CPU sampler chain. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "sampling/sampling.h"
#include "speculative/spec.h"

/* The per-token arrays of a batch of up to n_batch tokens of sequence 0, allocated once per generation. */
typedef struct batch_arrays {
    int32_t *pos;  /* [n_batch] */
    int32_t *seq;  /* [n_batch], all 0 */
    int8_t *want;  /* [n_batch], all 0 between calls */
} batch_arrays;

static vkllm_status batch_arrays_create(uint32_t n_batch, batch_arrays *a)
{
    a->pos = malloc(n_batch * sizeof *a->pos);
    a->seq = calloc(n_batch, sizeof *a->seq);
    a->want = calloc(n_batch, 1);
    if (a->pos && a->seq && a->want) return VKLLM_OK;
    return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "batch arrays for %u tokens", n_batch);
}

static void batch_arrays_free(batch_arrays *a)
{
    free(a->pos), free(a->seq), free(a->want);
}

/* Evaluates tokens at positions start.. of sequence 0 (recording them in the history); the last one yields
 * the next token. */
static vkllm_status eval(vkllm_context *ctx, batch_arrays *a, const vkllm_token *tokens, uint32_t n, uint32_t start,
                         sampler *smp, vkllm_token *next)
{
    int32_t *pos = a->pos, *seq = a->seq;
    int8_t *want = a->want;
    vkllm_status st = VKLLM_OK;
    for (uint32_t done = 0; done < n && st == VKLLM_OK;) {
        uint32_t chunk = n - done < ctx->params.n_batch ? n - done : ctx->params.n_batch;
        for (uint32_t i = 0; i < chunk; i++) pos[i] = (int32_t)(start + done + i);
        bool last = done + chunk == n;
        want[chunk - 1] = last;
        vkllm_batch b = {chunk, tokens + done, pos, seq, want};
        if (!last) st = context_decode(ctx, &b, false, NULL);
        else if (!smp) st = context_decode(ctx, &b, true, next);
        else if ((st = context_decode(ctx, &b, false, NULL)) == VKLLM_OK)
            st = sampler_sample(smp, vkllm_get_logits(ctx, 0), next);
        want[chunk - 1] = 0;
        if (st == VKLLM_OK) memcpy(ctx->history + start + done, tokens + done, chunk * sizeof *tokens);
        ctx->n_history = st == VKLLM_OK ? start + done + chunk : start + done;
        done += chunk;
    }
    return st;
}

vkllm_status generate_emit(vkllm_context *ctx, vkllm_token token, vkllm_piece_fn on_piece, void *user, bool *stop)
{
    char piece[256];
    size_t n = 0;
    VKLLM_TRY(vkllm_token_to_piece(ctx->model, token, piece, sizeof piece, &n));
    if (on_piece && !on_piece(piece, n, user)) *stop = true;
    return VKLLM_OK;
}

static vkllm_status generate(vkllm_context *ctx, batch_arrays *a, const vkllm_token *prompt, uint32_t n_prompt,
                             uint32_t n_predict, sampler *smp, vkllm_piece_fn on_piece, void *user,
                             vkllm_generate_stats *stats)
{
    double t0 = vkllm_log_clock_ms();
    vkllm_token next;
    for (uint32_t i = 0; smp && i < n_prompt; i++) VKLLM_TRY(sampler_accept(smp, prompt[i]));
    /* Keys of a shared prefix are kept; the last prompt token is always evaluated for its logits. */
    uint32_t keep = 0;
    while (keep < ctx->n_history && keep + 1 < n_prompt && ctx->history[keep] == prompt[keep]) keep++;
    VKLLM_TRY(vkllm_seq_truncate(ctx, 0, keep));
    vkllm_log(VKLLM_LOG_INFO, "generate: prompt of %u tokens (%u kept from the last call), in batches of up to %u",
              n_prompt, keep, ctx->params.n_batch);
    VKLLM_TRY(eval(ctx, a, prompt + keep, n_prompt - keep, keep, smp, &next));
    double t1 = vkllm_log_clock_ms();
    stats->prompt_ms = t1 - t0;
    vkllm_log(VKLLM_LOG_INFO, "generate: prompt evaluated in %.1f ms; generating up to %u tokens", stats->prompt_ms,
              n_predict);
    if (ctx->spec && ctx->spec->tree)
        return spec_tree_generate(ctx, next, n_prompt, n_predict, smp, on_piece, user, stats, t1);
    if (ctx->spec) return spec_generate(ctx, next, n_prompt, n_predict, smp, on_piece, user, stats, t1);
    uint32_t pos = n_prompt;
    bool stop = false;
    while (stats->n_generated < n_predict && !stop) {
        if (vkllm_token_is_eog(ctx->model, next)) {
            stats->stopped_by_eog = 1;
            break;
        }
        VKLLM_TRY(generate_emit(ctx, next, on_piece, user, &stop));
        stats->n_generated++;
        if (smp) VKLLM_TRY(sampler_accept(smp, next));
        if (stop || stats->n_generated == n_predict) break;
        if (pos >= ctx->params.n_ctx) {
            /* The text so far was streamed; the caller learns why it ends short of n_predict. */
            stats->generate_ms = vkllm_log_clock_ms() - t1;
            return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "the context of %u positions is full after %u prompt and %u "
                              "generated tokens, short of the %u asked for (a larger n_ctx holds more)",
                              ctx->params.n_ctx, n_prompt, stats->n_generated, n_predict);
        }
        vkllm_token input = next;
        VKLLM_TRY(eval(ctx, a, &input, 1, pos++, smp, &next));
        stats->n_decode++;
    }
    stats->generate_ms = vkllm_log_clock_ms() - t1;
    vkllm_log(VKLLM_LOG_INFO, "generate: %u tokens in %.1f ms%s", stats->n_generated, stats->generate_ms,
              stats->stopped_by_eog ? " (end of generation token)" : "");
    return VKLLM_OK;
}

vkllm_status vkllm_generate(vkllm_context *ctx, const char *prompt, int parse_special, uint32_t n_predict,
                            const vkllm_sampling *sampling, vkllm_piece_fn on_piece, void *user,
                            vkllm_generate_stats *stats_out)
{
    if (!ctx || !prompt) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_generate: context or prompt is NULL");
    generate_state_free(ctx->gen); /* a step-wise generation (vkllm_generate_begin) ends */
    ctx->gen = NULL;
    vkllm_sampling s = sampling ? *sampling : vkllm_sampling_default();
    vkllm_generate_stats stats = {0};
    size_t n = 0, len = strlen(prompt);
    vkllm_status st = vkllm_tokenize(ctx->model, prompt, len, 1, parse_special, NULL, 0, &n);
    if (st != VKLLM_OK && st != VKLLM_ERROR_BUFFER_TOO_SMALL) return st;
    if (n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_generate: the prompt has no tokens");
    if (n >= ctx->params.n_ctx)
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "the prompt is %zu tokens; the context holds %u", n, ctx->params.n_ctx);
    vkllm_token *tokens = malloc(n * sizeof *tokens);
    if (!tokens) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "prompt tokens");
    st = vkllm_tokenize(ctx->model, prompt, len, 1, parse_special, tokens, n, &n);
    sampler *smp = NULL;
    if (st == VKLLM_OK && s.temperature > 0) {
        st = sampler_create(&s, (int32_t)ctx->model->cfg.n_vocab, &smp);
    }
    stats.n_prompt = (uint32_t)n;
    batch_arrays arrays = {0};
    if (st == VKLLM_OK) st = batch_arrays_create(ctx->params.n_batch, &arrays);
    if (st == VKLLM_OK) st = generate(ctx, &arrays, tokens, (uint32_t)n, n_predict, smp, on_piece, user, &stats);
    batch_arrays_free(&arrays);
    sampler_free(smp);
    free(tokens);
    if (stats_out) *stats_out = stats;
    return st;
}
