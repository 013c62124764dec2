/* One forward pass of a batch: validate it, map KV pages, stage the inputs, replay (or record) the
 * sequence for its shape, submit once, read back logits or argmax ids. */
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "runtime/error.h"
#include "runtime/log.h"

uint32_t context_bucket(const vkllm_context *ctx, uint32_t need)
{
    uint32_t b = 256;
    while (b < need) b *= 2;
    return b < ctx->params.n_ctx ? b : ctx->params.n_ctx;
}

static vkllm_status validate(vkllm_context *ctx, const vkllm_batch *b, uint32_t *n_out, uint32_t *max_context)
{
    const vkllm_context_params *p = &ctx->params;
    if (!b || b->n_tokens == 0 || !b->tokens || !b->pos || !b->seq)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: empty batch or missing arrays");
    if (b->n_tokens > p->n_batch)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: %u tokens, the context's n_batch is %u",
                          b->n_tokens, p->n_batch);
    *n_out = 0;
    *max_context = 1;
    for (uint32_t i = 0; i < b->n_tokens; i++) {
        if (b->tokens[i] < 0 || (uint32_t)b->tokens[i] >= ctx->model->cfg.n_vocab)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: token %d at %u is outside the vocabulary of %u",
                              b->tokens[i], i, ctx->model->cfg.n_vocab);
        if (b->seq[i] < 0 || (uint32_t)b->seq[i] >= p->n_seq_max)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: sequence %d at %u (n_seq_max %u)", b->seq[i],
                              i, p->n_seq_max);
        if (b->pos[i] < 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: position %d at %u", b->pos[i], i);
        if ((uint32_t)b->pos[i] >= p->n_ctx)
            return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "position %d of sequence %d does not fit the context of %u tokens",
                              b->pos[i], b->seq[i], p->n_ctx);
        if ((uint32_t)b->pos[i] + 1 > *max_context) *max_context = (uint32_t)b->pos[i] + 1;
        if (!b->want_logits || b->want_logits[i]) (*n_out)++;
    }
    if (*n_out > p->n_outputs_max)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: %u rows want logits, n_outputs_max is %u", *n_out,
                          p->n_outputs_max);
    return VKLLM_OK;
}

/* Positions must continue each sequence: a position past the cached length leaves a hole. */
static vkllm_status map_pages(vkllm_context *ctx, const vkllm_batch *b)
{
    uint32_t *len = ctx->next_len;
    memcpy(len, ctx->pages->seq_len, ctx->params.n_seq_max * sizeof *len);
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; i < b->n_tokens && st == VKLLM_OK; i++) {
        uint32_t s = (uint32_t)b->seq[i], pos = (uint32_t)b->pos[i];
        if (pos > len[s])
            st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: sequence %u holds %u positions; position %u "
                            "would leave a gap", s, len[s], pos);
        else if (pos == len[s])
            len[s]++;
    }
    for (uint32_t s = 0; s < ctx->params.n_seq_max && st == VKLLM_OK; s++) st = kv_pages_grow(ctx->pages, s, len[s]);
    return st;
}

static void stage(vkllm_context *ctx, const vkllm_batch *b)
{
    uint32_t out = 0;
    for (uint32_t i = 0; i < b->n_tokens; i++) {
        ctx->in.ids[i] = b->tokens[i];
        ctx->in.tokens[2 * i] = b->seq[i];
        ctx->in.tokens[2 * i + 1] = b->pos[i];
        if (!b->want_logits || b->want_logits[i]) ctx->in.out_rows[out++] = (int32_t)i;
    }
    memcpy(ctx->in.page_table, ctx->pages->page_table,
           sizeof(int32_t) * ctx->params.n_seq_max * ctx->kv.max_pages_per_seq);
}

static bool same_shape(const forward_shape *a, const forward_shape *b)
{
    return a->n_tokens == b->n_tokens && a->n_out == b->n_out && a->max_context == b->max_context &&
           a->greedy == b->greedy && a->invariant == b->invariant;
}

/* The recorded sequence of this shape, recording it (in the least recently used slot) if needed. */
static vkllm_status recording_for(vkllm_context *ctx, const forward_shape *shape, vkr_sequence **out)
{
    recording *slot = &ctx->recordings[0];
    for (int i = 0; i < CONTEXT_MAX_RECORDINGS; i++) {
        recording *r = &ctx->recordings[i];
        if (r->seq && same_shape(&r->shape, shape)) {
            r->last_used = ++ctx->clock;
            *out = r->seq;
            return VKLLM_OK;
        }
        if (!r->seq || r->last_used < slot->last_used) slot = r;
    }
    if (!slot->seq) VKLLM_TRY(vkr_sequence_create(ctx->model->dev, &slot->seq));
    slot->shape = (forward_shape){0};
    uint32_t built_before, built_after;
    double seconds_before, seconds_after, started = vkllm_log_clock();
    vkr_pipeline_stats(ctx->model->dev, &built_before, &seconds_before);
    vkllm_status st = forward_record(ctx, slot->seq, shape);
    if (st != VKLLM_OK) return st;
    char label[64];
    snprintf(label, sizeof label, "forward of %u tokens (%u out, context %u%s%s)", shape->n_tokens, shape->n_out,
             shape->max_context, shape->greedy ? ", greedy" : "", shape->invariant ? ", invariant" : "");
    vkr_sequence_set_label(slot->seq, label);
    vkr_pipeline_stats(ctx->model->dev, &built_after, &seconds_after);
    vkllm_log(VKLLM_LOG_INFO, "recorded the %s: %u dispatches in %.1f ms, %u new pipelines built in %.1f ms "
              "(%u in all, %.1f ms)", label, vkr_sequence_dispatch_count(slot->seq),
              1e3 * (vkllm_log_clock() - started), built_after - built_before, 1e3 * (seconds_after - seconds_before),
              built_after, 1e3 * seconds_after);
    slot->shape = *shape;
    slot->last_used = ++ctx->clock;
    *out = slot->seq;
    return VKLLM_OK;
}

vkllm_status context_decode(vkllm_context *ctx, const vkllm_batch *b, bool greedy, vkllm_token *tokens)
{
    return context_decode_ex(ctx, b, greedy, false, tokens);
}

vkllm_status context_decode_ex(vkllm_context *ctx, const vkllm_batch *b, bool greedy, bool invariant,
                               vkllm_token *tokens)
{
    if (!ctx) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: context is NULL");
    uint32_t n_out = 0, max_context = 0; /* set by validate; gcc -O3 cannot see it */
    VKLLM_TRY(validate(ctx, b, &n_out, &max_context));
    ctx->n_out_last = 0;
    if (n_out == 0 && greedy) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode_greedy: no row wants a token");
    VKLLM_TRY(map_pages(ctx, b));
    stage(ctx, b);
    /* One token is computed alike either way: its shape is the plain one, so decoding replays one recording. */
    forward_shape shape = {b->n_tokens, n_out ? n_out : 1, context_bucket(ctx, max_context), greedy,
                           invariant && b->n_tokens > 1};
    if (n_out == 0) ctx->in.out_rows[0] = (int32_t)b->n_tokens - 1; /* the head still runs on one row */
    vkr_sequence *seq;
    VKLLM_TRY(recording_for(ctx, &shape, &seq));
    VKLLM_TRY(vkr_sequence_run(seq));
    if (greedy) {
        const uint8_t *ids = ctx->host_out.mapped + 4ull * ctx->params.n_outputs_max * ctx->model->cfg.n_vocab;
        memcpy(tokens, ids, n_out * sizeof *tokens);
        /* The argmax skips NaN, so only a row without one number in it comes back without an index. */
        for (uint32_t i = 0; i < n_out; i++)
            if (tokens[i] < 0 || (uint32_t)tokens[i] >= ctx->model->cfg.n_vocab)
                return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "the model produced NaN logits: every one of the %u "
                                  "logits of output row %u is NaN, so greedy decoding has no token to pick (a weight "
                                  "holds NaN or an activation overflowed)", ctx->model->cfg.n_vocab, i);
    } else {
        ctx->n_out_last = n_out;
    }
    return VKLLM_OK;
}

vkllm_status context_prepare(vkllm_context *ctx, uint32_t n_tokens, uint32_t n_out, bool greedy, bool invariant)
{
    if (n_tokens == 0 || n_out == 0 || n_out > n_tokens || n_tokens > ctx->params.n_batch ||
        n_out > ctx->params.n_outputs_max)
        return VKLLM_OK;
    forward_shape shape = {n_tokens, n_out, context_bucket(ctx, 1), greedy, invariant && n_tokens > 1};
    vkr_sequence *seq;
    return recording_for(ctx, &shape, &seq);
}

/* A caller's own use of sequence 0 invalidates what vkllm_generate remembers of it. */
static void forget_history(vkllm_context *ctx, const vkllm_batch *b)
{
    for (uint32_t i = 0; ctx && b && b->seq && i < b->n_tokens; i++)
        if (b->seq[i] == 0) ctx->n_history = 0;
}

vkllm_status vkllm_decode(vkllm_context *ctx, const vkllm_batch *batch)
{
    forget_history(ctx, batch);
    return context_decode(ctx, batch, false, NULL);
}

const float *vkllm_get_logits(vkllm_context *ctx, uint32_t i)
{
    if (!ctx || i >= ctx->n_out_last) return NULL;
    return (const float *)ctx->host_out.mapped + (size_t)i * ctx->model->cfg.n_vocab;
}

vkllm_status vkllm_decode_greedy(vkllm_context *ctx, const vkllm_batch *batch, vkllm_token *tokens)
{
    forget_history(ctx, batch);
    return context_decode(ctx, batch, true, tokens);
}

vkllm_status vkllm_seq_truncate(vkllm_context *ctx, int32_t seq, uint32_t pos)
{
    if (!ctx || seq < 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_seq_truncate: sequence %d", seq);
    if (seq == 0 && pos < ctx->n_history) ctx->n_history = pos;
    return kv_pages_truncate(ctx->pages, (uint32_t)seq, pos);
}
