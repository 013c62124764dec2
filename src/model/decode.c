/* One forward pass of a batch: validate it, map KV pages, stage the inputs, replay (or record) the
 * sequence for its shape, submit once, read back logits or argmax ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "ops/flash_attn.h"
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

/* rope_offset (tree passes, else NULL): each row's position minus its RoPE position, in bits 16.. of its seq
 * (shaders/common.glsl: token_slot, token_rope_pos). */
static void stage(vkllm_context *ctx, const vkllm_batch *b, const uint32_t *rope_offset)
{
    uint32_t out = 0;
    for (uint32_t i = 0; i < b->n_tokens; i++) {
        ctx->in.ids[i] = b->tokens[i];
        ctx->in.tokens[2 * i] = b->seq[i] | (int32_t)((rope_offset ? rope_offset[i] : 0) << 16);
        ctx->in.tokens[2 * i + 1] = b->pos[i];
        if (!b->want_logits || b->want_logits[i]) ctx->in.out_rows[out++] = (int32_t)i;
    }
    memcpy(ctx->in.page_table, ctx->pages->page_table,
           sizeof(int32_t) * ctx->params.n_seq_max * ctx->kv.max_pages_per_seq);
}

static bool same_shape(const forward_shape *a, const forward_shape *b)
{
    return a->n_tokens == b->n_tokens && a->n_out == b->n_out && a->max_context == b->max_context &&
           a->greedy == b->greedy && a->invariant == b->invariant && a->tree == b->tree && a->capture == b->capture &&
           a->one_seq == b->one_seq;
}

/* Records rec's groups for rec->layers_per_group layers each (all layers in one group when 0). */
vkllm_status context_record(vkllm_context *ctx, recording *rec)
{
    uint32_t n_layer = ctx->model->cfg.n_layer;
    uint32_t per = rec->layers_per_group && rec->layers_per_group < n_layer ? rec->layers_per_group : n_layer;
    if (per == 0) per = 1;
    while ((n_layer + per - 1) / per > CONTEXT_MAX_GROUPS) per++;
    rec->layers_per_group = per;
    const forward_shape *shape = &rec->shape;
    uint32_t built_before, built_after;
    double seconds_before, seconds_after, started = vkllm_log_clock();
    vkr_pipeline_stats(ctx->model->dev, &built_before, &seconds_before);
    bool timed = ctx->params.max_submit_us > 0;
    uint32_t n_groups = 0, dispatches = 0;
    for (uint32_t first = 0; first < n_layer || n_groups == 0; first += per) {
        uint32_t end = first + per < n_layer ? first + per : n_layer;
        vkr_sequence **seq = &rec->groups[n_groups];
        if (!*seq) VKLLM_TRY(vkr_sequence_create(ctx->model->dev, seq));
        vkr_sequence_set_timed(*seq, timed);
        n_groups++;
        rec->n_groups = 0; /* unusable until every group is recorded */
        VKLLM_TRY(forward_record(ctx, *seq, shape, first, end));
        rec->end[n_groups - 1] = end;
        char label[128];
        snprintf(label, sizeof label, "forward of %u tokens (%u out, context %u%s%s), layers %u-%u", shape->n_tokens,
                 shape->n_out, shape->max_context, shape->greedy ? ", greedy" : "", shape->invariant ? ", invariant" : "",
                 first, end);
        vkr_sequence_set_label(*seq, label);
        dispatches += vkr_sequence_dispatch_count(*seq);
        if (end >= n_layer) break;
    }
    rec->n_groups = n_groups;
    vkr_pipeline_stats(ctx->model->dev, &built_after, &seconds_after);
    vkllm_log(VKLLM_LOG_INFO, "recorded the forward of %u tokens (%u out, context %u%s) in %u submission%s of %u "
              "layer%s: %u dispatches in %.1f ms, %u new pipelines built in %.1f ms (%u in all, %.1f ms)",
              shape->n_tokens, shape->n_out, shape->max_context, shape->greedy ? ", greedy" : "", n_groups,
              n_groups == 1 ? "" : "s", per, per == 1 ? "" : "s", dispatches, 1e3 * (vkllm_log_clock() - started),
              built_after - built_before, 1e3 * (seconds_after - seconds_before), built_after, 1e3 * seconds_after);
    return VKLLM_OK;
}

/* The recording of this shape, recording it (in the least recently used slot) if needed. */
static vkllm_status recording_for(vkllm_context *ctx, const forward_shape *shape, recording **out)
{
    recording *slot = &ctx->recordings[0];
    for (int i = 0; i < CONTEXT_MAX_RECORDINGS; i++) {
        recording *r = &ctx->recordings[i];
        if (r->n_groups && same_shape(&r->shape, shape)) {
            r->last_used = ++ctx->clock;
            *out = r;
            return VKLLM_OK;
        }
        if (!r->n_groups || r->last_used < slot->last_used) slot = r;
    }
    slot->shape = *shape;
    /* Unmeasured: one layer per submission under a budget, so that the first pass already keeps it. */
    slot->layers_per_group = ctx->params.max_submit_us ? 1 : 0;
    slot->layer_us = 0;
    VKLLM_TRY(context_record(ctx, slot));
    slot->last_used = ++ctx->clock;
    *out = slot;
    return VKLLM_OK;
}

/* tree (tree passes, else NULL): the rows' tree-mask rows and RoPE offsets. */
static vkllm_status stage_batch(vkllm_context *ctx, const vkllm_batch *b, bool greedy, bool invariant,
                                const uint32_t (*tree)[4], const uint32_t *rope_offset, recording **rec,
                                uint32_t *n_out_ret)
{
    if (!ctx) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode: context is NULL");
    /* One pass in flight per context: its inputs and outputs are the context's buffers. */
    if (ctx->pending.active) VKLLM_TRY(context_wait(ctx, ctx->pending.value));
    uint32_t n_out = 0, max_context = 0; /* set by validate; gcc -O3 cannot see it */
    VKLLM_TRY(validate(ctx, b, &n_out, &max_context));
    ctx->n_out_last = 0;
    if (n_out == 0 && greedy) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode_greedy: no row wants a token");
    VKLLM_TRY(map_pages(ctx, b));
    stage(ctx, b, rope_offset);
    if (tree) memcpy(ctx->in.tree, tree, 16ull * b->n_tokens);
    /* One token is computed alike either way: its shape is the plain one, so decoding replays one recording. */
    bool one_seq = b->n_tokens > 1;
    for (uint32_t i = 1; one_seq && b->seq && i < b->n_tokens; i++) one_seq = b->seq[i] == b->seq[0];
    forward_shape shape = {b->n_tokens, n_out ? n_out : 1, context_bucket(ctx, max_context), greedy,
                           invariant && b->n_tokens > 1, tree != NULL, ctx->capture_on, one_seq};
    if (n_out == 0) ctx->in.out_rows[0] = (int32_t)b->n_tokens - 1; /* the head still runs on one row */
    VKLLM_TRY(recording_for(ctx, &shape, rec));
    *n_out_ret = n_out;
    return VKLLM_OK;
}

vkllm_status context_stage_batch(vkllm_context *ctx, const vkllm_batch *b, bool greedy, bool invariant, recording **rec,
                                 uint32_t *n_out_ret)
{
    return stage_batch(ctx, b, greedy, invariant, NULL, NULL, rec, n_out_ret);
}

vkllm_status context_decode_tree(vkllm_context *ctx, int32_t seq, const vkllm_token *ids, const int32_t *parents,
                                 uint32_t n, bool greedy, vkllm_token *out)
{
    if (!ctx || seq < 0 || (uint32_t)seq >= ctx->params.n_seq_max || n == 0 || n > OPS_TREE_MAX_NODES)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tree pass: %u nodes (1..%u) of sequence %d", n,
                          OPS_TREE_MAX_NODES, seq);
    if (ctx->kv.k_type > OPS_KV_F16 || ctx->kv.v_type > OPS_KV_F16)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "tree pass: the tree-mask attention reads F16 and F32 caches only");
    if (ctx->pending.active) VKLLM_TRY(context_wait(ctx, ctx->pending.value));
    uint32_t pos0 = ctx->pages->seq_len[seq], rows[OPS_TREE_MAX_NODES][4], offset[OPS_TREE_MAX_NODES],
             depth[OPS_TREE_MAX_NODES];
    int32_t pos[OPS_TREE_MAX_NODES], seqs[OPS_TREE_MAX_NODES];
    VKLLM_TRY(ops_tree_rows(parents, n, pos0, rows));
    for (uint32_t i = 0; i < n; i++) {
        depth[i] = parents[i] < 0 ? 0 : depth[parents[i]] + 1;
        offset[i] = i - depth[i];
        pos[i] = (int32_t)(pos0 + i);
        seqs[i] = seq;
    }
    vkllm_batch b = {.n_tokens = n, .tokens = ids, .pos = pos, .seq = seqs, .want_logits = NULL};
    recording *rec = NULL;
    uint32_t n_out = 0;
    uint64_t value = 0;
    VKLLM_TRY(stage_batch(ctx, &b, greedy, true, (const uint32_t(*)[4])rows, offset, &rec, &n_out));
    VKLLM_TRY(context_submit(ctx, rec, greedy, n_out, &value));
    VKLLM_TRY(context_wait(ctx, value));
    if (greedy) memcpy(out, ctx->greedy_tokens, n_out * sizeof *out);
    return VKLLM_OK;
}

vkllm_status context_decode(vkllm_context *ctx, const vkllm_batch *b, bool greedy, vkllm_token *tokens)
{
    return context_decode_ex(ctx, b, greedy, false, tokens);
}

vkllm_status context_decode_ex(vkllm_context *ctx, const vkllm_batch *b, bool greedy, bool invariant,
                               vkllm_token *tokens)
{
    recording *rec = NULL;
    uint32_t n_out = 0;
    uint64_t value = 0;
    VKLLM_TRY(context_stage_batch(ctx, b, greedy, invariant, &rec, &n_out));
    VKLLM_TRY(context_submit(ctx, rec, greedy, n_out, &value));
    VKLLM_TRY(context_wait(ctx, value));
    if (greedy) memcpy(tokens, ctx->greedy_tokens, n_out * sizeof *tokens);
    return VKLLM_OK;
}

vkllm_status context_prepare_tree(vkllm_context *ctx, uint32_t n_tokens, bool greedy)
{
    if (n_tokens == 0 || n_tokens > ctx->params.n_batch || n_tokens > ctx->params.n_outputs_max) return VKLLM_OK;
    forward_shape shape = {n_tokens, n_tokens, context_bucket(ctx, 1), greedy, n_tokens > 1, true, ctx->capture_on,
                           n_tokens > 1};
    recording *rec;
    return recording_for(ctx, &shape, &rec);
}

vkllm_status context_prepare(vkllm_context *ctx, uint32_t n_tokens, uint32_t n_out, bool greedy, bool invariant)
{
    if (n_tokens == 0 || n_out == 0 || n_out > n_tokens || n_tokens > ctx->params.n_batch ||
        n_out > ctx->params.n_outputs_max)
        return VKLLM_OK;
    forward_shape shape = {n_tokens, n_out, context_bucket(ctx, 1), greedy, invariant && n_tokens > 1, false,
                           ctx->capture_on, n_tokens > 1};
    recording *rec;
    return recording_for(ctx, &shape, &rec);
}

/* A caller's own use of sequence 0 invalidates what vkllm_generate remembers of it; a decode call ends a
 * step-wise generation (vkllm_generate_begin). */
static void forget_history(vkllm_context *ctx, const vkllm_batch *b)
{
    if (ctx && ctx->gen) {
        generate_state_free(ctx->gen);
        ctx->gen = NULL;
    }
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

uint64_t context_hidden_offset(const vkllm_context *ctx)
{
    uint64_t no = ctx->params.n_outputs_max;
    return 4ull * no * ctx->model->cfg.n_vocab + 4ull * no;
}

const float *vkllm_get_hidden(vkllm_context *ctx, uint32_t i)
{
    if (!ctx || !ctx->params.output_hidden || i >= ctx->n_hidden_last) return NULL;
    const uint8_t *base = (const uint8_t *)ctx->host_out.mapped + context_hidden_offset(ctx);
    return (const float *)base + (size_t)i * ctx->model->cfg.n_embd;
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
