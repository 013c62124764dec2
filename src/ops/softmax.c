/* Row softmax with scale and causal mask, one row per workgroup (shaders/softmax.comp). */
#include "check.h"
#include "ops.h"

typedef struct softmax_push {
    uint32_t rows, cols;
    float scale;
    uint32_t causal, pos_offset;
} softmax_push;

vkllm_status ops_softmax_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range out, uint32_t rows,
                             uint32_t cols, float scale, bool causal, uint32_t pos_offset)
{
    const char *name = "softmax_f32";
    if (rows == 0 || cols == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: empty shape, %u rows of %u columns", name, rows, cols);
    uint32_t wg = ops->tuning->row_wg;
    VKLLM_TRY(ops_check_row_loop(name, cols, wg));
    VKLLM_TRY(ops_check_bytes(name, "x", x, 4ull * rows * cols));
    VKLLM_TRY(ops_check_bytes(name, "out", out, 4ull * rows * cols));
    const vkr_pipeline *p;
    VKLLM_TRY(ops_row_pipeline(ops, ops->caps->subgroup_arithmetic ? SHADER(softmax_f32_sg) : SHADER(softmax_f32), 2,
                               0x1, sizeof(softmax_push), wg, &p));
    softmax_push push = {rows, cols, scale, causal, pos_offset};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, rows, groups);
    uint64_t bytes = 4ull * rows * cols;
    vkr_range bind[2] = {ops_head(x, bytes), ops_head(out, bytes)};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}
