/* F32 <-> F16 conversion, halves packed two per 32-bit word (shaders/convert.comp). */
#include "check.h"
#include "ops.h"

typedef struct convert_push {
    uint32_t n;
} convert_push;

/* One invocation per word of halves: ceil(n/2) of them. */
static vkllm_status record_convert(ops_context *ops, vkr_sequence *seq, const char *shader, vkr_range src,
                                   vkr_range dst, uint32_t n)
{
    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, shader, 2, 0x1, sizeof(convert_push), &wg, 1, &p));
    convert_push push = {n};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(n / 2 + (n & 1), wg), groups);
    vkr_range bind[2] = {src, dst};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, shader);
}

static uint64_t half_words_bytes(uint32_t n) { return 4ull * (n / 2 + (n & 1)); }

vkllm_status ops_f32_to_f16(ops_context *ops, vkr_sequence *seq, vkr_range src, vkr_range dst, uint32_t n)
{
    if (n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "f32_to_f16: n is 0");
    VKLLM_TRY(ops_check_bytes("f32_to_f16", "src", src, 4ull * n));
    VKLLM_TRY(ops_check_bytes("f32_to_f16", "dst (whole words of halves)", dst, half_words_bytes(n)));
    return record_convert(ops, seq, SHADER(f32_to_f16), ops_head(src, 4ull * n), ops_head(dst, half_words_bytes(n)), n);
}

vkllm_status ops_f16_to_f32(ops_context *ops, vkr_sequence *seq, vkr_range src, vkr_range dst, uint32_t n)
{
    if (n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "f16_to_f32: n is 0");
    VKLLM_TRY(ops_check_bytes("f16_to_f32", "src (whole words of halves)", src, half_words_bytes(n)));
    VKLLM_TRY(ops_check_bytes("f16_to_f32", "dst", dst, 4ull * n));
    return record_convert(ops, seq, SHADER(f16_to_f32), ops_head(src, half_words_bytes(n)), ops_head(dst, 4ull * n), n);
}
