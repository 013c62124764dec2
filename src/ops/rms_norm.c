/* RMSNorm fused with its weight (and optionally the residual add before it), one row per workgroup
 * (shaders/rms_norm.comp); the _q8 variants also write the output as the mat-vec's integer path reads it. */

#include "check.h"
#include "matmul/matmul.h"
#include "ops.h"

typedef struct rms_norm_push {
    uint32_t rows, cols;
    float eps;
} rms_norm_push;

/* add: the residual to add into x first, or NULL for the plain norm.  out_q8: where to write out quantized too
 * (ops_q8_bytes(rows, cols) bytes), or NULL. */
static vkllm_status record_norm(ops_context *ops, vkr_sequence *seq, vkr_range x, const vkr_range *add, vkr_range w,
                                vkr_range out, const vkr_range *out_q8, uint32_t rows, uint32_t cols, float eps)
{
    const char *name = add ? SHADER(add_rms_norm_f32) : SHADER(rms_norm_f32);
    if (rows == 0 || cols == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: empty shape, %u rows of %u columns", name, rows, cols);
    if (!(eps >= 0.0f)) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: eps %g is not >= 0", name, (double)eps);
    if (out_q8 && cols % 32)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: a quantized copy needs columns in blocks of 32, not %u",
                          name, cols);
    uint32_t wg = ops->tuning->row_wg;
    uint64_t bytes = 4ull * rows * cols;
    VKLLM_TRY(ops_check_row_loop(name, cols, wg));
    VKLLM_TRY(ops_check_bytes(name, "x", x, bytes));
    if (add) VKLLM_TRY(ops_check_bytes(name, "add", *add, bytes));
    VKLLM_TRY(ops_check_bytes(name, "w", w, 4ull * cols));
    VKLLM_TRY(ops_check_bytes(name, "out", out, bytes));
    if (out_q8) VKLLM_TRY(ops_check_bytes(name, "out_q8", *out_q8, ops_q8_bytes(rows, cols)));
    /* The quantization in the same pass takes 8 invocations per block of 32 outputs (rms_norm.comp QUANTIZE_Q8);
     * other workgroup sizes quantize out in a dispatch of its own, to the same bits. */
    bool fused = out_q8 && wg % 8 == 0, sg = ops->caps->subgroup_arithmetic;
    const char *shader = add ? (fused ? (sg ? SHADER(add_rms_norm_f32_sg_q8) : SHADER(add_rms_norm_f32_q8))
                                      : (sg ? SHADER(add_rms_norm_f32_sg) : SHADER(add_rms_norm_f32)))
                             : (fused ? (sg ? SHADER(rms_norm_f32_sg_q8) : SHADER(rms_norm_f32_q8))
                                      : (sg ? SHADER(rms_norm_f32_sg) : SHADER(rms_norm_f32)));
    const vkr_pipeline *p;
    /* bindings: x (written back by the add variant), w, out, add (x again, unread, without one), out_q8 */
    uint32_t n_bindings = fused ? 5 : add ? 4 : 3, readonly = add ? 0xa : fused ? 0xb : 0x3;
    /* vec4 accesses: whole vec4s per row, every range on 16 bytes */
    bool vec4 = ops->tuning->norm_vec4 && cols % 4 == 0 && x.offset % 16 == 0 && w.offset % 16 == 0 &&
                out.offset % 16 == 0 && (!add || add->offset % 16 == 0);
    const uint32_t spec[3] = {wg, ops_one_subgroup(ops, wg), vec4};
    VKLLM_TRY(ops_pipeline(ops, shader, n_bindings, readonly, sizeof(rms_norm_push), spec, 3, &p));
    rms_norm_push push = {rows, cols, eps};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, rows, groups);
    vkr_range bind[5] = {ops_head(x, bytes), ops_head(w, 4ull * cols), ops_head(out, bytes),
                         add ? ops_head(*add, bytes) : ops_head(x, bytes),
                         fused ? ops_head(*out_q8, ops_q8_bytes(rows, cols)) : ops_head(x, bytes)};
    VKLLM_TRY(vkr_sequence_dispatch(seq, p, bind, &push, groups, fused ? (add ? "add_rms_norm_q8" : "rms_norm_q8") : name));
    if (out_q8 && !fused) return ops_quantize_q8(ops, seq, ops_head(out, bytes), rows, cols, *out_q8);
    return VKLLM_OK;
}

vkllm_status ops_rms_norm_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range w, vkr_range out,
                              uint32_t rows, uint32_t cols, float eps)
{
    return record_norm(ops, seq, x, NULL, w, out, NULL, rows, cols, eps);
}

vkllm_status ops_add_rms_norm_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range add, vkr_range w,
                                  vkr_range out, uint32_t rows, uint32_t cols, float eps)
{
    return record_norm(ops, seq, x, &add, w, out, NULL, rows, cols, eps);
}

vkllm_status ops_rms_norm_f32_q8(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range w, vkr_range out,
                                 vkr_range out_q8, uint32_t rows, uint32_t cols, float eps)
{
    return record_norm(ops, seq, x, NULL, w, out, &out_q8, rows, cols, eps);
}

vkllm_status ops_add_rms_norm_f32_q8(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range add, vkr_range w,
                                     vkr_range out, vkr_range out_q8, uint32_t rows, uint32_t cols, float eps)
{
    return record_norm(ops, seq, x, &add, w, out, &out_q8, rows, cols, eps);
}
