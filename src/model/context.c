/* Context creation: sizes the paged KV cache and every buffer of the forward pass up front, so that a
 * context either fits the device or fails at creation with the amount it needed. */
#include "context.h"
#include "ops/flash_attn.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "quant/quant.h"
#include "runtime/error.h"
#include "runtime/log.h"
#include "speculative/spec.h"

#define KV_PAGE_SIZE 16
#define CONTEXT_MAX_POSITIONS (1u << 30) /* positions are int32 */
#define CONTEXT_MAX_CACHED (1ull << 32)    /* positions of all sequences together: the page count stays 32-bit */
#define CONTEXT_MAX_BATCH (1u << 20)
#define CONTEXT_MAX_SEQUENCES 4096u

vkllm_context_params vkllm_context_default_params(void)
{
    return (vkllm_context_params){.n_ctx = 0, .n_batch = 256, .n_seq_max = 1, .n_outputs_max = 8,
                                  .type_k = VKLLM_KV_F16, .type_v = VKLLM_KV_F16, .rotate_k = 1, .center_k = 1,
                                  .max_submit_us = 0};
}

static const char *const kv_type_names[] = {[VKLLM_KV_F16] = "f16", [VKLLM_KV_F32] = "f32", [VKLLM_KV_Q8_0] = "q8_0",
                                            [VKLLM_KV_Q4_0] = "q4_0"};

const char *vkllm_kv_type_name(vkllm_kv_type type)
{
    return (unsigned)type < sizeof kv_type_names / sizeof *kv_type_names ? kv_type_names[type] : NULL;
}

vkllm_status vkllm_kv_type_parse(const char *name, vkllm_kv_type *type)
{
    for (unsigned i = 0; name && i < sizeof kv_type_names / sizeof *kv_type_names; i++)
        if (!strcasecmp(name, kv_type_names[i])) {
            *type = (vkllm_kv_type)i;
            return VKLLM_OK;
        }
    return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "KV cache type '%.40s': expected f16, f32, q8_0 or q4_0",
                      name ? name : "(null)");
}

static vkllm_status device_buffer(vkllm_context *ctx, uint64_t bytes, vkr_buffer *out)
{
    return vkr_buffer_alloc(ctx->model->dev, bytes ? bytes : 4, VKR_MEMORY_DEVICE, out);
}

/* Lays out step_inputs inside one host-visible buffer, each part aligned for a copy. */
static vkllm_status create_inputs(vkllm_context *ctx)
{
    const vkllm_context_params *p = &ctx->params;
    uint64_t sizes[5] = {4ull * p->n_batch, 8ull * p->n_batch, 4ull * p->n_outputs_max,
                         4ull * p->n_seq_max * ctx->kv.max_pages_per_seq, 16ull * p->n_batch};
    uint64_t *offsets[5] = {&ctx->off_ids, &ctx->off_tokens, &ctx->off_out_rows, &ctx->off_page_table, &ctx->off_tree};
    vkr_buffer *devs[5] = {&ctx->ids, &ctx->tokens, &ctx->out_rows, &ctx->page_table, &ctx->tree};
    uint64_t total = 0;
    for (int i = 0; i < 5; i++) {
        *offsets[i] = total;
        total += (sizes[i] + VKR_ALLOC_ALIGNMENT - 1) / VKR_ALLOC_ALIGNMENT * VKR_ALLOC_ALIGNMENT;
        VKLLM_TRY(device_buffer(ctx, sizes[i], devs[i]));
    }
    VKLLM_TRY(vkr_buffer_alloc(ctx->model->dev, total, VKR_MEMORY_HOST, &ctx->host_in));
    uint8_t *base = ctx->host_in.mapped;
    memset(base, 0, total);
    ctx->in = (step_inputs){(int32_t *)(base + ctx->off_ids), (int32_t *)(base + ctx->off_tokens),
                            (int32_t *)(base + ctx->off_out_rows),
                            (int32_t *)(base + ctx->off_page_table), (uint32_t *)(base + ctx->off_tree)};
    return VKLLM_OK;
}

static vkllm_status create_activations(vkllm_context *ctx)
{
    const model_config *c = &ctx->model->cfg;
    uint64_t nb = ctx->params.n_batch, no = ctx->params.n_outputs_max;
    uint64_t qd = (uint64_t)c->n_head * c->head_dim, kvd = (uint64_t)c->n_head_kv * c->head_dim;
    struct { vkr_buffer *b; uint64_t floats; } all[] = {
        {&ctx->x, nb * c->n_embd}, {&ctx->h, nb * c->n_embd}, {&ctx->qkv, nb * (qd + 2 * kvd)}, {&ctx->qr, nb * qd},
        {&ctx->att, nb * qd}, {&ctx->o, nb * c->n_embd}, {&ctx->gate_up, nb * 2 * c->n_ff}, {&ctx->act, nb * c->n_ff},
        {&ctx->xo, no * c->n_embd}, {&ctx->ho, no * c->n_embd}, {&ctx->logits, no * c->n_vocab}, {&ctx->argmax, no},
    };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) VKLLM_TRY(device_buffer(ctx, 4 * all[i].floats, all[i].b));
    /* host_out: logits rows, argmax ids, then (output_hidden) the hidden rows */
    uint64_t hidden = ctx->params.output_hidden ? 4 * no * c->n_embd : 0;
    VKLLM_TRY(vkr_buffer_alloc(ctx->model->dev, 4 * no * c->n_vocab + 4 * no + hidden, VKR_MEMORY_HOST, &ctx->host_out));
    /* Scratch for the largest shape any recording can have: every batch size at the full context. */
    uint64_t scratch = 0;
    for (uint32_t n = 1; n <= ctx->params.n_batch; n++) {
        ops_attention_shape s = {.n_tokens = n, .n_heads = c->n_head, .max_context = ctx->params.n_ctx,
                                 .scale = 1.0f, .kv = ctx->kv};
        uint64_t b = ops_attention_scratch_bytes(ctx->model->ops, &s);
        if (b > scratch) scratch = b;
        s.split_tokens = 1; /* verification passes (forward_shape.invariant) split as one token does */
        b = n <= ctx->params.n_outputs_max ? ops_attention_scratch_bytes(ctx->model->ops, &s) : 0;
        if (b > scratch) scratch = b;
    }
    return device_buffer(ctx, scratch, &ctx->scratch);
}

static ops_kv_type ops_type_of(vkllm_kv_type t)
{
    switch (t) {
    case VKLLM_KV_F32: return OPS_KV_F32;
    case VKLLM_KV_Q8_0: return OPS_KV_Q8_0;
    case VKLLM_KV_Q4_0: return OPS_KV_Q4_0;
    default: return OPS_KV_F16;
    }
}

static vkllm_status create_cache(vkllm_context *ctx)
{
    const model_config *c = &ctx->model->cfg;
    uint32_t max_pages = (ctx->params.n_ctx + KV_PAGE_SIZE - 1) / KV_PAGE_SIZE;
    ctx->kv = (ops_kv_layout){.n_pages = max_pages * ctx->params.n_seq_max, .n_kv_heads = c->n_head_kv,
                              .head_dim = c->head_dim, .page_size = KV_PAGE_SIZE, .n_seqs = ctx->params.n_seq_max,
                              .max_pages_per_seq = max_pages, .k_type = ops_type_of(ctx->params.type_k),
                              .v_type = ops_type_of(ctx->params.type_v)};
    ctx->kv.rotate_k = ctx->params.rotate_k && ops_kv_type_quantized(ctx->kv.k_type);
    ctx->kv.center_pairs = ctx->params.center_k && ops_kv_type_quantized(ctx->kv.k_type) ? ctx->model->k_center_pairs : 0;
    /* A quantized side cuts each token's row into blocks of 32: refuse a shape that cannot be cut now, naming it. */
    if ((ops_kv_type_quantized(ctx->kv.k_type) || ops_kv_type_quantized(ctx->kv.v_type)) &&
        (c->n_head_kv * c->head_dim) % 32)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "context: a %s/%s KV cache stores each token's row of %u kv heads x "
                          "%u dims in blocks of 32 values; %u is not a multiple of 32 (use f16 or f32)",
                          vkllm_kv_type_name(ctx->params.type_k), vkllm_kv_type_name(ctx->params.type_v),
                          c->n_head_kv, c->head_dim, c->n_head_kv * c->head_dim);
    VKLLM_TRY(kv_pages_create(ctx->kv.n_pages, KV_PAGE_SIZE, ctx->params.n_seq_max, max_pages, &ctx->pages));
    ctx->k_cache = calloc(c->n_layer, sizeof *ctx->k_cache);
    ctx->v_cache = calloc(c->n_layer, sizeof *ctx->v_cache);
    if (!ctx->k_cache || !ctx->v_cache) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "KV cache list");
    uint64_t k_bytes = ops_kv_cache_bytes(&ctx->kv, ctx->kv.k_type), v_bytes = ops_kv_cache_bytes(&ctx->kv, ctx->kv.v_type);
    uint64_t bytes = k_bytes > v_bytes ? k_bytes : v_bytes;
    /* Attention binds a layer's cache whole: say so now rather than when the first forward pass is recorded. */
    const vkr_caps *caps = vkr_device_caps(ctx->model->dev);
    if (bytes > caps->max_storage_buffer_range)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "context: a layer's %s KV cache for %u positions x %u sequences is "
                          "%.1f MiB, above the %.1f MiB one shader binding may span on '%s' (maxStorageBufferRange); "
                          "ask for fewer positions", vkllm_kv_type_name(k_bytes >= v_bytes ? ctx->params.type_k :
                          ctx->params.type_v), ctx->params.n_ctx,
                          ctx->params.n_seq_max, (double)bytes / 1048576.0,
                          (double)caps->max_storage_buffer_range / 1048576.0, caps->name);
    for (uint32_t l = 0; l < c->n_layer; l++) {
        VKLLM_TRY(device_buffer(ctx, k_bytes, &ctx->k_cache[l]));
        VKLLM_TRY(device_buffer(ctx, v_bytes, &ctx->v_cache[l]));
    }
    return VKLLM_OK;
}

static vkllm_status check_params(const vkllm_model *model, vkllm_context_params *p)
{
    if (p->n_ctx == 0) p->n_ctx = model->cfg.n_ctx_train < 4096 ? model->cfg.n_ctx_train : 4096;
    if (p->n_batch == 0 || p->n_seq_max == 0 || p->n_outputs_max == 0 || p->n_ctx == 0 ||
        !vkllm_kv_type_name(p->type_k) || !vkllm_kv_type_name(p->type_v))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "context: n_ctx %u, n_batch %u, n_seq_max %u, n_outputs_max %u, "
                          "type_k %d, type_v %d", p->n_ctx, p->n_batch, p->n_seq_max, p->n_outputs_max, (int)p->type_k,
                          (int)p->type_v);
    if ((p->type_k == VKLLM_KV_F32) != (p->type_v == VKLLM_KV_F32))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "context: a K cache of %s with a V cache of %s: f32 goes with f32 "
                          "only (f16, q8_0 and q4_0 mix freely)", vkllm_kv_type_name(p->type_k),
                          vkllm_kv_type_name(p->type_v));
    /* Far past any device's memory, yet every count of pages, rows and bytes derived from them stays exact in
     * the 32- and 64-bit sizes used below. */
    if (p->n_ctx > CONTEXT_MAX_POSITIONS || p->n_batch > CONTEXT_MAX_BATCH || p->n_seq_max > CONTEXT_MAX_SEQUENCES)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "context: n_ctx %u (at most %u), n_batch %u (at most %u), "
                          "n_seq_max %u (at most %u)", p->n_ctx, CONTEXT_MAX_POSITIONS, p->n_batch, CONTEXT_MAX_BATCH,
                          p->n_seq_max, CONTEXT_MAX_SEQUENCES);
    if ((uint64_t)p->n_ctx * p->n_seq_max > CONTEXT_MAX_CACHED)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "context: n_ctx %u x n_seq_max %u positions, above %llu in all",
                          p->n_ctx, p->n_seq_max, (unsigned long long)CONTEXT_MAX_CACHED);
    if (p->n_outputs_max > p->n_batch) p->n_outputs_max = p->n_batch;
    return VKLLM_OK;
}

vkllm_status vkllm_context_create(vkllm_model *model, const vkllm_context_params *params, vkllm_context **out)
{
    *out = NULL;
    if (!model) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_context_create: model is NULL");
    vkllm_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "context");
    ctx->model = model;
    ctx->params = params ? *params : vkllm_context_default_params();
    double started = vkllm_log_clock();
    vkllm_status st = check_params(model, &ctx->params);
    /* The mean key, once per model, before this context takes its memory (its pass runs in a context of its own) */
    bool center = ctx->params.center_k && (ctx->params.type_k == VKLLM_KV_Q8_0 || ctx->params.type_k == VKLLM_KV_Q4_0);
    if (st == VKLLM_OK && center && model->cfg.n_rot >= 2) st = model_key_center(model);
    if (st == VKLLM_OK) st = create_cache(ctx);
    if (st == VKLLM_OK) st = create_inputs(ctx);
    if (st == VKLLM_OK) st = create_activations(ctx);
    if (st == VKLLM_OK && (!(ctx->history = malloc(ctx->params.n_ctx * sizeof *ctx->history)) ||
                           !(ctx->next_len = malloc(ctx->params.n_seq_max * sizeof *ctx->next_len)) ||
                           !(ctx->greedy_tokens = malloc(ctx->params.n_outputs_max * sizeof *ctx->greedy_tokens))))
        st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "context history and scratch");
    if (st != VKLLM_OK) {
        /* Everything taken so far goes back; the model stays usable (a smaller context may fit). */
        uint32_t n_ctx = ctx->params.n_ctx, n_seq = ctx->params.n_seq_max;
        vkllm_context_free(ctx);
        return vkllm_fail_context(st, "creating a context of %u positions x %u sequences", n_ctx, n_seq);
    }
    vkllm_log(VKLLM_LOG_INFO, "context: %u positions x %u sequences, batches of %u, KV cache K %s%s%s / V %s of %.1f MiB; "
              "created in %.1f ms (%.1f MiB of device memory held)", ctx->params.n_ctx, ctx->params.n_seq_max,
              ctx->params.n_batch, vkllm_kv_type_name(ctx->params.type_k), ctx->kv.rotate_k ? " (rotated)" : "",
              ctx->kv.center_pairs ? " (centered)" : "",
              vkllm_kv_type_name(ctx->params.type_v),
              (double)vkllm_context_kv_bytes(ctx, NULL) / 1048576.0,
              1e3 * (vkllm_log_clock() - started),
              (double)vkr_memory_in_use(model->dev, VKR_MEMORY_DEVICE) / 1048576.0);
    *out = ctx;
    return VKLLM_OK;
}

uint64_t vkllm_context_kv_bytes(const vkllm_context *ctx, uint64_t *bytes_per_token)
{
    uint64_t layers = ctx->model->cfg.n_layer;
    if (bytes_per_token) *bytes_per_token = layers * ops_kv_bytes_per_token(&ctx->kv);
    return layers * (ops_kv_cache_bytes(&ctx->kv, ctx->kv.k_type) + ops_kv_cache_bytes(&ctx->kv, ctx->kv.v_type));
}

void vkllm_context_free(vkllm_context *ctx)
{
    if (!ctx) return;
    vkr_device *dev = ctx->model->dev;
    /* A pass still in flight is waited for by its sequences' destruction, before the semaphore it signals goes. */
    for (int i = 0; i < CONTEXT_MAX_RECORDINGS; i++)
        for (uint32_t g = 0; g < CONTEXT_MAX_GROUPS; g++) vkr_sequence_destroy(ctx->recordings[i].groups[g]);
    vkr_timeline_destroy(dev, ctx->timeline);
    generate_state_free(ctx->gen);
    for (uint32_t l = 0; ctx->k_cache && l < ctx->model->cfg.n_layer; l++) {
        vkr_buffer_free(dev, &ctx->k_cache[l]);
        vkr_buffer_free(dev, &ctx->v_cache[l]);
    }
    free(ctx->k_cache);
    free(ctx->v_cache);
    vkr_buffer *all[] = {&ctx->host_in, &ctx->ids, &ctx->tokens, &ctx->out_rows, &ctx->page_table, &ctx->tree,
                         &ctx->x, &ctx->h, &ctx->qkv, &ctx->qr, &ctx->att, &ctx->o, &ctx->gate_up, &ctx->act,
                         &ctx->xo, &ctx->ho, &ctx->logits, &ctx->argmax, &ctx->scratch, &ctx->host_out,
                         &ctx->capture};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) vkr_buffer_free(dev, all[i]);
    kv_pages_free(ctx->pages);
    spec_state_free(ctx->spec);
    free(ctx->history);
    free(ctx->next_len);
    free(ctx->greedy_tokens);
    free(ctx);
}
