/* Row argmax (the greedy sampler) against a CPU loop, in both reduction variants (subgroup arithmetic and
 * the shared-memory tree) and at several workgroup sizes; exact: the index must be the CPU's, the first on
 * ties. */
#include <math.h>

#include "harness.h"

/* d[0] = rows, d[1] = cols, d[2] = distinct values (few: many ties; 0: continuous), flag = 1: rows of -inf. */
static void argmax_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = (size_t)s->d[0] * s->d[1];
    *out = s->d[0];
}

static void argmax_init(const th_shape *s, uint32_t i, void *data, size_t n, th_rng *rng)
{
    float *x = data;
    for (size_t k = 0; k < n; k++) {
        if (s->flag) x[k] = -INFINITY;
        else if (s->d[2]) x[k] = (float)(th_next(rng) % s->d[2]) - 3.0f; /* ties, negatives, zeros */
        else x[k] = th_normal(rng) * 5.0f;
    }
    /* Continuous rows get one tie spread across the row: the maximum at the last column and at a random
     * earlier one.  (Rows of few distinct values tie everywhere.) */
    if (!s->flag && !s->d[2] && s->d[1] > 2)
        for (uint32_t r = 0; r < s->d[0]; r++) {
            float *row = x + (size_t)r * s->d[1];
            row[s->d[1] - 1] = row[th_next(rng) % (s->d[1] - 1)] = 1e30f;
        }
}

static void argmax_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *x = in[0];
    for (uint32_t r = 0; r < s->d[0]; r++) {
        const float *row = x + (size_t)r * s->d[1];
        uint32_t best = 0;
        for (uint32_t c = 1; c < s->d[1]; c++)
            if (row[c] > row[best]) best = c;
        out[r] = (float)best;
    }
}

static vkllm_status argmax_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                  const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    return ops_argmax_f32(o, seq, in[0], out, s->d[0], s->d[1]);
}

/* Qwen's vocabulary (152,064: 19,008 iterations per lavapipe invocation) and an odd neighbour; LLaMA's
 * 32,000; rows shorter than the workgroup; all-equal rows; rows of -inf; 70,000 rows. */
static const th_shape argmax_shapes[] = {
    {{1, 1, 0}},      {{3, 7, 0}},      {{4, 5, 1}},       {{5, 4099, 4}},   {{2, 152064, 0}}, {{2, 152063, 3}},
    {{3, 32000, 0}},  {{2, 33, 0}, {0}, 1}, {{70000, 3, 2}},
};

static const th_op argmax_op = {"argmax", 0, 1, {TH_F32}, TH_I32, argmax_sizes, argmax_init, argmax_ref,
                                argmax_record};

static void check_argmax_all_sizes(void)
{
    size_t n = sizeof argmax_shapes / sizeof *argmax_shapes;
    th_check_op(&argmax_op, argmax_shapes, n);
    /* Without the 70,000 rows (lavapipe runs a 256-wide group as 32 passes of 8 lanes: seconds). */
    th_check_op_wg(&argmax_op, argmax_shapes, n - 1, 24);
    th_check_op_wg(&argmax_op, argmax_shapes, n - 1, 256);
}

static void test_argmax(void **state) { check_argmax_all_sizes(); }

static void test_argmax_shared_memory(void **state)
{
    th_disable_subgroups(true);
    check_argmax_all_sizes();
    th_disable_subgroups(false);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer x = th_alloc(64), out = th_alloc(8);
    vkr_sequence *seq = th_begin();
    vkr_range rx = vkr_whole(&x), ro = vkr_whole(&out);
    assert_int_equal(ops_argmax_f32(o, seq, rx, ro, 0, 4), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "argmax_f32"));
    assert_int_equal(ops_argmax_f32(o, seq, rx, ro, 2, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_argmax_f32(o, seq, rx, ro, 4, 4), VKLLM_ERROR_INVALID_ARGUMENT); /* out holds 2 */
    assert_int_equal(ops_argmax_f32(o, seq, rx, ro, 2, 9), VKLLM_ERROR_INVALID_ARGUMENT); /* x holds 16 */
    assert_int_equal(ops_argmax_f32(o, seq, rx, ro, 1, 0x80000000u), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    th_end_and_free(seq);
    th_free(&x), th_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_argmax_shared_memory),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_argmax", tests);
}
