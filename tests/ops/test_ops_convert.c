/* F32 <-> F16 conversion against quant_f32_to_f16 / quant_f16_to_f32: exact, bit for bit (round to nearest
 * even, subnormals, overflow, infinities, NaN), at odd sizes where the last word holds one half. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "quant/quant.h"

/* ---- through the op checker: NMSE 0 on finite values ---- */

/* d[0] = n; flag: values 0 = uniform [-1, 1]; 1 = any magnitude from 2^-30 to 2^17 (half subnormals,
 * underflow to zero, overflow to infinity); 2 = exact midpoints between neighbouring halves (ties). */
static void to_f16_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = s->d[0];
    *out = s->d[0];
}

static void to_f16_init(const th_shape *s, uint32_t i, void *data, size_t n, th_rng *rng)
{
    float *x = data;
    for (size_t k = 0; k < n; k++) {
        float sign = th_next(rng) & 1 ? -1.0f : 1.0f;
        if (s->flag == 1) {
            x[k] = sign * ldexpf(th_uniform(rng, 1.0f, 2.0f), (int)(th_next(rng) % 48) - 30);
        } else if (s->flag == 2) {
            /* A random finite half and the next one up; their mean is exact in float. */
            uint16_t h = (uint16_t)(th_next(rng) % 0x7bff);
            x[k] = sign * (float)(((double)quant_f16_to_f32(h) + quant_f16_to_f32((uint16_t)(h + 1))) / 2);
        } else {
            x[k] = th_uniform(rng, -1.0f, 1.0f);
        }
    }
}

static void to_f16_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *x = in[0];
    for (uint32_t i = 0; i < s->d[0]; i++) out[i] = quant_f16_to_f32(quant_f32_to_f16(x[i]));
}

static vkllm_status to_f16_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                  const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    return ops_f32_to_f16(o, seq, in[0], out, s->d[0]);
}

/* The F16 input is padded to whole words: n rounded up to even halves. */
static void to_f32_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = s->d[0] + (s->d[0] & 1);
    *out = s->d[0];
}

/* Random half bit patterns, NaN excluded (th_nmse rejects NaN; the bit-exact test below covers it). */
static void to_f32_init(const th_shape *s, uint32_t i, void *data, size_t n, th_rng *rng)
{
    uint16_t *h = data;
    for (size_t k = 0; k < n; k++) {
        do h[k] = (uint16_t)th_next(rng);
        while ((h[k] & 0x7c00) == 0x7c00 && (h[k] & 0x3ff));
    }
}

static void to_f32_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const uint16_t *h = in[0];
    for (uint32_t i = 0; i < s->d[0]; i++) out[i] = quant_f16_to_f32(h[i]);
}

static vkllm_status to_f32_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                  const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    return ops_f16_to_f32(o, seq, in[0], out, s->d[0]);
}

static const th_shape convert_shapes[] = {
    {{1}}, {{7}}, {{4097}, {0}, 1}, {{100001}, {0}, 2}, {{65535 * 128 + 3}, {0}, 1},
};

/* Exact: the shader does the CPU's integer rounding, so any difference is a bug. */
static const th_op to_f16_op = {"f32_to_f16", 0, 1, {TH_F32}, TH_F16, to_f16_sizes, to_f16_init, to_f16_ref,
                                to_f16_record};
static const th_op to_f32_op = {"f16_to_f32", 0, 1, {TH_F16}, TH_F32, to_f32_sizes, to_f32_init, to_f32_ref,
                                to_f32_record};

static void test_f32_to_f16(void **state)
{
    th_check_op(&to_f16_op, convert_shapes, sizeof convert_shapes / sizeof *convert_shapes);
}

static void test_f16_to_f32(void **state)
{
    th_check_op(&to_f32_op, convert_shapes, sizeof convert_shapes / sizeof *convert_shapes);
    th_check_op_wg(&to_f32_op, convert_shapes, 4, 24);
}

/* ---- bit for bit, NaN included ---- */

static void run_convert(bool to_f16, const void *src, size_t src_bytes, void *dst, size_t dst_bytes, uint32_t n)
{
    vkr_buffer in = th_upload(src, src_bytes), out = th_alloc(dst_bytes);
    th_check_status(vkr_fill(th_device(), &out, 0, dst_bytes, 0xdeadbeefu), "poison");
    vkr_sequence *seq = th_begin();
    th_check_status(to_f16 ? ops_f32_to_f16(th_ops(), seq, vkr_whole(&in), vkr_whole(&out), n)
                           : ops_f16_to_f32(th_ops(), seq, vkr_whole(&in), vkr_whole(&out), n),
                    "convert");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    vkr_sequence_destroy(seq);
    th_download(&out, dst, dst_bytes);
    th_free(&in), th_free(&out);
}

/* Every half, as bits: 65,535 of them (odd), so the last word carries one. */
static void test_f16_to_f32_every_half(void **state)
{
    uint32_t n = 65535;
    uint16_t *h = calloc(n + 1, sizeof *h);
    uint32_t *got = calloc(n, sizeof *got);
    assert_true(h && got);
    for (uint32_t i = 0; i < n; i++) h[i] = (uint16_t)(i + 1); /* 1 .. 0xffff; 0 is the padding */
    run_convert(false, h, (n + 1) * 2, got, n * 4, n);
    for (uint32_t i = 0; i < n; i++) {
        float want = quant_f16_to_f32(h[i]);
        uint32_t bits;
        memcpy(&bits, &want, 4);
        if (got[i] != bits) fail_msg("half 0x%04x: got 0x%08x, want 0x%08x", h[i], got[i], bits);
    }
    free(h), free(got);
}

/* Special floats and random bit patterns (NaN payloads, float subnormals, everything). */
static void test_f32_to_f16_bits(void **state)
{
    static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 65504.0f, 65519.99f, 65520.0f,
                                    -65520.0f, 0x1p-14f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-24f, 0x1p-149f,
                                    1.0f + 0x1p-11f, 1.0f + 0x1.8p-11f, 1.0f + 0x1p-11f + 0x1p-10f, 3e38f};
    uint32_t n_special = sizeof special / sizeof *special;
    uint32_t n = (1u << 20) + 1;
    uint32_t *x = malloc(n * 4ull);
    uint32_t words = n / 2 + 1;
    uint32_t *got = malloc(words * 4ull);
    assert_true(x && got);
    th_rng rng = {42};
    for (uint32_t i = 0; i < n; i++) x[i] = (uint32_t)th_next(&rng);
    memcpy(x, special, sizeof special);
    run_convert(true, x, n * 4ull, got, words * 4ull, n);
    for (uint32_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, &x[i], 4);
        uint16_t want = quant_f32_to_f16(f), h = (uint16_t)(got[i / 2] >> (16 * (i & 1)));
        if (h != want)
            fail_msg("float 0x%08x%s: got 0x%04x, want 0x%04x", x[i], i < n_special ? " (special)" : "", h, want);
    }
    assert_int_equal(got[words - 1] >> 16, 0); /* odd n: the last word's upper half is written 0 */
    free(x), free(got);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer a = th_alloc(28), b = th_alloc(12);
    vkr_sequence *seq = th_begin();
    vkr_range ra = vkr_whole(&a), rb = vkr_whole(&b);
    assert_int_equal(ops_f32_to_f16(o, seq, ra, rb, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "f32_to_f16"));
    assert_int_equal(ops_f32_to_f16(o, seq, ra, rb, 8), VKLLM_ERROR_INVALID_ARGUMENT); /* src holds 7 */
    assert_int_equal(ops_f32_to_f16(o, seq, ra, vkr_sub(&b, 0, 10), 5), VKLLM_ERROR_INVALID_ARGUMENT); /* 3 words */
    assert_int_equal(ops_f16_to_f32(o, seq, rb, ra, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_f16_to_f32(o, seq, rb, ra, 8), VKLLM_ERROR_INVALID_ARGUMENT); /* dst holds 7 */
    assert_int_equal(ops_f16_to_f32(o, seq, vkr_sub(&b, 0, 10), ra, 5), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "f16_to_f32"));
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    /* Odd n, whole words: fine. */
    th_check_status(ops_f32_to_f16(o, seq, ra, rb, 5), "f32_to_f16 n=5");
    th_end_and_free(seq);
    th_free(&a), th_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_to_f16),
        cmocka_unit_test(test_f16_to_f32),
        cmocka_unit_test(test_f16_to_f32_every_half),
        cmocka_unit_test(test_f32_to_f16_bits),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_convert", tests);
}
