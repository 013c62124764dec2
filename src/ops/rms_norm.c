/* RMSNorm fused with its weight (and optionally the residual add before it), one row per workgroup
 * (shaders/rms_norm.comp). */

#include "check.h"
#include "ops.h"

typedef struct rms_norm_push {
    uint32_t rows, cols;
    float eps;
} rms_norm_push;

/* add: the residual to add into x first, or an empty range for the plain norm. */
static vkllm_status record_norm(ops_context *ops, vkr_sequence *seq, vkr_range x, const vkr_range *add, vkr_range w,
                                vkr_range out, uint32_t rows, uint32_t cols, float eps)
{
    const char *name = add ? SHADER(add_rms_norm_f32) : SHADER(rms_norm_f32);
    if (rows == 0 || cols == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: empty shape, %u rows of %u columns", name, rows, cols);
    if (!(eps >= 0.0f)) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: eps %g is not >= 0", name, (double)eps);
    uint32_t wg = ops->tuning->row_wg;
    uint64_t bytes = 4ull * rows * cols;
    VKLLM_TRY(ops_check_row_loop(name, cols, wg));
    VKLLM_TRY(ops_check_bytes(name, "x", x, bytes));
    if (add) VKLLM_TRY(ops_check_bytes(name, "add", *add, bytes));
    VKLLM_TRY(ops_check_bytes(name, "w", w, 4ull * cols));
    VKLLM_TRY(ops_check_bytes(name, "out", out, bytes));
    bool sg = ops->caps->subgroup_arithmetic;
    const char *shader = add ? (sg ? SHADER(add_rms_norm_f32_sg) : SHADER(add_rms_norm_f32))
                             : (sg ? SHADER(rms_norm_f32_sg) : SHADER(rms_norm_f32));
    const vkr_pipeline *p;
    /* bindings: x (written back by the add variant), w, out, add */
    VKLLM_TRY(ops_pipeline(ops, shader, add ? 4 : 3, add ? 0xa : 0x3, sizeof(rms_norm_push), &wg, 1, &p));
    rms_norm_push push = {rows, cols, eps};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, rows, groups);
    vkr_range bind[4] = {ops_head(x, bytes), ops_head(w, 4ull * cols), ops_head(out, bytes),
                         add ? ops_head(*add, bytes) : ops_head(x, bytes)};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}

vkllm_status ops_rms_norm_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range w, vkr_range out,
                              uint32_t rows, uint32_t cols, float eps)
{
    return record_norm(ops, seq, x, NULL, w, out, rows, cols, eps);
}

vkllm_status ops_add_rms_norm_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range add, vkr_range w,
                                  vkr_range out, uint32_t rows, uint32_t cols, float eps)
{
    return record_norm(ops, seq, x, &add, w, out, rows, cols, eps);
}
