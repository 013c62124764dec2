/* SwiGLU and GELU (ggml's tanh approximation) against double-precision C references. */
#include <math.h>

#include "harness.h"

/* d[0] = n */
static void swiglu_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = in[1] = s->d[0];
    *out = s->d[0];
}

static void gelu_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = s->d[0];
    *out = s->d[0];
}

/* [-8, 8]; with flag set, the first input takes extremes instead, where exp overflows in float (|x| >= 89)
 * and where x^3 does (1e13): results must stay finite (0 or x), never NaN (th_nmse fails on NaN and inf). */
static void activation_init(const th_shape *s, uint32_t i, void *data, size_t n, th_rng *rng)
{
    static const float extremes[] = {-1e13f, -1e4f, -100.0f, -89.0f, -10.0f, 10.0f, 89.0f, 100.0f, 1e4f, 1e13f};
    float *x = data;
    th_fill_uniform(rng, x, n, -8.0f, 8.0f);
    if (i == 0 && s->flag)
        for (size_t k = 0; k < n; k++) x[k] = extremes[th_next(rng) % (sizeof extremes / sizeof *extremes)];
}

static void swiglu_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *gate = in[0], *up = in[1];
    for (uint32_t i = 0; i < s->d[0]; i++) out[i] = (float)(gate[i] / (1.0 + exp(-(double)gate[i])) * up[i]);
}

/* ggml_gelu_f32: 0.5x(1 + tanh(sqrt(2/pi) x (1 + 0.044715x^2))), here in double. */
static void gelu_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *x = in[0];
    for (uint32_t i = 0; i < s->d[0]; i++) {
        double v = x[i];
        out[i] = (float)(0.5 * v * (1.0 + tanh(0.79788456080286535587989211986876 * v * (1.0 + 0.044715 * v * v))));
    }
}

static vkllm_status swiglu_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                  const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    return ops_swiglu_f32(o, seq, in[0], in[1], out, s->d[0]);
}

static vkllm_status gelu_record(ops_context *o, vkr_sequence *seq, const th_shape *s, const vkr_range in[TH_MAX_INPUTS],
                                vkr_range out)
{
    return ops_gelu_f32(o, seq, in[0], out, s->d[0]);
}

/* Odd sizes below and above a workgroup, an FFN row (LLaMA 11008), extremes, and one past 65,535 groups of
 * 64 (last, so the workgroup-size runs can leave it out). */
static const th_shape activation_shapes[] = {{{1}}, {{7}}, {{4097}}, {{11008 * 3 + 1}}, {{1001}, {0}, 1},
                                             {{65535 * 64 + 77}}};

/* float exp against double: a few ulp per element, NMSE ~1e-14 measured; 1e-10 leaves room for devices'
 * less exact exp. */
static const th_op swiglu_op = {"swiglu", 1e-10, 2, {TH_F32, TH_F32}, TH_F32, swiglu_sizes, activation_init,
                                swiglu_ref, swiglu_record};
static const th_op gelu_op = {"gelu", 1e-10, 1, {TH_F32}, TH_F32, gelu_sizes, activation_init, gelu_ref, gelu_record};

static void test_swiglu(void **state)
{
    th_check_op(&swiglu_op, activation_shapes, sizeof activation_shapes / sizeof *activation_shapes);
    th_check_op_wg(&swiglu_op, activation_shapes, 5, 24);
}

static void test_gelu(void **state)
{
    th_check_op(&gelu_op, activation_shapes, sizeof activation_shapes / sizeof *activation_shapes);
    th_check_op_wg(&gelu_op, activation_shapes, 5, 256);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer a = th_alloc(64), b = th_alloc(32), out = th_alloc(64);
    vkr_sequence *seq = th_begin();
    vkr_range ra = vkr_whole(&a), rb = vkr_whole(&b), ro = vkr_whole(&out);
    assert_int_equal(ops_swiglu_f32(o, seq, ra, rb, ro, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "swiglu_f32"));
    assert_int_equal(ops_swiglu_f32(o, seq, ra, rb, ro, 16), VKLLM_ERROR_INVALID_ARGUMENT); /* up holds 8 */
    assert_non_null(strstr(vkllm_last_error(), "up"));
    assert_int_equal(ops_gelu_f32(o, seq, ra, ro, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_gelu_f32(o, seq, ra, rb, 16), VKLLM_ERROR_INVALID_ARGUMENT); /* out holds 8 */
    assert_non_null(strstr(vkllm_last_error(), "gelu_f32"));
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    th_end_and_free(seq);
    th_free(&a), th_free(&b), th_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_activation", tests);
}
