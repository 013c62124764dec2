/* Element-wise F32 ops: add, mul (with a repeating second operand), scale. */
#include "check.h"
#include "ops.h"

typedef struct binary_push {
    uint32_t n, b_len;
} binary_push;

vkllm_status ops_binary_f32(ops_context *ops, vkr_sequence *seq, ops_binary op, vkr_range a, vkr_range b,
                            vkr_range out, uint32_t n, uint32_t b_len)
{
    const char *name = op == OPS_ADD ? SHADER(add_f32) : SHADER(mul_f32);
    if (n == 0 || b_len == 0 || n % b_len)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: b_len %u must divide n %u", name, b_len, n);
    VKLLM_TRY(ops_check_bytes(name, "a", a, 4ull * n));
    VKLLM_TRY(ops_check_bytes(name, "b", b, 4ull * b_len));
    VKLLM_TRY(ops_check_bytes(name, "out", out, 4ull * n));
    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, name, 3, 0x3, sizeof(binary_push), &wg, 1, &p));
    binary_push push = {n, b_len};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(n, wg), groups);
    vkr_range bind[3] = {a, b, out};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}

typedef struct scale_push {
    uint32_t n;
    float scale;
} scale_push;

vkllm_status ops_scale_f32(ops_context *ops, vkr_sequence *seq, vkr_range a, vkr_range out, uint32_t n,
                           float scale)
{
    if (n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "scale_f32: n is 0");
    VKLLM_TRY(ops_check_bytes("scale_f32", "a", a, 4ull * n));
    VKLLM_TRY(ops_check_bytes("scale_f32", "out", out, 4ull * n));
    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, SHADER(scale_f32), 2, 0x1, sizeof(scale_push), &wg, 1, &p));
    scale_push push = {n, scale};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(n, wg), groups);
    vkr_range bind[2] = {a, out};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, "scale_f32");
}
