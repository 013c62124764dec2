/* RMSNorm fused with its weight, one row per workgroup (shaders/rms_norm.comp). */
#include "check.h"
#include "ops.h"

typedef struct rms_norm_push {
    uint32_t rows, cols;
    float eps;
} rms_norm_push;

vkllm_status ops_rms_norm_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range w, vkr_range out,
                              uint32_t rows, uint32_t cols, float eps)
{
    const char *name = "rms_norm_f32";
    if (rows == 0 || cols == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: empty shape, %u rows of %u columns", name, rows, cols);
    if (!(eps >= 0.0f)) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: eps %g is not >= 0", name, (double)eps);
    uint32_t wg = ops->tuning->row_wg;
    VKLLM_TRY(ops_check_row_loop(name, cols, wg));
    VKLLM_TRY(ops_check_bytes(name, "x", x, 4ull * rows * cols));
    VKLLM_TRY(ops_check_bytes(name, "w", w, 4ull * cols));
    VKLLM_TRY(ops_check_bytes(name, "out", out, 4ull * rows * cols));
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, ops->caps->subgroup_arithmetic ? "rms_norm_f32_sg" : "rms_norm_f32", 3, 0x3,
                           sizeof(rms_norm_push), &wg, 1, &p));
    rms_norm_push push = {rows, cols, eps};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, rows, groups);
    uint64_t bytes = 4ull * rows * cols;
    vkr_range bind[3] = {ops_head(x, bytes), ops_head(w, 4ull * cols), ops_head(out, bytes)};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}
