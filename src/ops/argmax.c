/* Argmax of each row, the greedy sampler on the GPU: one row per workgroup (shaders/argmax.comp). */
#include "check.h"
#include "ops.h"

typedef struct argmax_push {
    uint32_t rows, cols;
} argmax_push;

vkllm_status ops_argmax_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range out, uint32_t rows,
                            uint32_t cols)
{
    const char *name = "argmax_f32";
    if (rows == 0 || cols == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: empty shape, %u rows of %u columns", name, rows, cols);
    if (cols > INT32_MAX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u columns do not fit the int32 result", name, cols);
    uint32_t wg = ops->tuning->row_wg;
    VKLLM_TRY(ops_check_row_loop(name, cols, wg));
    VKLLM_TRY(ops_check_bytes(name, "x", x, 4ull * rows * cols));
    VKLLM_TRY(ops_check_bytes(name, "out", out, 4ull * rows));
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, ops->caps->subgroup_arithmetic ? SHADER(argmax_f32_sg) : SHADER(argmax_f32), 2, 0x1,
                           sizeof(argmax_push), &wg, 1, &p));
    argmax_push push = {rows, cols};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, rows, groups);
    vkr_range bind[2] = {ops_head(x, 4ull * rows * cols), ops_head(out, 4ull * rows)};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}
