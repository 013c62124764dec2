/* Row softmax with scale and causal mask against a double-precision C reference, in both reduction
 * variants (subgroup arithmetic and the shared-memory tree) and at several workgroup sizes. */
#include <math.h>

#include "harness.h"

/* d[0] = rows, d[1] = cols, d[2] = pos_offset, flag = causal, f[0] = scale. */
static void softmax_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = (size_t)s->d[0] * s->d[1];
    *out = in[0];
}

/* Logits in [-40, 40]: with scales up to 4, exp without the max subtracted would overflow. */
static void softmax_init(const th_shape *s, uint32_t i, void *data, size_t n, th_rng *rng)
{
    th_fill_uniform(rng, data, n, -40.0f, 40.0f);
}

static uint32_t visible_columns(const th_shape *s, uint32_t row)
{
    if (!s->flag) return s->d[1];
    uint64_t v = (uint64_t)row + s->d[2] + 1;
    return v < s->d[1] ? (uint32_t)v : s->d[1];
}

static void softmax_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *x = in[0];
    uint32_t rows = s->d[0], cols = s->d[1];
    for (uint32_t r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        float *o = out + (size_t)r * cols;
        uint32_t visible = visible_columns(s, r);
        double m = -INFINITY, sum = 0;
        for (uint32_t c = 0; c < visible; c++) m = fmax(m, (double)xr[c] * s->f[0]);
        for (uint32_t c = 0; c < visible; c++) sum += exp((double)xr[c] * s->f[0] - m);
        for (uint32_t c = 0; c < cols; c++) o[c] = c < visible ? (float)(exp((double)xr[c] * s->f[0] - m) / sum) : 0.0f;
    }
}

static vkllm_status softmax_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                   const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    return ops_softmax_f32(o, seq, in[0], out, s->d[0], s->d[1], s->f[0], s->flag != 0, s->d[2]);
}

/* Unmasked and causal (a prompt: pos_offset 0; a continued prompt: pos_offset > 0; an offset past the row);
 * one column; odd rows shorter than the workgroup; rows longer than any workgroup; 70,000 rows. */
static const th_shape softmax_shapes[] = {
    {{1, 1}, {1.0f}},
    {{3, 7}, {0.125f}},
    {{5, 4099}, {1.0f}},
    {{17, 17, 0}, {0.5f}, 1},
    {{37, 301, 200}, {4.0f}, 1},
    {{9, 32000}, {1.0f}},
    {{2, 150001, 149990}, {1.0f}, 1},
    {{5, 11, 20}, {2.0f}, 1},
    {{70000, 3}, {1.0f}},
    {{70000, 6, 0}, {1.0f}, 1},
};

/* float exp (a few ulp) against double: NMSE ~1e-13 measured; 1e-10 leaves room for less exact exp. */
static const th_op softmax_op = {"softmax", 1e-10, 1, {TH_F32}, TH_F32, softmax_sizes, softmax_init, softmax_ref,
                                 softmax_record};

static void check_softmax_all_sizes(void)
{
    size_t n = sizeof softmax_shapes / sizeof *softmax_shapes;
    th_check_op(&softmax_op, softmax_shapes, n);
    /* Without the 70,000-row shapes (lavapipe runs a 256-wide group as 32 passes of 8 lanes: seconds). */
    th_check_op_wg(&softmax_op, softmax_shapes, n - 2, 24);
    th_check_op_wg(&softmax_op, softmax_shapes, n - 2, 256);
}

static void test_softmax(void **state) { check_softmax_all_sizes(); }

static void test_softmax_shared_memory(void **state)
{
    th_disable_subgroups(true);
    check_softmax_all_sizes();
    th_disable_subgroups(false);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer x = th_alloc(64), out = th_alloc(32);
    vkr_sequence *seq = th_begin();
    vkr_range rx = vkr_whole(&x), ro = vkr_whole(&out);
    assert_int_equal(ops_softmax_f32(o, seq, rx, ro, 0, 4, 1.0f, false, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "softmax_f32"));
    assert_int_equal(ops_softmax_f32(o, seq, rx, ro, 4, 0, 1.0f, true, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_softmax_f32(o, seq, rx, ro, 4, 4, 1.0f, false, 0), VKLLM_ERROR_INVALID_ARGUMENT); /* out */
    assert_non_null(strstr(vkllm_last_error(), "out"));
    assert_int_equal(ops_softmax_f32(o, seq, rx, ro, 1, 0x7ffffff0u, 1.0f, false, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    th_end_and_free(seq);
    th_free(&x), th_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_softmax_shared_memory),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_softmax", tests);
}
