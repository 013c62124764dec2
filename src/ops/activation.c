/* Activations, element-wise F32: SwiGLU and GELU (shaders/activation.comp). */
#include "check.h"
#include "ops.h"

typedef struct activation_push {
    uint32_t n;
} activation_push;

/* Records shader over n elements with bindings (the last one written). */
static vkllm_status record_activation(ops_context *ops, vkr_sequence *seq, const char *shader, vkr_range *bind,
                                      uint32_t n_bindings, uint32_t n)
{
    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, shader, n_bindings, (1u << (n_bindings - 1)) - 1, sizeof(activation_push), &wg, 1, &p));
    activation_push push = {n};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(n, wg), groups);
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, shader);
}

vkllm_status ops_swiglu_f32(ops_context *ops, vkr_sequence *seq, vkr_range gate, vkr_range up, vkr_range out,
                            uint32_t n)
{
    if (n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "swiglu_f32: n is 0");
    VKLLM_TRY(ops_check_bytes("swiglu_f32", "gate", gate, 4ull * n));
    VKLLM_TRY(ops_check_bytes("swiglu_f32", "up", up, 4ull * n));
    VKLLM_TRY(ops_check_bytes("swiglu_f32", "out", out, 4ull * n));
    vkr_range bind[3] = {ops_head(gate, 4ull * n), ops_head(up, 4ull * n), ops_head(out, 4ull * n)};
    return record_activation(ops, seq, SHADER(swiglu_f32), bind, 3, n);
}

vkllm_status ops_gelu_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range out, uint32_t n)
{
    if (n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gelu_f32: n is 0");
    VKLLM_TRY(ops_check_bytes("gelu_f32", "x", x, 4ull * n));
    VKLLM_TRY(ops_check_bytes("gelu_f32", "out", out, 4ull * n));
    vkr_range bind[2] = {ops_head(x, 4ull * n), ops_head(out, 4ull * n)};
    return record_activation(ops, seq, SHADER(gelu_f32), bind, 2, n);
}
