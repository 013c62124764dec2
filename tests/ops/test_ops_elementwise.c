/* Element-wise ops against their C references: add and mul (same shape and row broadcast), scale. */
#include "harness.h"

/* d[0] = n, d[1] = b_len */
static void binary_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = s->d[0];
    in[1] = s->d[1];
    *out = s->d[0];
}

static void add_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *a = in[0], *b = in[1];
    for (uint32_t i = 0; i < s->d[0]; i++) out[i] = a[i] + b[i % s->d[1]];
}

static void mul_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *a = in[0], *b = in[1];
    for (uint32_t i = 0; i < s->d[0]; i++) out[i] = a[i] * b[i % s->d[1]];
}

static vkllm_status add_record(ops_context *o, vkr_sequence *seq, const th_shape *s, const vkr_range in[TH_MAX_INPUTS],
                               vkr_range out)
{
    return ops_binary_f32(o, seq, OPS_ADD, in[0], in[1], out, s->d[0], s->d[1]);
}

static vkllm_status mul_record(ops_context *o, vkr_sequence *seq, const th_shape *s, const vkr_range in[TH_MAX_INPUTS],
                               vkr_range out)
{
    return ops_binary_f32(o, seq, OPS_MUL, in[0], in[1], out, s->d[0], s->d[1]);
}

static void scale_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = s->d[0];
    *out = s->d[0];
}

static void scale_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *a = in[0];
    for (uint32_t i = 0; i < s->d[0]; i++) out[i] = a[i] * s->f[0];
}

static vkllm_status scale_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                 const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    return ops_scale_f32(o, seq, in[0], out, s->d[0], s->f[0]);
}

/* n, b_len: odd sizes, not multiples of the workgroup or subgroup size, one past 65535 groups' worth. */
static const th_shape binary_shapes[] = {
    {{1, 1}}, {{7, 7}}, {{257, 257}}, {{4096 * 3, 4096}}, {{1000 * 37, 37}}, {{65 * 4099, 4099}},
};

static void test_add(void **state)
{
    static const th_op op = {"add", 0, 2, {TH_F32, TH_F32}, TH_F32, binary_sizes, NULL, add_ref, add_record};
    th_check_op(&op, binary_shapes, sizeof binary_shapes / sizeof *binary_shapes);
}

static void test_mul(void **state)
{
    static const th_op op = {"mul", 0, 2, {TH_F32, TH_F32}, TH_F32, binary_sizes, NULL, mul_ref, mul_record};
    th_check_op(&op, binary_shapes, sizeof binary_shapes / sizeof *binary_shapes);
}

static void test_scale(void **state)
{
    static const th_op op = {"scale", 0, 1, {TH_F32}, TH_F32, scale_sizes, NULL, scale_ref, scale_record};
    static const th_shape shapes[] = {{{1}, {2.0f}}, {{9}, {-0.5f}}, {{4097}, {0.125f}}, {{300001}, {3.0f}}};
    th_check_op(&op, shapes, sizeof shapes / sizeof *shapes);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer a = th_alloc(64), b = th_alloc(64);
    vkr_sequence *seq = th_begin();
    /* b_len must divide n; operands must hold the shape. */
    assert_int_equal(ops_binary_f32(o, seq, OPS_ADD, vkr_whole(&a), vkr_whole(&b), vkr_whole(&a), 16, 5),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_binary_f32(o, seq, OPS_ADD, vkr_whole(&a), vkr_whole(&b), vkr_whole(&a), 17, 17),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "add_f32"));
    th_end_and_free(seq);
    th_free(&a);
    th_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_mul),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_elementwise", tests);
}
