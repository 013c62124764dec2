/* Rotary position embedding, normal and NeoX layouts (shaders/rope.comp). */
#include "check.h"
#include "ops.h"

typedef struct rope_push {
    uint32_t n_pairs, n_heads, head_dim, n_rot;
    float freq_base, freq_scale;
} rope_push;

static vkllm_status check_rope_shape(uint32_t n_tokens, uint32_t n_heads, uint32_t head_dim,
                                     const ops_rope_params *params)
{
    const char *name = "rope_f32";
    if (!params) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: no parameters", name);
    if (params->mode != OPS_ROPE_NORMAL && params->mode != OPS_ROPE_NEOX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: mode %d is neither normal (0) nor NeoX (2)", name,
                          (int)params->mode);
    if (n_tokens == 0 || n_heads == 0 || head_dim == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: empty shape, %u tokens x %u heads x %u dims", name,
                          n_tokens, n_heads, head_dim);
    if (head_dim % 2)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: head_dim %u is odd; dims go in pairs", name, head_dim);
    if (params->n_rot == 0 || params->n_rot % 2 || params->n_rot > head_dim)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: n_rot %u must be even, > 0 and <= head_dim %u", name,
                          params->n_rot, head_dim);
    VKLLM_TRY(ops_check_rope_freq(name, params->freq_base, params->freq_scale));
    if ((uint64_t)n_tokens * n_heads * head_dim / 2 > UINT32_MAX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u x %u x %u is too many elements", name, n_tokens,
                          n_heads, head_dim);
    return VKLLM_OK;
}

vkllm_status ops_rope_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range pos, vkr_range out,
                          uint32_t n_tokens, uint32_t n_heads, uint32_t head_dim, const ops_rope_params *params)
{
    const char *name = "rope_f32";
    VKLLM_TRY(check_rope_shape(n_tokens, n_heads, head_dim, params));
    uint64_t elements = (uint64_t)n_tokens * n_heads * head_dim;
    VKLLM_TRY(ops_check_bytes(name, "x", x, 4 * elements));
    VKLLM_TRY(ops_check_bytes(name, "pos", pos, 4ull * n_tokens));
    VKLLM_TRY(ops_check_bytes(name, "out", out, 4 * elements));
    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, params->mode == OPS_ROPE_NEOX ? SHADER(rope_neox_f32) : SHADER(rope_norm_f32), 3, 0x3,
                           sizeof(rope_push), &wg, 1, &p));
    rope_push push = {(uint32_t)(elements / 2), n_heads, head_dim, params->n_rot, params->freq_base,
                      params->freq_scale};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(push.n_pairs, wg), groups);
    vkr_range bind[3] = {ops_head(x, 4 * elements), ops_head(pos, 4ull * n_tokens), ops_head(out, 4 * elements)};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}
