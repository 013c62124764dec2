/* Embedding gather from F32 and F16 tables against a C reference: odd row lengths, out-of-range ids (rows
 * of zeros), tables bound in many chunks (a binding range shrunk for the test, so chunk starts fall inside
 * rows and words), and once a real table past lavapipe's 128 MiB binding limit. */
#include <math.h>

#include "harness.h"
#include "quant/quant.h"

/* d[0] = n_rows, d[1] = row_len, d[2] = n_ids; flag 1: some ids out of range. */
static void rows_sizes_f32(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = (size_t)s->d[0] * s->d[1];
    in[1] = s->d[2];
    *out = (size_t)s->d[2] * s->d[1];
}

/* F16 tables occupy whole words: the half count rounded up to even. */
static void rows_sizes_f16(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    rows_sizes_f32(s, in, out);
    in[0] += in[0] & 1;
}

static const int32_t bad_ids[] = {-1, INT32_MIN, INT32_MAX};

/* Ids: the table's first, last and middle rows and both sides of 32,767 (the chunk boundary of a 4 KiB-row
 * table under 128 MiB), then random rows; with flag 1, every 7th id is out of range. */
static void rows_init(const th_shape *s, uint32_t i, void *data, size_t n, th_rng *rng)
{
    if (i == 0) {
        th_dtype type = s->d[3] ? TH_F16 : TH_F32;
        if (type == TH_F32) th_fill_uniform(rng, data, n, -1.0f, 1.0f);
        else
            for (size_t k = 0; k < n; k++) ((uint16_t *)data)[k] = quant_f32_to_f16(th_uniform(rng, -1.0f, 1.0f));
        return;
    }
    int32_t *ids = data;
    uint32_t n_rows = s->d[0];
    const uint32_t fixed[] = {0, n_rows - 1, n_rows / 2, 32766, 32767, 32768};
    for (size_t k = 0; k < n; k++) {
        ids[k] = (int32_t)(th_next(rng) % n_rows);
        if (k < sizeof fixed / sizeof *fixed && fixed[k] < n_rows) ids[k] = (int32_t)fixed[k];
        if (s->flag && k % 7 == 3)
            ids[k] = k % 2 ? (int32_t)(n_rows + k % 5) : bad_ids[th_next(rng) % (sizeof bad_ids / sizeof *bad_ids)];
    }
}

static void rows_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const int32_t *ids = in[1];
    uint32_t row_len = s->d[1];
    for (uint32_t i = 0; i < s->d[2]; i++) {
        float *o = out + (size_t)i * row_len;
        bool valid = ids[i] >= 0 && (uint32_t)ids[i] < s->d[0];
        size_t first = valid ? (size_t)ids[i] * row_len : 0;
        for (uint32_t c = 0; c < row_len; c++) {
            if (!valid) o[c] = 0.0f;
            else if (s->d[3]) o[c] = quant_f16_to_f32(((const uint16_t *)in[0])[first + c]);
            else o[c] = ((const float *)in[0])[first + c];
        }
    }
}

static vkllm_status rows_record(ops_context *o, vkr_sequence *seq, const th_shape *s, const vkr_range in[TH_MAX_INPUTS],
                                vkr_range out)
{
    return ops_get_rows(o, seq, s->d[3] ? QUANT_F16 : QUANT_F32, in[0], in[1], out, s->d[0], s->d[1], s->d[2]);
}

/* F32: a copy, exact. */
static const th_op rows_f32_op = {"get_rows_f32", 0, 2, {TH_F32, TH_I32}, TH_F32, rows_sizes_f32, rows_init, rows_ref,
                                  rows_record};
/* F16 through unpackHalf2x16, which a device may let flush half subnormals (|x| < 6.1e-5) to zero: 1e-12
 * allows that, while one wrong element of these tables already gives NMSE > 1e-6. */
static const th_op rows_f16_op = {"get_rows_f16", 1e-12, 2, {TH_F16, TH_I32}, TH_F32, rows_sizes_f16, rows_init,
                                  rows_ref, rows_record};

/* n_rows, row_len, n_ids: one element; odd row lengths (F16 rows straddling words); a vocabulary-like table;
 * many ids (a prompt), some out of range. */
static const th_shape shapes_f32[] = {
    {{1, 1, 1}},   {{10, 7, 5}, {0}, 1},  {{333, 37, 100}, {0}, 1},  {{3200, 256, 513}},  {{5, 4099, 9}, {0}, 1},
};
static const th_shape shapes_f16[] = {
    {{1, 1, 1, 1}},       {{10, 7, 5, 1}, {0}, 1}, {{333, 37, 100, 1}, {0}, 1},
    {{3200, 256, 513, 1}}, {{5, 4099, 9, 1}, {0}, 1},
};

static void test_get_rows(void **state)
{
    th_check_op(&rows_f32_op, shapes_f32, sizeof shapes_f32 / sizeof *shapes_f32);
    th_check_op(&rows_f16_op, shapes_f16, sizeof shapes_f16 / sizeof *shapes_f16);
}

/* Pretends the device binds at most range bytes at offsets aligned to align (a multiple of the real
 * alignment, so the bindings stay valid) and runs the checks: many chunks, starting inside rows and words. */
static void check_with_binding_range(const th_op *op, const th_shape *shapes, size_t n, uint64_t range, uint64_t align)
{
    ops_context *o = th_ops();
    const vkr_caps *saved = o->caps;
    static vkr_caps caps; /* static: stays valid if a failed check leaves it installed */
    caps = *saved;
    caps.max_storage_buffer_range = range;
    caps.min_storage_offset_alignment = align;
    o->caps = &caps;
    printf("  (binding range %llu, alignment %llu)\n", (unsigned long long)range, (unsigned long long)align);
    th_check_op(op, shapes, n);
    o->caps = saved;
}

/* Under a 4,000-byte binding range: 7 to 148 rows per chunk, up to 39 chunks; ids and out fit one binding. */
static const th_shape chunk_shapes_f32[] = {{{1000, 37, 20}, {0}, 1}, {{301, 5, 99}, {0}, 1}, {{40, 333, 2}}};
static const th_shape chunk_shapes_f16[] = {{{1000, 37, 20, 1}, {0}, 1}, {{301, 5, 99, 1}, {0}, 1}, {{40, 333, 2, 1}}};

static void test_get_rows_chunked(void **state)
{
    uint64_t align = th_ops()->caps->min_storage_offset_alignment * 4;
    check_with_binding_range(&rows_f32_op, chunk_shapes_f32, 3, 4000, align);
    check_with_binding_range(&rows_f16_op, chunk_shapes_f16, 3, 4000, align);
}

/* 33,000 x 1,024 F32 = 135 MB: more than lavapipe's 128 MiB binding limit, so two real chunks. */
static void test_get_rows_big_table(void **state)
{
    static const th_shape big[] = {{{33000, 1024, 40}, {0}, 1}};
    printf("  maxStorageBufferRange %llu\n", (unsigned long long)th_ops()->caps->max_storage_buffer_range);
    th_check_op(&rows_f32_op, big, 1);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer table = th_alloc(4 * 60), ids = th_alloc(16), out = th_alloc(4 * 60);
    vkr_sequence *seq = th_begin();
    vkr_range rt = vkr_whole(&table), ri = vkr_whole(&ids), ro = vkr_whole(&out);
    assert_int_equal(ops_get_rows(o, seq, QUANT_F32, rt, ri, ro, 0, 6, 4), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "get_rows"));
    assert_int_equal(ops_get_rows(o, seq, QUANT_F32, rt, ri, ro, 10, 0, 4), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_get_rows(o, seq, QUANT_F32, rt, ri, ro, 10, 6, 0), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_get_rows(o, seq, QUANT_Q4_0, rt, ri, ro, 10, 6, 4), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_get_rows(o, seq, QUANT_F32, rt, ri, ro, 11, 6, 4), VKLLM_ERROR_INVALID_ARGUMENT); /* table */
    assert_int_equal(ops_get_rows(o, seq, QUANT_F32, rt, ri, ro, 10, 6, 5), VKLLM_ERROR_INVALID_ARGUMENT); /* ids */
    assert_int_equal(ops_get_rows(o, seq, QUANT_F32, rt, ri, ro, 10, 16, 4), VKLLM_ERROR_INVALID_ARGUMENT); /* out */
    /* F16: 119 halves need 60 words (240 bytes); 238 bytes are not enough, nor an offset off a word. */
    assert_int_equal(ops_get_rows(o, seq, QUANT_F16, vkr_sub(&table, 0, 238), ri, ro, 7, 17, 4),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_get_rows(o, seq, QUANT_F16, vkr_sub(&table, 2, 238), ri, ro, 7, 16, 4),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    /* A row wider than a binding can hold. */
    const vkr_caps *saved = o->caps;
    vkr_caps caps = *saved;
    caps.max_storage_buffer_range = 100;
    o->caps = &caps;
    assert_int_equal(ops_get_rows(o, seq, QUANT_F32, rt, ri, ro, 2, 30, 1), VKLLM_ERROR_INVALID_ARGUMENT);
    o->caps = saved;
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    th_check_status(ops_get_rows(o, seq, QUANT_F16, vkr_sub(&table, 0, 240), ri, ro, 7, 17, 3), "7 x 17 F16");
    th_end_and_free(seq);
    th_free(&table), th_free(&ids), th_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_rows),
        cmocka_unit_test(test_get_rows_chunked),
        cmocka_unit_test(test_get_rows_big_table),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_rows", tests);
}
