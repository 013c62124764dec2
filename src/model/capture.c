/* Activation capture for calibration: a host-visible buffer holding, per layer, the inputs of the weight
 * products of the last forward pass (forward.c copies them in when forward_shape.capture is set).  Layout: layer
 * by layer, the four kinds of capture_kind one after another, each n_batch rows of its width; then the LM head's
 * input, n_outputs_max rows of n_embd. */
#include "context.h"
#include "runtime/error.h"

uint32_t context_capture_width(const vkllm_context *ctx, capture_kind kind)
{
    const model_config *c = &ctx->model->cfg;
    switch (kind) {
    case CAPTURE_ATTN_OUT: return c->n_head * c->head_dim;
    case CAPTURE_FFN_ACT: return c->n_ff;
    default: return c->n_embd; /* ATTN_IN, FFN_IN, OUTPUT */
    }
}

static uint64_t layer_floats(const vkllm_context *ctx)
{
    uint64_t per_row = 0;
    for (int k = 0; k < CAPTURE_KINDS; k++) per_row += context_capture_width(ctx, (capture_kind)k);
    return per_row * ctx->params.n_batch;
}

uint64_t context_capture_offset(const vkllm_context *ctx, uint32_t layer, capture_kind kind)
{
    uint64_t floats = layer * layer_floats(ctx);
    for (int k = 0; k < (int)kind && k < CAPTURE_KINDS; k++)
        floats += (uint64_t)context_capture_width(ctx, (capture_kind)k) * ctx->params.n_batch;
    return 4 * floats;
}

vkllm_status context_capture_enable(vkllm_context *ctx)
{
    if (ctx->capture_on) return VKLLM_OK;
    const model_config *c = &ctx->model->cfg;
    uint64_t bytes = context_capture_offset(ctx, c->n_layer, CAPTURE_OUTPUT) +
                     4ull * ctx->params.n_outputs_max * c->n_embd;
    VKLLM_TRY(vkr_buffer_alloc(ctx->model->dev, bytes, VKR_MEMORY_HOST, &ctx->capture));
    ctx->capture_on = true; /* recordings made from now on carry the copies (forward_shape.capture) */
    return VKLLM_OK;
}

const float *context_capture_rows(const vkllm_context *ctx, uint32_t layer, capture_kind kind, uint32_t *width)
{
    const uint32_t n_layer = ctx->model->cfg.n_layer;
    if (!ctx->capture_on || layer > n_layer || (layer == n_layer) != (kind == CAPTURE_OUTPUT)) return NULL;
    *width = context_capture_width(ctx, kind);
    return (const float *)((const uint8_t *)ctx->capture.mapped + context_capture_offset(ctx, layer, kind));
}
