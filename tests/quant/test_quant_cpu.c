/* CPU quantizers and dequantizers (quant/): bytes equal to llama.cpp's on fixtures made by
 * tests/data/quant/make_vectors.py, round-trip error bounds, half/bfloat16 edge cases, traits
 * arithmetic and argument errors. */
#include "harness.h"
#include "paths.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

/* Shape of the fixture tensor written by make_vectors.py. */
#define FIXTURE_ROWS 6
#define FIXTURE_COLS 512

typedef struct type_case {
    quant_type type;
    const char *fixture; /* tests/data/quant/<fixture> */
    double max_nmse;     /* round-trip bound on gaussian data: sum (x - y)^2 / sum x^2 */
} type_case;

/* Bounds sit about 1.5x above the measured error, so a broken rounding step fails them. */
static const type_case cases[] = {
    {QUANT_F16, "f16.bin", 1e-7},     {QUANT_BF16, "bf16.bin", 6e-6},   {QUANT_Q4_0, "q4_0.bin", 1.5e-2},
    {QUANT_Q4_1, "q4_1.bin", 1.2e-2}, {QUANT_Q5_0, "q5_0.bin", 3e-3},   {QUANT_Q5_1, "q5_1.bin", 3e-3},
    {QUANT_Q8_0, "q8_0.bin", 4.5e-5}, {QUANT_Q8_1, "q8_1.bin", 4.5e-5}, {QUANT_Q2_K, "q2_k.bin", 1.35e-1},
    {QUANT_Q3_K, "q3_k.bin", 3.5e-2}, {QUANT_Q4_K, "q4_k.bin", 7.5e-3}, {QUANT_Q5_K, "q5_k.bin", 2.5e-3},
    {QUANT_Q6_K, "q6_k.bin", 5e-4},   {QUANT_Q8_K, "q8_k.bin", 1.2e-4},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static void *read_fixture(const char *name, size_t *size_out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/quant/%s", th_test_data_dir(), name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail_msg("cannot open fixture %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *data = malloc((size_t)size);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *size_out = (size_t)size;
    return data;
}

/* Deterministic gaussian values (xorshift + Box-Muller). */
static void fill_gaussian(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        double u[2];
        for (int k = 0; k < 2; k++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            u[k] = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
        }
        x[i] = (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
    }
}

static double nmse(const float *x, const float *y, size_t n)
{
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        err += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        ref += (double)x[i] * x[i];
    }
    return ref > 0 ? err / ref : err;
}

static void test_quantizer_bytes_match_llama_cpp(void **state)
{
    (void)state;
    size_t input_size;
    float *input = read_fixture("input.f32", &input_size);
    assert_int_equal(input_size, FIXTURE_ROWS * FIXTURE_COLS * sizeof(float));
    for (size_t c = 0; c < N_CASES; c++) {
        const quant_traits *traits = quant_get_traits(cases[c].type);
        size_t expected_size;
        uint8_t *expected = read_fixture(cases[c].fixture, &expected_size);
        const uint64_t row_size = quant_row_size(cases[c].type, FIXTURE_COLS);
        assert_int_equal(expected_size, FIXTURE_ROWS * row_size);
        uint8_t *ours = malloc(expected_size);
        assert_non_null(ours);
        memset(ours, 0xcd, expected_size);
        /* Row by row, as llama-quantize does per row; the result must not depend on it either. */
        for (int r = 0; r < FIXTURE_ROWS; r++) {
            assert_int_equal(quant_quantize_row(cases[c].type, input + r * FIXTURE_COLS, ours + r * row_size,
                                                FIXTURE_COLS),
                             VKLLM_OK);
        }
        for (size_t i = 0; i < expected_size; i++) {
            if (ours[i] != expected[i]) {
                fail_msg("%s: byte %zu (row %zu) is 0x%02x, llama.cpp wrote 0x%02x", traits->name, i,
                         i / (size_t)row_size, ours[i], expected[i]);
            }
        }
        free(ours);
        free(expected);
    }
    free(input);
}

/* Dequantizing llama.cpp's bytes gives values close to the input (checks the dequantizers against
 * data this code did not write). */
static void test_dequantize_llama_cpp_bytes(void **state)
{
    (void)state;
    size_t input_size;
    float *input = read_fixture("input.f32", &input_size);
    float *out = malloc(input_size);
    assert_non_null(out);
    for (size_t c = 0; c < N_CASES; c++) {
        size_t size;
        uint8_t *bytes = read_fixture(cases[c].fixture, &size);
        assert_int_equal(quant_dequantize_row(cases[c].type, bytes, out, FIXTURE_ROWS * FIXTURE_COLS), VKLLM_OK);
        for (int r = 0; r < FIXTURE_ROWS; r++) {
            const float *x = input + r * FIXTURE_COLS, *y = out + r * FIXTURE_COLS;
            /* The outlier and mixed-scale rows are harder than gaussian data; allow 4x. */
            double e = nmse(x, y, FIXTURE_COLS);
            if (!(e <= 4 * cases[c].max_nmse)) {
                fail_msg("%s row %d: nmse %g > %g", quant_get_traits(cases[c].type)->name, r, e,
                         4 * cases[c].max_nmse);
            }
        }
        /* Row 2 is all zero and must come back exactly zero. */
        for (int i = 0; i < FIXTURE_COLS; i++) assert_true(out[2 * FIXTURE_COLS + i] == 0.0f);
        free(bytes);
    }
    free(out);
    free(input);
}

static void test_round_trip_error(void **state)
{
    (void)state;
    for (size_t c = 0; c < N_CASES; c++) {
        const quant_traits *traits = quant_get_traits(cases[c].type);
        const uint64_t block = traits->block_elems > 1 ? traits->block_elems : 32;
        const uint64_t sizes[] = {block, 3 * block, 4096};
        for (size_t s = 0; s < 3; s++) {
            const uint64_t n = sizes[s];
            float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
            uint8_t *q = malloc(quant_row_size(cases[c].type, n));
            assert_true(x && y && q);
            fill_gaussian(x, n, 1000 * c + s);
            assert_int_equal(quant_quantize_row(cases[c].type, x, q, n), VKLLM_OK);
            assert_int_equal(quant_dequantize_row(cases[c].type, q, y, n), VKLLM_OK);
            double e = nmse(x, y, n);
            if (!(e <= cases[c].max_nmse)) {
                fail_msg("%s n=%llu: nmse %g > %g", traits->name, (unsigned long long)n, e, cases[c].max_nmse);
            }
            free(x);
            free(y);
            free(q);
        }
    }
}

static void test_f32_round_trip_is_exact(void **state)
{
    (void)state;
    const float x[4] = {1.0f, -0.0f, INFINITY, 3.0e-42f};
    float q[4], y[4];
    assert_int_equal(quant_quantize_row(QUANT_F32, x, q, 4), VKLLM_OK);
    assert_int_equal(quant_dequantize_row(QUANT_F32, q, y, 4), VKLLM_OK);
    assert_memory_equal(x, y, sizeof x);
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_f16_edge_values(void **state)
{
    (void)state;
    static const struct {
        uint32_t f32;
        uint16_t f16;
    } to_half[] = {
        {0x00000000, 0x0000}, {0x80000000, 0x8000}, /* signed zeros */
        {0x3f800000, 0x3c00},                       /* 1 */
        {0x3f801000, 0x3c00},                       /* 1 + 2^-11: tie, to even (down) */
        {0x3f803000, 0x3c02},                       /* 1 + 3*2^-11: tie, to even (up) */
        {0x3f801001, 0x3c01},                       /* just above the tie */
        {0x477fe000, 0x7bff},                       /* 65504, the largest half */
        {0x477fefff, 0x7bff},                       /* just below 65520 */
        {0x477ff000, 0x7c00},                       /* 65520 rounds to inf */
        {0x7f7fffff, 0x7c00}, {0xff7fffff, 0xfc00}, /* largest floats overflow */
        {0x7f800000, 0x7c00}, {0xff800000, 0xfc00}, /* infinities */
        {0x7fc00000, 0x7e00}, {0xffc00000, 0xfe00}, /* NaN: canonical quiet, sign kept */
        {0x7f800001, 0x7e00},                       /* signaling NaN */
        {0x38800000, 0x0400},                       /* 2^-14, smallest normal */
        {0x387fc000, 0x03ff},                       /* largest subnormal */
        {0x387fe000, 0x0400},                       /* tie between largest subnormal and 2^-14 */
        {0x33800000, 0x0001},                       /* 2^-24, smallest subnormal */
        {0x33000000, 0x0000},                       /* 2^-25: tie, to even (zero) */
        {0x33000001, 0x0001},                       /* just above 2^-25 */
        {0x33c00000, 0x0002},                       /* 3*2^-25: tie between 1 and 2, to even */
        {0xb3800000, 0x8001},                       /* -2^-24 */
        {0x00000001, 0x0000},                       /* float subnormal flushes by rounding */
    };
    for (size_t i = 0; i < sizeof to_half / sizeof to_half[0]; i++) {
        uint16_t got = quant_f32_to_f16(float_of(to_half[i].f32));
        if (got != to_half[i].f16) {
            fail_msg("f32 0x%08x -> f16 0x%04x, expected 0x%04x", to_half[i].f32, got, to_half[i].f16);
        }
    }

    static const struct {
        uint16_t f16;
        uint32_t f32;
    } to_float[] = {
        {0x0001, 0x33800000}, {0x03ff, 0x387fc000}, {0x0400, 0x38800000}, {0x3c00, 0x3f800000},
        {0x7bff, 0x477fe000}, {0x7c00, 0x7f800000}, {0xfc00, 0xff800000}, {0x8000, 0x80000000},
        {0x7e00, 0x7fc00000}, {0x7c01, 0x7fc02000}, /* NaNs keep the payload and come back quiet */
    };
    for (size_t i = 0; i < sizeof to_float / sizeof to_float[0]; i++) {
        uint32_t got = bits_of(quant_f16_to_f32(to_float[i].f16));
        if (got != to_float[i].f32) {
            fail_msg("f16 0x%04x -> f32 0x%08x, expected 0x%08x", to_float[i].f16, got, to_float[i].f32);
        }
    }

    /* Every non-NaN half survives a round trip through float. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        assert_int_equal(quant_f32_to_f16(quant_f16_to_f32((uint16_t)h)), h);
    }
}

static void test_bf16_edge_values(void **state)
{
    (void)state;
    static const struct {
        uint32_t f32;
        uint16_t bf16;
    } cases_bf16[] = {
        {0x3f800000, 0x3f80}, {0x80000000, 0x8000},
        {0x3f808000, 0x3f80}, /* tie, to even (down) */
        {0x3f818000, 0x3f82}, /* tie, to even (up) */
        {0x3f808001, 0x3f81}, /* above the tie */
        {0x7f7fffff, 0x7f80}, /* largest float rounds to inf */
        {0x7f800000, 0x7f80}, {0xff800000, 0xff80},
        {0x7fc00000, 0x7fc0}, /* quiet NaN */
        {0x7f800001, 0x7fc0}, /* signaling NaN, payload below bit 16: made quiet, stays NaN */
        {0xff810000, 0xffc1}, /* payload kept, quiet bit set */
        {0x00010000, 0x0001}, /* subnormals are kept, not flushed */
        {0x00008000, 0x0000}, /* subnormal tie, to even */
    };
    for (size_t i = 0; i < sizeof cases_bf16 / sizeof cases_bf16[0]; i++) {
        uint16_t got = quant_f32_to_bf16(float_of(cases_bf16[i].f32));
        if (got != cases_bf16[i].bf16) {
            fail_msg("f32 0x%08x -> bf16 0x%04x, expected 0x%04x", cases_bf16[i].f32, got, cases_bf16[i].bf16);
        }
    }
    assert_int_equal(bits_of(quant_bf16_to_f32(0x3f81)), 0x3f810000);
    assert_int_equal(bits_of(quant_bf16_to_f32(0xffc1)), 0xffc10000);
}

static void test_traits_and_row_size(void **state)
{
    (void)state;
    static const struct {
        quant_type type;
        const char *name;
        uint32_t elems, bytes;
    } expected[] = {
        {QUANT_F32, "F32", 1, 4},      {QUANT_F16, "F16", 1, 2},      {QUANT_BF16, "BF16", 1, 2},
        {QUANT_Q4_0, "Q4_0", 32, 18},  {QUANT_Q4_1, "Q4_1", 32, 20},  {QUANT_Q5_0, "Q5_0", 32, 22},
        {QUANT_Q5_1, "Q5_1", 32, 24},  {QUANT_Q8_0, "Q8_0", 32, 34},  {QUANT_Q8_1, "Q8_1", 32, 36},
        {QUANT_Q2_K, "Q2_K", 256, 84}, {QUANT_Q3_K, "Q3_K", 256, 110}, {QUANT_Q4_K, "Q4_K", 256, 144},
        {QUANT_Q5_K, "Q5_K", 256, 176}, {QUANT_Q6_K, "Q6_K", 256, 210}, {QUANT_Q8_K, "Q8_K", 256, 292},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        const quant_traits *t = quant_get_traits(expected[i].type);
        assert_non_null(t);
        assert_string_equal(t->name, expected[i].name);
        assert_int_equal(t->block_elems, expected[i].elems);
        assert_int_equal(t->block_bytes, expected[i].bytes);
        assert_true(t->supported);
        quant_type parsed;
        assert_true(quant_type_from_name(expected[i].name, &parsed));
        assert_int_equal(parsed, expected[i].type);
        assert_int_equal(quant_row_size(expected[i].type, 3 * 256), 3 * 256 / expected[i].elems * expected[i].bytes);
    }

    quant_type parsed;
    assert_true(quant_type_from_name("q4_k", &parsed));
    assert_int_equal(parsed, QUANT_Q4_K);
    assert_true(quant_type_from_name("bf16", &parsed));
    assert_int_equal(parsed, QUANT_BF16);
    assert_false(quant_type_from_name("Q4_K_M", &parsed)); /* a file type, not a tensor type */
    assert_false(quant_type_from_name("Q4", &parsed));
    assert_false(quant_type_from_name("", &parsed));
    assert_false(quant_type_from_name(NULL, &parsed));

    /* Known to ggml but not decodable: named, with sizes, marked unsupported. */
    const quant_traits *iq = quant_get_traits(16);
    assert_non_null(iq);
    assert_string_equal(iq->name, "IQ2_XXS");
    assert_false(iq->supported);
    assert_int_equal(quant_row_size(16, 256), 66);

    /* Retired or never-used ids and out-of-range ids are unknown. */
    assert_null(quant_get_traits(4));
    assert_null(quant_get_traits(31));
    assert_null(quant_get_traits(QUANT_TYPE_LIMIT));
    assert_null(quant_get_traits(UINT32_MAX));

    assert_int_equal(quant_row_size(QUANT_Q4_0, 64), 36);
    assert_int_equal(quant_row_size(QUANT_Q4_0, 0), 0);
    assert_int_equal(quant_row_size(QUANT_Q4_0, 33), 0);
    assert_int_equal(quant_row_size(QUANT_Q6_K, 255), 0);
    assert_int_equal(quant_row_size(QUANT_F32, 7), 28);
    assert_int_equal(quant_row_size(4, 32), 0);
    assert_int_equal(quant_row_size(QUANT_F32, UINT64_MAX / 2), 0); /* bytes would overflow */
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float x[64] = {0}, y[64];
    uint8_t q[64 * 4];

    assert_int_equal(quant_quantize_row(QUANT_Q4_0, x, q, 33), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "multiple"));
    assert_int_equal(quant_dequantize_row(QUANT_Q4_K, q, y, 64), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(quant_quantize_row(4, x, q, 32), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "unknown"));
    assert_int_equal(quant_dequantize_row(99, q, y, 32), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(quant_dequantize_row(16, q, y, 256), VKLLM_ERROR_UNSUPPORTED); /* IQ2_XXS */
    assert_non_null(strstr(vkllm_last_error(), "IQ2_XXS"));
    assert_int_equal(quant_quantize_row(QUANT_Q8_0, NULL, q, 32), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(quant_dequantize_row(QUANT_Q8_0, q, NULL, 32), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(quant_quantize_row(QUANT_Q8_0, NULL, NULL, 0), VKLLM_OK); /* nothing to do */

    /* Block formats refuse non-finite input; element formats carry it. */
    x[5] = NAN;
    assert_int_equal(quant_quantize_row(QUANT_Q4_0, x, q, 32), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "element 5"));
    x[5] = -INFINITY;
    assert_int_equal(quant_quantize_row(QUANT_Q8_0, x, q, 32), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(quant_quantize_row(QUANT_F16, x, q, 32), VKLLM_OK);
    assert_int_equal(quant_quantize_row(QUANT_BF16, x, q, 32), VKLLM_OK);
}

/* Huge but finite values overflow scales to inf; the quantizers must still stay defined (run under UBSan)
 * and return. */
static void test_extreme_finite_input(void **state)
{
    (void)state;
    float x[512], y[512];
    uint8_t q[512 * 4];
    for (int i = 0; i < 512; i++) x[i] = (float)(i % 7) / 6.0f * (i % 2 ? 3.0e38f : -3.0e38f);
    for (size_t c = 0; c < N_CASES; c++) {
        assert_int_equal(quant_quantize_row(cases[c].type, x, q, 512), VKLLM_OK);
        assert_int_equal(quant_dequantize_row(cases[c].type, q, y, 512), VKLLM_OK);
    }
}

/* Buffers inside a mmapped file need not be aligned to the block's natural alignment. */
static void test_unaligned_buffers(void **state)
{
    (void)state;
    float x[256], y_aligned[256], y_unaligned[256];
    fill_gaussian(x, 256, 7);
    for (size_t c = 0; c < N_CASES; c++) {
        const uint64_t size = quant_row_size(cases[c].type, 256);
        uint8_t *aligned = malloc(size), *storage = malloc(size + 1);
        assert_true(aligned && storage);
        assert_int_equal(quant_quantize_row(cases[c].type, x, aligned, 256), VKLLM_OK);
        assert_int_equal(quant_quantize_row(cases[c].type, x, storage + 1, 256), VKLLM_OK);
        assert_memory_equal(aligned, storage + 1, size);
        assert_int_equal(quant_dequantize_row(cases[c].type, aligned, y_aligned, 256), VKLLM_OK);
        assert_int_equal(quant_dequantize_row(cases[c].type, storage + 1, y_unaligned, 256), VKLLM_OK);
        assert_memory_equal(y_aligned, y_unaligned, sizeof y_aligned);
        free(aligned);
        free(storage);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantizer_bytes_match_llama_cpp),
        cmocka_unit_test(test_dequantize_llama_cpp_bytes),
        cmocka_unit_test(test_round_trip_error),
        cmocka_unit_test(test_f32_round_trip_is_exact),
        cmocka_unit_test(test_f16_edge_values),
        cmocka_unit_test(test_bf16_edge_values),
        cmocka_unit_test(test_traits_and_row_size),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_extreme_finite_input),
        cmocka_unit_test(test_unaligned_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
