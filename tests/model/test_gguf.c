/* GGUF reader and writer: round trips of every value type (nested arrays included), the shipped
 * stories260K.gguf, and malformed files built in memory, each of which must fail with
 * VKLLM_ERROR_BAD_FORMAT and a message naming what is wrong. */
#include "harness.h"
#include "paths.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/error.h"
#include "gguf/gguf.h"
#include "quant/quant.h"

/* ---- an in-memory GGUF builder for hand-made (and broken) files ---- */

typedef struct buf {
    uint8_t data[8192];
    size_t size;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    assert_true(b->size + n <= sizeof b->data);
    memcpy(b->data + b->size, p, n);
    b->size += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_pad(buf *b, size_t alignment)
{
    while (b->size % alignment) b->data[b->size++] = 0;
}

/* The fields a malformed-input test may change; base_variant() is a small valid file. */
typedef struct variant {
    uint32_t version;
    uint64_t n_tensors, n_kv;
    uint64_t arch_len;  /* length field of general.architecture's value */
    const char *key1;   /* name of the second key */
    uint32_t arr_type;  /* element type of the second key's array */
    uint64_t arr_count;
    const char *t1_name;
    uint32_t t1_n_dims;
    uint64_t t1_ne[5];
    uint32_t t1_type;
    uint64_t t1_offset;
} variant;

static variant base_variant(void)
{
    return (variant){.version = 3, .n_tensors = 2, .n_kv = 2, .arch_len = 5, .key1 = "answer",
                     .arr_type = GGUF_TYPE_UINT32, .arr_count = 3, .t1_name = "t1", .t1_n_dims = 1,
                     .t1_ne = {8}, .t1_type = QUANT_F32, .t1_offset = 32};
}

/* 2 kv (general.architecture = "llama", answer = [1, 2, 3]), tensor t0 F32 [4, 2] at 0, tensor t1 F32 [8]
 * at 32; both 32 bytes, so the file ends exactly where t1's data ends. */
static void build(buf *b, const variant *v)
{
    memset(b, 0, sizeof *b);
    put(b, "GGUF", 4);
    put_u32(b, v->version);
    put_u64(b, v->n_tensors);
    put_u64(b, v->n_kv);
    put_str(b, "general.architecture");
    put_u32(b, GGUF_TYPE_STRING);
    put_u64(b, v->arch_len);
    put(b, "llama", 5);
    put_str(b, v->key1);
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, v->arr_type);
    put_u64(b, v->arr_count);
    for (uint32_t i = 1; i <= 3; i++) put_u32(b, i);
    put_str(b, "t0");
    put_u32(b, 2);
    put_u64(b, 4);
    put_u64(b, 2);
    put_u32(b, QUANT_F32);
    put_u64(b, 0);
    put_str(b, v->t1_name);
    put_u32(b, v->t1_n_dims);
    for (uint32_t d = 0; d < v->t1_n_dims && d < 5; d++) put_u64(b, v->t1_ne[d]);
    put_u32(b, v->t1_type);
    put_u64(b, v->t1_offset);
    put_pad(b, 32);
    for (int i = 0; i < 16; i++) {
        float f = (float)i;
        put(b, &f, 4);
    }
}

/* Opens a copy of exactly `size` bytes, so ASan catches any read past the end. */
static vkllm_status open_copy(const void *data, size_t size, gguf_file **out)
{
    void *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    memcpy(copy, data, size);
    vkllm_status status = gguf_open_memory(copy, size, "bad.gguf", out);
    if (status == VKLLM_OK) gguf_close(*out);
    free(copy);
    return status;
}

static void expect_bad(const variant *v, const char *needle)
{
    buf b;
    build(&b, v);
    gguf_file *f = (gguf_file *)1;
    vkllm_status status = open_copy(b.data, b.size, &f);
    if (status != VKLLM_ERROR_BAD_FORMAT || !strstr(vkllm_last_error(), needle) ||
        !strstr(vkllm_last_error(), "bad.gguf"))
        fail_msg("expected BAD_FORMAT with '%s', got %s: %s", needle, vkllm_status_name(status), vkllm_last_error());
    assert_null(f);
}

static void test_base_variant_is_valid(void **state)
{
    (void)state;
    buf b;
    variant v = base_variant();
    build(&b, &v);
    gguf_file *f;
    assert_int_equal(gguf_open_memory(b.data, b.size, "ok.gguf", &f), VKLLM_OK);
    assert_int_equal(f->n_kv, 2);
    assert_int_equal(f->n_tensors, 2);
    assert_int_equal(f->data_offset % 32, 0);
    const gguf_tensor_info *t1 = gguf_find_tensor(f, "t1");
    assert_non_null(t1);
    assert_int_equal(t1->size, 32);
    float first;
    memcpy(&first, t1->data, 4);
    assert_true(first == 8.0f);
    gguf_array arr;
    assert_int_equal(gguf_get_array(f, "answer", &arr), VKLLM_OK);
    assert_int_equal(gguf_array_i64(&arr, 2), 3);
    assert_int_equal(gguf_array_i64(&arr, 3), 0); /* out of range */
    gguf_close(f);
}

static void test_bad_magic_and_versions(void **state)
{
    (void)state;
    buf b;
    variant v = base_variant();
    build(&b, &v);
    b.data[0] = 'X';
    gguf_file *f;
    assert_int_equal(open_copy(b.data, b.size, &f), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "bad magic"));

    v.version = 1;
    expect_bad(&v, "version 1 is not supported");
    v.version = 99;
    expect_bad(&v, "unsupported version 99 (expected 2 or 3)");
    v.version = 0x03000000; /* a big-endian file read little-endian */
    expect_bad(&v, "big-endian");
    v.version = 2; /* v2 has the same layout as v3 */
    buf b2;
    build(&b2, &v);
    assert_int_equal(gguf_open_memory(b2.data, b2.size, "v2.gguf", &f), VKLLM_OK);
    assert_int_equal(f->version, 2);
    gguf_close(f);
}

static void test_every_truncation_fails(void **state)
{
    (void)state;
    buf b;
    variant v = base_variant();
    build(&b, &v);
    for (size_t len = 0; len < b.size; len++) {
        gguf_file *f = (gguf_file *)1;
        vkllm_status status = open_copy(b.data, len, &f);
        if (status != VKLLM_ERROR_BAD_FORMAT || !strstr(vkllm_last_error(), "bad.gguf"))
            fail_msg("prefix of %zu of %zu bytes: %s: %s", len, b.size, vkllm_status_name(status), vkllm_last_error());
        assert_null(f);
    }
}

static void test_huge_counts(void **state)
{
    (void)state;
    variant v = base_variant();
    v.n_kv = UINT64_MAX / 2;
    expect_bad(&v, "metadata count");
    v = base_variant();
    v.n_tensors = (uint64_t)1 << 60;
    expect_bad(&v, "tensor count");
    v = base_variant();
    v.arr_count = UINT64_MAX / 2; /* count * 4 would overflow */
    expect_bad(&v, "metadata 1 'answer': array of 9223372036854775807 uint32");
    v = base_variant();
    v.arr_type = GGUF_TYPE_STRING; /* three "strings" whose lengths run off the end */
    v.arr_count = 1000;
    expect_bad(&v, "does not fit");
}

static void test_bad_strings_and_types(void **state)
{
    (void)state;
    variant v = base_variant();
    v.arch_len = 1u << 20;
    expect_bad(&v, "metadata 0 'general.architecture': string value length 1048576");
    v = base_variant();
    v.arch_len = UINT64_MAX;
    expect_bad(&v, "runs past the end of the file");
    v = base_variant();
    v.arr_type = 13;
    expect_bad(&v, "array element type 13");
    v = base_variant();
    v.key1 = "general.architecture";
    expect_bad(&v, "metadata 1 'general.architecture': duplicate name (also metadata 0)");
}

static void test_bad_tensors(void **state)
{
    (void)state;
    variant v = base_variant();
    v.t1_offset = 4096;
    expect_bad(&v, "tensor 1 't1': data offset 4096");
    v.t1_offset = 64;
    expect_bad(&v, "runs past end of file");
    v.t1_offset = UINT64_MAX - 31; /* offset + size would wrap */
    expect_bad(&v, "past end of file");
    v = base_variant();
    v.t1_offset = 36;
    expect_bad(&v, "tensor 1 't1': data offset 36 is not a multiple of the alignment 32");
    v = base_variant();
    v.t1_n_dims = 5;
    expect_bad(&v, "n_dims 5 (expected 1..4)");
    v = base_variant();
    v.t1_n_dims = 0;
    expect_bad(&v, "n_dims 0");
    v = base_variant();
    v.t1_n_dims = 2;
    v.t1_ne[1] = 0;
    expect_bad(&v, "ne[1] = 0");
    v = base_variant();
    v.t1_n_dims = 4;
    v.t1_ne[1] = v.t1_ne[2] = v.t1_ne[3] = (uint64_t)1 << 30;
    expect_bad(&v, "element count overflows");
    v = base_variant();
    v.t1_ne[0] = (uint64_t)1 << 63; /* negative as ggml's int64 */
    expect_bad(&v, "ne[0] = 9223372036854775808");
    v = base_variant();
    v.t1_type = 99;
    expect_bad(&v, "unknown tensor type 99");
    v = base_variant();
    v.t1_type = QUANT_Q4_0; /* ne[0] = 8 is not a whole Q4_0 block */
    expect_bad(&v, "not a multiple of the Q4_0 block size 32");
    v = base_variant();
    v.t1_name = "t0";
    expect_bad(&v, "tensor 1 't0': duplicate name (also tensor 0)");
}

static void test_alignment_key(void **state)
{
    (void)state;
    /* general.alignment = 64 as the second key moves t1 (at offset 32) off the alignment. */
    buf b;
    memset(&b, 0, sizeof b);
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, GGUF_TYPE_INT32);
    put_u32(&b, 64);
    gguf_file *f;
    assert_int_equal(open_copy(b.data, b.size, &f), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "'general.alignment': type int32 (expected uint32)"));
    b.data[b.size - 8] = GGUF_TYPE_UINT32;
    b.data[b.size - 4] = 48;
    assert_int_equal(open_copy(b.data, b.size, &f), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "48 is not a power of two"));
    b.data[b.size - 4] = 64;
    assert_int_equal(gguf_open_memory(b.data, b.size, "a.gguf", &f), VKLLM_OK);
    assert_int_equal(f->alignment, 64);
    gguf_close(f);
}

static void test_unknown_value_type_and_deep_nesting(void **state)
{
    (void)state;
    buf b;
    memset(&b, 0, sizeof b);
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, 0);
    put_u64(&b, 1);
    put_str(&b, "k");
    put_u32(&b, 42);
    put_u32(&b, 0);
    gguf_file *f;
    assert_int_equal(open_copy(b.data, b.size, &f), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "metadata 0 'k': value type 42"));

    b.size -= 8;
    put_u32(&b, GGUF_TYPE_ARRAY);
    for (int depth = 0; depth < 40; depth++) {
        put_u32(&b, GGUF_TYPE_ARRAY);
        put_u64(&b, 1);
    }
    assert_int_equal(open_copy(b.data, b.size, &f), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "nested more than"));
}

static void test_open_missing_file_is_io_error(void **state)
{
    (void)state;
    gguf_file *f;
    assert_int_equal(gguf_open("/nonexistent/dir/model.gguf", &f), VKLLM_ERROR_IO);
    assert_non_null(strstr(vkllm_last_error(), "/nonexistent/dir/model.gguf"));
    assert_int_equal(gguf_open("/", &f), VKLLM_ERROR_IO);
}

/* ---- round trips through the writer ---- */

static void temp_path(char *out, size_t size, const char *tag)
{
    snprintf(out, size, "%s/test_gguf_%s_%ld.gguf", th_binary_dir(), tag, (long)getpid());
}

static const gguf_kv *must_find(const gguf_file *f, const char *key, gguf_value_type type)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) fail_msg("key %s missing", key);
    assert_int_equal(kv->type, type);
    return kv;
}

static void read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    *data = malloc(*size);
    assert_non_null(*data);
    assert_int_equal(fread(*data, 1, *size, fp), *size);
    fclose(fp);
}

static void set_all_value_types(gguf_writer *w)
{
    uint8_t u8 = 250;
    int8_t i8 = -120;
    uint16_t u16 = 65000;
    int16_t i16 = -32000;
    uint64_t u64 = UINT64_MAX - 5;
    int64_t i64 = INT64_MIN + 7;
    double f64 = -1.0 / 3.0;
    assert_int_equal(gguf_writer_set_scalar(w, "v.u8", GGUF_TYPE_UINT8, &u8), VKLLM_OK);
    assert_int_equal(gguf_writer_set_scalar(w, "v.i8", GGUF_TYPE_INT8, &i8), VKLLM_OK);
    assert_int_equal(gguf_writer_set_scalar(w, "v.u16", GGUF_TYPE_UINT16, &u16), VKLLM_OK);
    assert_int_equal(gguf_writer_set_scalar(w, "v.i16", GGUF_TYPE_INT16, &i16), VKLLM_OK);
    assert_int_equal(gguf_writer_set_u32(w, "v.u32", 4000000000u), VKLLM_OK);
    assert_int_equal(gguf_writer_set_i32(w, "v.i32", -2000000000), VKLLM_OK);
    assert_int_equal(gguf_writer_set_f32(w, "v.f32", 0.1f), VKLLM_OK);
    assert_int_equal(gguf_writer_set_bool(w, "v.bool", true), VKLLM_OK);
    assert_int_equal(gguf_writer_set_str(w, "v.str", "héllo"), VKLLM_OK);
    assert_int_equal(gguf_writer_set_scalar(w, "v.u64", GGUF_TYPE_UINT64, &u64), VKLLM_OK);
    assert_int_equal(gguf_writer_set_scalar(w, "v.i64", GGUF_TYPE_INT64, &i64), VKLLM_OK);
    assert_int_equal(gguf_writer_set_scalar(w, "v.f64", GGUF_TYPE_FLOAT64, &f64), VKLLM_OK);
    const int16_t shorts[] = {-1, 2, -3};
    const float floats[] = {1.5f, -2.25f};
    const double doubles[] = {1e300};
    const bool bools[] = {true, false, true};
    assert_int_equal(gguf_writer_set_array(w, "a.i16", GGUF_TYPE_INT16, shorts, 3), VKLLM_OK);
    assert_int_equal(gguf_writer_set_array(w, "a.f32", GGUF_TYPE_FLOAT32, floats, 2), VKLLM_OK);
    assert_int_equal(gguf_writer_set_array(w, "a.f64", GGUF_TYPE_FLOAT64, doubles, 1), VKLLM_OK);
    assert_int_equal(gguf_writer_set_array(w, "a.bool", GGUF_TYPE_BOOL, bools, 3), VKLLM_OK);
    assert_int_equal(gguf_writer_set_array(w, "a.empty", GGUF_TYPE_UINT64, NULL, 0), VKLLM_OK);
    const char *strs[] = {"a", "", "ccc"};
    assert_int_equal(gguf_writer_set_str_array(w, "a.str", strs, NULL, 3), VKLLM_OK);
    /* Replacing keeps the key's position. */
    assert_int_equal(gguf_writer_set_u32(w, "v.u32", 4000000001u), VKLLM_OK);
}

static void check_all_value_types(const gguf_file *f)
{
    assert_int_equal(f->n_kv, 18);
    assert_true(gguf_str_eq(f->kv[4].key, "v.u32"));
    assert_int_equal(must_find(f, "v.u8", GGUF_TYPE_UINT8)->value.u64, 250);
    assert_int_equal(must_find(f, "v.i8", GGUF_TYPE_INT8)->value.i64, -120);
    assert_int_equal(must_find(f, "v.u16", GGUF_TYPE_UINT16)->value.u64, 65000);
    assert_int_equal(must_find(f, "v.i16", GGUF_TYPE_INT16)->value.i64, -32000);
    assert_int_equal(must_find(f, "v.u32", GGUF_TYPE_UINT32)->value.u64, 4000000001u);
    assert_int_equal(must_find(f, "v.i32", GGUF_TYPE_INT32)->value.i64, -2000000000);
    assert_true(must_find(f, "v.f32", GGUF_TYPE_FLOAT32)->value.f64 == (double)0.1f);
    assert_true(must_find(f, "v.bool", GGUF_TYPE_BOOL)->value.b);
    assert_true(gguf_str_eq(must_find(f, "v.str", GGUF_TYPE_STRING)->value.str, "héllo"));
    assert_true(must_find(f, "v.u64", GGUF_TYPE_UINT64)->value.u64 == UINT64_MAX - 5);
    assert_true(must_find(f, "v.i64", GGUF_TYPE_INT64)->value.i64 == INT64_MIN + 7);
    assert_true(must_find(f, "v.f64", GGUF_TYPE_FLOAT64)->value.f64 == -1.0 / 3.0);

    uint32_t u32;
    float f32;
    assert_int_equal(gguf_get_u32(f, "v.u16", &u32), VKLLM_OK);
    assert_int_equal(u32, 65000);
    assert_int_equal(gguf_get_u32(f, "v.i8", &u32), VKLLM_ERROR_BAD_FORMAT);
    assert_int_equal(gguf_get_u32(f, "v.u64", &u32), VKLLM_ERROR_BAD_FORMAT);
    assert_int_equal(gguf_get_u32(f, "v.str", &u32), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "'v.str' has type string (expected an integer)"));
    assert_int_equal(gguf_get_u32(f, "missing", &u32), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(gguf_u32_or(f, "missing", 7), 7);
    assert_int_equal(gguf_get_f32(f, "v.i16", &f32), VKLLM_OK);
    assert_true(f32 == -32000.0f);
    assert_true(gguf_f32_or(f, "v.f32", 0) == 0.1f);

    gguf_array a;
    assert_int_equal(gguf_get_array(f, "a.i16", &a), VKLLM_OK);
    assert_int_equal(a.type, GGUF_TYPE_INT16);
    assert_int_equal(a.count, 3);
    assert_int_equal(gguf_array_i64(&a, 2), -3);
    assert_int_equal(gguf_get_array(f, "a.f32", &a), VKLLM_OK);
    assert_true(gguf_array_f64(&a, 1) == -2.25);
    assert_int_equal(gguf_get_array(f, "a.f64", &a), VKLLM_OK);
    assert_true(gguf_array_f64(&a, 0) == 1e300);
    assert_int_equal(gguf_array_i64(&a, 0), INT64_MAX); /* saturates */
    assert_int_equal(gguf_get_array(f, "a.bool", &a), VKLLM_OK);
    assert_int_equal(gguf_array_i64(&a, 0) + gguf_array_i64(&a, 1) * 2 + gguf_array_i64(&a, 2) * 4, 5);
    assert_int_equal(gguf_get_array(f, "a.empty", &a), VKLLM_OK);
    assert_int_equal(a.count, 0);
    assert_int_equal(a.type, GGUF_TYPE_UINT64);
    assert_int_equal(gguf_get_array(f, "a.str", &a), VKLLM_OK);
    gguf_str s;
    uint64_t cursor = 0;
    const char *expected[] = {"a", "", "ccc"};
    for (int i = 0; i < 3; i++) {
        assert_true(gguf_array_next_str(&a, &cursor, &s));
        assert_true(gguf_str_eq(s, expected[i]));
    }
    assert_false(gguf_array_next_str(&a, &cursor, &s));
    assert_int_equal(gguf_array_str(&a, 2, &s), VKLLM_OK);
    assert_true(gguf_str_eq(s, "ccc"));
    assert_int_equal(gguf_array_str(&a, 3, &s), VKLLM_ERROR_INVALID_ARGUMENT);
}

/* Tensors of three types with data that is not a multiple of the alignment. */
static float g_matrix[3 * 5];
static uint8_t g_q4[2 * 18];
static uint16_t g_half[7];

static void add_test_tensors(gguf_writer *w)
{
    for (int i = 0; i < 15; i++) g_matrix[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 36; i++) g_q4[i] = (uint8_t)(i * 37 + 1);
    for (int i = 0; i < 7; i++) g_half[i] = (uint16_t)(0x3c00 + i);
    const uint64_t ne_m[] = {5, 3}, ne_q[] = {32, 1, 2}, ne_h[] = {7};
    assert_int_equal(gguf_writer_add_tensor(w, "m", QUANT_F32, 2, ne_m, g_matrix, sizeof g_matrix), VKLLM_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "q", QUANT_Q4_0, 3, ne_q, g_q4, sizeof g_q4), VKLLM_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "h", QUANT_F16, 1, ne_h, g_half, sizeof g_half), VKLLM_OK);
    /* Rejected: duplicate name, size mismatch, partial block, unknown type. */
    assert_int_equal(gguf_writer_add_tensor(w, "m", QUANT_F32, 2, ne_m, g_matrix, sizeof g_matrix),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(gguf_writer_add_tensor(w, "x", QUANT_F32, 2, ne_m, g_matrix, 4), VKLLM_ERROR_INVALID_ARGUMENT);
    const uint64_t ne_bad[] = {16};
    assert_int_equal(gguf_writer_add_tensor(w, "y", QUANT_Q4_0, 1, ne_bad, g_q4, 9), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(gguf_writer_add_tensor(w, "z", 99, 1, ne_h, g_half, 14), VKLLM_ERROR_INVALID_ARGUMENT);
}

static void check_test_tensors(const gguf_file *f, uint64_t alignment)
{
    assert_int_equal(f->n_tensors, 3);
    assert_int_equal(f->alignment, alignment);
    assert_int_equal(f->data_offset % alignment, 0);
    const char *names[] = {"m", "q", "h"};
    const void *data[] = {g_matrix, g_q4, g_half};
    const uint64_t sizes[] = {sizeof g_matrix, sizeof g_q4, sizeof g_half};
    for (int i = 0; i < 3; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        assert_true(gguf_str_eq(t->name, names[i]));
        assert_int_equal(t->size, sizes[i]);
        assert_int_equal(t->offset % alignment, 0);
        assert_memory_equal(t->data, data[i], sizes[i]);
    }
    const gguf_tensor_info *q = gguf_find_tensor(f, "q");
    assert_int_equal(q->n_dims, 3);
    assert_int_equal(q->ne[0], 32);
    assert_int_equal(q->ne[1], 1);
    assert_int_equal(q->ne[2], 2);
    assert_int_equal(q->ne[3], 1);
    assert_int_equal(q->type, QUANT_Q4_0);
    assert_null(gguf_find_tensor(f, "nope"));
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    char path[512], copy_path[512];
    temp_path(path, sizeof path, "roundtrip");
    temp_path(copy_path, sizeof copy_path, "roundtrip_copy");
    gguf_writer *w;
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    set_all_value_types(w);
    add_test_tensors(w);
    assert_int_equal(gguf_writer_write(w, path), VKLLM_OK);
    gguf_writer_free(w);

    gguf_file *f;
    assert_int_equal(gguf_open(path, &f), VKLLM_OK);
    assert_int_equal(f->version, 3);
    check_all_value_types(f);
    check_test_tensors(f, 32);

    /* Copying every kv and re-adding the tensors reproduces the file byte for byte. */
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    for (uint64_t i = 0; i < f->n_kv; i++) assert_int_equal(gguf_writer_copy_kv(w, &f->kv[i]), VKLLM_OK);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        char name[16];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        assert_int_equal(gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->size), VKLLM_OK);
    }
    assert_int_equal(gguf_writer_write(w, copy_path), VKLLM_OK);
    gguf_writer_free(w);
    gguf_close(f);
    uint8_t *a, *b;
    size_t na, nb;
    read_file(path, &a, &na);
    read_file(copy_path, &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
    unlink(path);
    unlink(copy_path);
}

static void test_round_trip_custom_alignment(void **state)
{
    (void)state;
    char path[512];
    temp_path(path, sizeof path, "align");
    gguf_writer *w;
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 48), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(gguf_writer_set_i32(w, "general.alignment", 64), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 128), VKLLM_OK);
    add_test_tensors(w);
    assert_int_equal(gguf_writer_write(w, path), VKLLM_OK);
    gguf_writer_free(w);
    gguf_file *f;
    assert_int_equal(gguf_open(path, &f), VKLLM_OK);
    check_test_tensors(f, 128);
    assert_int_equal(f->map_size % 128, 0);
    gguf_close(f);
    unlink(path);
}

/* nested = [["a", "bc"], [], ["def"]]; deep = [[[1, 2], [3]], [[4, 5, 6]]] (uint16) */
static void build_nested(buf *b)
{
    memset(b, 0, sizeof *b);
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, 0);
    put_u64(b, 2);
    put_str(b, "nested");
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u64(b, 3);
    put_u32(b, GGUF_TYPE_STRING);
    put_u64(b, 2);
    put_str(b, "a");
    put_str(b, "bc");
    put_u32(b, GGUF_TYPE_STRING);
    put_u64(b, 0);
    put_u32(b, GGUF_TYPE_STRING);
    put_u64(b, 1);
    put_str(b, "def");
    put_str(b, "deep");
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u64(b, 2);
    const uint16_t groups[3][3] = {{1, 2}, {3}, {4, 5, 6}};
    const uint64_t lens[3] = {2, 1, 3};
    for (int outer = 0, g = 0; outer < 2; outer++) {
        put_u32(b, GGUF_TYPE_ARRAY);
        put_u64(b, outer == 0 ? 2 : 1);
        for (int inner = 0; inner < (outer == 0 ? 2 : 1); inner++, g++) {
            put_u32(b, GGUF_TYPE_UINT16);
            put_u64(b, lens[g]);
            put(b, groups[g], (size_t)lens[g] * 2);
        }
    }
}

static void check_nested(const gguf_file *f)
{
    gguf_array outer, inner, innermost;
    assert_int_equal(gguf_get_array(f, "nested", &outer), VKLLM_OK);
    assert_int_equal(outer.type, GGUF_TYPE_ARRAY);
    assert_int_equal(outer.count, 3);
    const char *expected[3][2] = {{"a", "bc"}, {NULL}, {"def"}};
    uint64_t cursor = 0;
    for (int i = 0; i < 3; i++) {
        assert_true(gguf_array_next_array(&outer, &cursor, &inner));
        assert_int_equal(inner.type, GGUF_TYPE_STRING);
        uint64_t c2 = 0;
        gguf_str s;
        for (int j = 0; j < 2 && expected[i][j]; j++) {
            assert_true(gguf_array_next_str(&inner, &c2, &s));
            assert_true(gguf_str_eq(s, expected[i][j]));
        }
        assert_false(gguf_array_next_str(&inner, &c2, &s));
    }
    assert_false(gguf_array_next_array(&outer, &cursor, &inner));

    assert_int_equal(gguf_get_array(f, "deep", &outer), VKLLM_OK);
    int64_t sum = 0, n = 0;
    cursor = 0;
    while (gguf_array_next_array(&outer, &cursor, &inner)) {
        uint64_t c2 = 0;
        while (gguf_array_next_array(&inner, &c2, &innermost))
            for (uint64_t k = 0; k < innermost.count; k++, n++) sum += gguf_array_i64(&innermost, k);
    }
    assert_int_equal(n, 6);
    assert_int_equal(sum, 21);
}

static void test_nested_arrays_round_trip(void **state)
{
    (void)state;
    buf b;
    build_nested(&b);
    gguf_file *f;
    assert_int_equal(gguf_open_memory(b.data, b.size, "nested.gguf", &f), VKLLM_OK);
    check_nested(f);

    char path[512];
    temp_path(path, sizeof path, "nested");
    gguf_writer *w;
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    for (uint64_t i = 0; i < f->n_kv; i++) assert_int_equal(gguf_writer_copy_kv(w, &f->kv[i]), VKLLM_OK);
    assert_int_equal(gguf_writer_write(w, path), VKLLM_OK);
    gguf_writer_free(w);
    gguf_file *g;
    assert_int_equal(gguf_open(path, &g), VKLLM_OK);
    check_nested(g);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        assert_int_equal(f->kv[i].value.arr.size, g->kv[i].value.arr.size);
        assert_memory_equal(f->kv[i].value.arr.data, g->kv[i].value.arr.data, f->kv[i].value.arr.size);
    }
    /* With no tensors the file is exactly header + metadata + padding. */
    assert_int_equal(g->map_size, b.size + (32 - b.size % 32) % 32);
    assert_memory_equal(g->map, b.data, b.size);
    gguf_close(g);
    gguf_close(f);
    unlink(path);

    /* Truncating the nested file anywhere fails cleanly too. */
    for (size_t len = 0; len < b.size; len++) {
        vkllm_status status = open_copy(b.data, len, &f);
        if (status != VKLLM_ERROR_BAD_FORMAT) fail_msg("nested prefix %zu: %s", len, vkllm_status_name(status));
    }
}

static void test_stories260k(void **state)
{
    (void)state;
    const char *path = th_shared_path("models/stories260K.gguf");
    if (access(path, R_OK) != 0) skip();
    gguf_file *f;
    assert_int_equal(gguf_open(path, &f), VKLLM_OK);
    assert_int_equal(f->version, 3);
    assert_int_equal(f->n_kv, 19);
    assert_int_equal(f->n_tensors, 48);
    assert_int_equal(f->alignment, 32);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.architecture", &s), VKLLM_OK);
    assert_true(gguf_str_eq(s, "llama"));
    uint32_t v;
    assert_int_equal(gguf_get_u32(f, "llama.embedding_length", &v), VKLLM_OK);
    assert_int_equal(v, 64);
    assert_int_equal(gguf_u32_or(f, "llama.block_count", 0), 5);
    assert_int_equal(gguf_u32_or(f, "llama.attention.head_count", 0), 8);
    assert_int_equal(gguf_u32_or(f, "llama.attention.head_count_kv", 0), 4);
    assert_int_equal(gguf_u32_or(f, "llama.feed_forward_length", 0), 172);
    assert_true(fabsf(gguf_f32_or(f, "llama.attention.layer_norm_rms_epsilon", 0) - 1e-5f) < 1e-12f);
    gguf_array tokens;
    assert_int_equal(gguf_get_array(f, "tokenizer.ggml.tokens", &tokens), VKLLM_OK);
    assert_int_equal(tokens.type, GGUF_TYPE_STRING);
    assert_int_equal(tokens.count, 512);
    assert_int_equal(gguf_array_str(&tokens, 1, &s), VKLLM_OK);
    assert_true(gguf_str_eq(s, "<s>"));
    assert_int_equal(gguf_array_str(&tokens, 259, &s), VKLLM_OK);
    assert_true(gguf_str_eq(s, "\xe2\x96\x81t"));

    const gguf_tensor_info *k = gguf_find_tensor(f, "blk.0.attn_k.weight");
    assert_non_null(k);
    assert_int_equal(k->n_dims, 2);
    assert_int_equal(k->ne[0], 64);
    assert_int_equal(k->ne[1], 32);
    assert_int_equal(k->type, QUANT_F32);
    assert_int_equal(k->size, 64 * 32 * 4);
    uint64_t total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        assert_true((const uint8_t *)t->data >= f->map + f->data_offset);
        assert_true((const uint8_t *)t->data + t->size <= f->map + f->map_size);
        const float *x = t->data;
        for (uint64_t j = 0; j < t->size / 4; j++) assert_true(isfinite(x[j]));
        total += t->size / 4;
    }
    /* 260K parameters plus the output projection, stored separately here. */
    assert_int_equal(total, 260032 + 512 * 64);
    gguf_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_variant_is_valid),
        cmocka_unit_test(test_bad_magic_and_versions),
        cmocka_unit_test(test_every_truncation_fails),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_bad_strings_and_types),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_alignment_key),
        cmocka_unit_test(test_unknown_value_type_and_deep_nesting),
        cmocka_unit_test(test_open_missing_file_is_io_error),
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_round_trip_custom_alignment),
        cmocka_unit_test(test_nested_arrays_round_trip),
        cmocka_unit_test(test_stories260k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
