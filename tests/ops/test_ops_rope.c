/* RoPE, normal (llama.cpp mode 0) and NeoX (mode 2) layouts, against a double-precision reference of
 * llama.cpp's formula (ggml-cpu rope with ext_factor 0): theta_i = pos * freq_scale * base^(-2i/n_rot). */
#include <math.h>

#include "harness.h"

/* d[0] = n_tokens, d[1] = n_heads, d[2] = head_dim, d[3] = n_rot, d[4] = first position, d[5] = mode;
 * f[0] = freq_base, f[1] = freq_scale; flag: positions 0 = d[4], d[4]+1, ...; 1 = random in [0, 32768);
 * 2 = two sequences, 0, 1, ... then d[4], d[4]+1, ... */
static void rope_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = (size_t)s->d[0] * s->d[1] * s->d[2];
    in[1] = s->d[0];
    *out = in[0];
}

static void rope_init(const th_shape *s, uint32_t i, void *data, size_t n, th_rng *rng)
{
    if (i == 0) {
        th_fill_uniform(rng, data, n, -1.0f, 1.0f);
        return;
    }
    int32_t *pos = data;
    for (uint32_t t = 0; t < n; t++) {
        if (s->flag == 1) pos[t] = (int32_t)(th_next(rng) % 32768);
        else if (s->flag == 2) pos[t] = t < n / 2 ? (int32_t)t : (int32_t)(s->d[4] + t - n / 2);
        else pos[t] = (int32_t)(s->d[4] + t);
    }
}

static void rope_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *x = in[0];
    const int32_t *pos = in[1];
    uint32_t n_heads = s->d[1], head_dim = s->d[2], n_rot = s->d[3];
    bool neox = s->d[5] == OPS_ROPE_NEOX;
    for (size_t row = 0; row < (size_t)s->d[0] * n_heads; row++) {
        const float *xr = x + row * head_dim;
        float *o = out + row * head_dim;
        for (uint32_t c = n_rot; c < head_dim; c++) o[c] = xr[c];
        for (uint32_t i = 0; i < n_rot / 2; i++) {
            double theta = pos[row / n_heads] * (double)s->f[1] * pow(s->f[0], -2.0 * i / n_rot);
            uint32_t i0 = neox ? i : 2 * i, i1 = neox ? i + n_rot / 2 : 2 * i + 1;
            double x0 = xr[i0], x1 = xr[i1];
            o[i0] = (float)(x0 * cos(theta) - x1 * sin(theta));
            o[i1] = (float)(x0 * sin(theta) + x1 * cos(theta));
        }
    }
}

static vkllm_status rope_record(ops_context *o, vkr_sequence *seq, const th_shape *s, const vkr_range in[TH_MAX_INPUTS],
                                vkr_range out)
{
    ops_rope_params p = {(ops_rope_mode)s->d[5], s->d[3], s->f[0], s->f[1]};
    return ops_rope_f32(o, seq, in[0], in[1], out, s->d[0], s->d[1], s->d[2], &p);
}

/* Positions up to ~1,100: the angle is off by ~1e-4 rad at most. */
static const th_shape near_shapes[] = {
    {{1, 1, 2, 2, 0, 0}, {10000.0f, 1.0f}},
    {{7, 3, 64, 64, 5, 0}, {10000.0f, 1.0f}},            /* LLaMA head, positions from an offset */
    {{7, 3, 64, 64, 5, OPS_ROPE_NEOX}, {10000.0f, 1.0f}},
    {{5, 4, 128, 128, 900, OPS_ROPE_NEOX}, {1000000.0f, 1.0f}, 2}, /* Qwen base, two sequences */
    {{9, 5, 80, 32, 17, OPS_ROPE_NEOX}, {10000.0f, 1.0f}},  /* partial rotation (Phi-2: 32 of 80) */
    {{9, 5, 78, 22, 17, 0}, {10000.0f, 1.0f}},            /* partial, dims not multiples of 8 */
    {{13, 2, 6, 4, 100, 0}, {500000.0f, 0.25f}},          /* linear scaling */
    {{1111, 7, 66, 66, 0, OPS_ROPE_NEOX}, {10000.0f, 0.5f}}, /* 256,410 pairs: > 65,535 groups of 1..4 */
};

/* Positions up to 32k: the angle pos * base^(-2i/n_rot) rounds to float and pow errs an ulp or two, so the
 * angle is off by up to ~1e-7 * pos rad (3.1e-3 rad at 32,768 on lavapipe): NMSE up to 6.2e-7 measured at
 * positions ~32,700. */
static const th_shape far_shapes[] = {
    {{64, 2, 128, 128, 0, 0}, {10000.0f, 1.0f}, 1},
    {{64, 2, 128, 128, 0, OPS_ROPE_NEOX}, {1000000.0f, 1.0f}, 1},
    {{33, 3, 64, 48, 32700, 0}, {10000.0f, 1.0f}},
    {{33, 3, 64, 64, 32000, OPS_ROPE_NEOX}, {10000.0f, 0.25f}, 2},
};

/* Bounds: near, measured 1e-14 .. 1.1e-10 (positions to ~1,100, base 1e6) on lavapipe; far, measured up to
 * 6.2e-7; both leave ~6x for GPUs whose pow is an exp2/log2 approximation a few ulp less exact. */
static const th_op rope_near = {"rope", 1e-9, 2, {TH_F32, TH_I32}, TH_F32, rope_sizes, rope_init, rope_ref,
                                rope_record};
static const th_op rope_far = {"rope@32k", 4e-6, 2, {TH_F32, TH_I32}, TH_F32, rope_sizes, rope_init, rope_ref,
                               rope_record};

static void test_rope_near(void **state)
{
    th_check_op(&rope_near, near_shapes, sizeof near_shapes / sizeof *near_shapes);
}

static void test_rope_far(void **state) { th_check_op(&rope_far, far_shapes, sizeof far_shapes / sizeof *far_shapes); }

static void test_rope_workgroup_sizes(void **state)
{
    th_check_op_wg(&rope_near, near_shapes, sizeof near_shapes / sizeof *near_shapes, 24);
    th_check_op_wg(&rope_near, near_shapes, sizeof near_shapes / sizeof *near_shapes, 256);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer x = th_alloc(4 * 64), pos = th_alloc(16), out = th_alloc(4 * 64);
    vkr_sequence *seq = th_begin();
    vkr_range rx = vkr_whole(&x), rp = vkr_whole(&pos), ro = vkr_whole(&out);
    ops_rope_params p = {OPS_ROPE_NORMAL, 8, 10000.0f, 1.0f};
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 4, 2, 7, &p), VKLLM_ERROR_INVALID_ARGUMENT); /* odd dim */
    assert_non_null(strstr(vkllm_last_error(), "rope_f32"));
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 0, 2, 8, &p), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 5, 2, 8, &p), VKLLM_ERROR_INVALID_ARGUMENT); /* pos, x */
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 4, 2, 8, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
    p.n_rot = 7;
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 4, 2, 8, &p), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "n_rot"));
    p.n_rot = 10;
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 4, 2, 8, &p), VKLLM_ERROR_INVALID_ARGUMENT);
    p.n_rot = 0;
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 4, 2, 8, &p), VKLLM_ERROR_INVALID_ARGUMENT);
    p.n_rot = 8, p.mode = (ops_rope_mode)1;
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 4, 2, 8, &p), VKLLM_ERROR_INVALID_ARGUMENT);
    p.mode = OPS_ROPE_NEOX, p.freq_base = 0.0f;
    assert_int_equal(ops_rope_f32(o, seq, rx, rp, ro, 4, 2, 8, &p), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    th_end_and_free(seq);
    th_free(&x), th_free(&pos), th_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_near),
        cmocka_unit_test(test_rope_far),
        cmocka_unit_test(test_rope_workgroup_sizes),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_rope", tests);
}
