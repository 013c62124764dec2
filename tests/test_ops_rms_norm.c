/* RMSNorm (fused with its weight) against a double-precision C reference, in both reduction variants:
 * subgroup arithmetic (where the device has it) and the shared-memory tree (VKLLM_DISABLE_SUBGROUP=1). */
#include <math.h>
#include <stdlib.h>

#include "harness.h"

/* d[0] = rows, d[1] = cols, f[0] = eps; inputs x [rows][cols], w [cols]. */
static void rms_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = (size_t)s->d[0] * s->d[1];
    in[1] = s->d[1];
    *out = in[0];
}

static void rms_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *x = in[0], *w = in[1];
    uint32_t rows = s->d[0], cols = s->d[1];
    for (uint32_t r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double squares = 0;
        for (uint32_t c = 0; c < cols; c++) squares += (double)xr[c] * xr[c];
        double scale = 1.0 / sqrt(squares / cols + s->f[0]);
        for (uint32_t c = 0; c < cols; c++) out[(size_t)r * cols + c] = (float)(xr[c] * scale * w[c]);
    }
}

static vkllm_status rms_record(ops_context *o, vkr_sequence *seq, const th_shape *s, const vkr_range in[TH_MAX_INPUTS],
                               vkr_range out)
{
    return ops_rms_norm_f32(o, seq, in[0], in[1], out, s->d[0], s->d[1], s->f[0]);
}

/* One column; odd rows shorter than the workgroup; rows longer than any workgroup (odd, and a llama width);
 * a 100,003-column row (12,501 iterations per lavapipe invocation); 70,000 rows (more than 65,535 groups). */
static const th_shape rms_shapes[] = {
    {{1, 1}, {1e-6f}},     {{3, 7}, {1e-5f}},       {{5, 4099}, {1e-6f}},    {{7, 4096}, {1e-5f}},
    {{2, 100003}, {1e-6f}}, {{33, 257}, {0.5f}},     {{70000, 5}, {1e-6f}},
};

/* Float sums of squares against double: relative error ~1e-7 per element, NMSE ~1e-14; the bound leaves
 * room for devices whose inversesqrt is 2 ulp. */
static const th_op rms_op = {"rms_norm", 1e-11, 2, {TH_F32, TH_F32}, TH_F32, rms_sizes, NULL, rms_ref, rms_record};

/* The residual add fused before the norm: inputs x, add [rows][cols], w [cols]. */
static void add_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = in[1] = (size_t)s->d[0] * s->d[1];
    in[2] = s->d[1];
    *out = in[0];
}

/* x + add as the device rounds it (one float add). */
static void residual_sum(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *sum)
{
    const float *x = in[0], *a = in[1];
    for (size_t i = 0; i < (size_t)s->d[0] * s->d[1]; i++) sum[i] = x[i] + a[i];
}

static void add_norm_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    float *sum = malloc((size_t)s->d[0] * s->d[1] * sizeof *sum);
    assert_non_null(sum);
    residual_sum(s, in, sum);
    const void *const norm_in[TH_MAX_INPUTS] = {sum, in[2]};
    rms_ref(s, norm_in, out);
    free(sum);
}

static vkllm_status add_norm_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                    const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    return ops_add_rms_norm_f32(o, seq, in[0], in[1], in[2], out, s->d[0], s->d[1], s->f[0]);
}

/* The updated x: the norm goes to out, then x is copied over it. */
static void add_sum_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out) { residual_sum(s, in, out); }

static vkllm_status add_sum_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                   const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    VKLLM_TRY(ops_add_rms_norm_f32(o, seq, in[0], in[1], in[2], out, s->d[0], s->d[1], s->f[0]));
    return vkr_sequence_copy(seq, in[0], out);
}

static const th_op add_norm_op = {"add_rms_norm", 1e-11, 3, {TH_F32, TH_F32, TH_F32}, TH_F32, add_sizes, NULL,
                                  add_norm_ref, add_norm_record};
static const th_op add_sum_op = {"add_rms_norm (x)", 0, 3, {TH_F32, TH_F32, TH_F32}, TH_F32, add_sizes, NULL,
                                 add_sum_ref, add_sum_record};

/* Also at workgroup sizes of several subgroups, one not a power of two; those runs leave out the 70,000
 * rows (lavapipe runs a 256-wide group as 32 passes of 8 lanes: seconds). */
static void check_rms_norm_all_sizes(void)
{
    size_t n = sizeof rms_shapes / sizeof *rms_shapes;
    th_check_op(&rms_op, rms_shapes, n);
    th_check_op_wg(&rms_op, rms_shapes, n - 1, 24);
    th_check_op_wg(&rms_op, rms_shapes, n - 1, 256);
    th_check_op(&add_norm_op, rms_shapes, n);
    th_check_op(&add_sum_op, rms_shapes, n);
    th_check_op_wg(&add_norm_op, rms_shapes, n - 1, 24);
}

static void test_rms_norm(void **state)
{
    printf("  subgroup arithmetic: %s\n", th_ops()->caps->subgroup_arithmetic ? "yes" : "no");
    check_rms_norm_all_sizes();
}

static void test_rms_norm_shared_memory(void **state)
{
    th_disable_subgroups(true);
    check_rms_norm_all_sizes();
    th_disable_subgroups(false);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer x = th_alloc(64), w = th_alloc(16), out = th_alloc(64);
    vkr_sequence *seq = th_begin();
    vkr_range rx = vkr_whole(&x), rw = vkr_whole(&w), ro = vkr_whole(&out);
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 0, 4, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "rms_norm_f32"));
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 4, 0, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 5, 4, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT); /* x */
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 2, 8, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT); /* w */
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 4, 4, -1.0f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 1, 0xfffffff0u, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "iterations"));
    assert_int_equal(ops_add_rms_norm_f32(o, seq, rx, rw, rw, ro, 4, 4, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT); /* add */
    assert_non_null(strstr(vkllm_last_error(), "add_rms_norm_f32"));
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    th_end_and_free(seq);
    th_free(&x), th_free(&w), th_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rms_norm),
        cmocka_unit_test(test_rms_norm_shared_memory),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_norm", tests);
}
