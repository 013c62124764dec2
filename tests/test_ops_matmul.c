/* ops_matmul for every GGUF type against the CPU reference (dequantize, then double-precision dots), with
 * the device's own tuning (mat-vec for n = 1..8; above, the tiled mat-mul or, on CPUs, blocks of 8 mat-vec
 * columns) and with the tiled mat-mul forced; odd row counts, K not a multiple of 256 where the type
 * allows; a weight larger than maxStorageBufferRange; bad shapes. */
#include <stdlib.h>

#include "matmul_check.h"
#include "ops/matmul.h"
#include "quant/quant.h"

static const uint32_t all_n[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 64, 67};

static void check_types(const uint32_t *types, size_t n_types, const uint32_t (*shapes)[2], size_t n_shapes)
{
    for (size_t t = 0; t < n_types; t++)
        for (size_t s = 0; s < n_shapes; s++)
            th_check_matmul(types[t], shapes[s][0], shapes[s][1], all_n, sizeof all_n / sizeof *all_n);
}

/* Float types take any cols: odd ones leave a partial last group of 8. */
static void test_float_types(void **state)
{
    static const uint32_t types[] = {QUANT_F32, QUANT_F16, QUANT_BF16};
    static const uint32_t shapes[][2] = {{37, 97}, {129, 416}, {1, 3}, {70, 8}};
    check_types(types, 3, shapes, 4);
}

/* Blocks of 32: K = 96 and 416 are not multiples of 256. */
static void test_legacy_types(void **state)
{
    static const uint32_t types[] = {QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1};
    static const uint32_t shapes[][2] = {{37, 96}, {129, 416}, {1, 32}};
    check_types(types, 5, shapes, 3);
}

static void test_k_types(void **state)
{
    static const uint32_t types[] = {QUANT_Q2_K, QUANT_Q3_K, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
    static const uint32_t shapes[][2] = {{37, 256}, {129, 768}, {1, 512}};
    check_types(types, 5, shapes, 3);
}

/* The tiled mat-mul at the CPU row's 16x16 tiles: n and rows not multiples of the tile. */
static void test_tiled_matmul(void **state)
{
    static const uint32_t types[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0,
                                     QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q2_K, QUANT_Q3_K,
                                     QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
    static const uint32_t ns[] = {9, 17, 67};
    static op_tuning tiled; /* static: outlives a failed check */
    const op_tuning *own = th_ops()->tuning;
    tiled = *own;
    tiled.name = "tiled";
    tiled.matmul_min_n = 9;
    th_ops()->tuning = &tiled;
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        uint32_t block = quant_get_traits(types[t])->block_elems;
        uint32_t cols = block == 1 ? 97 : block == 32 ? 416 : 512;
        th_check_matmul(types[t], 37, cols, ns, 3);
    }
    th_ops()->tuning = own;
}

/* 33000 x 2048 F16 is 135 MB, above lavapipe's 128 MiB binding limit: bound in two row chunks, by the
 * mat-vec (n = 1) and the tiled mat-mul (n = 9, forced). */
static void test_larger_than_binding(void **state)
{
    const uint32_t rows = 33000, cols = 2048;
    uint64_t bytes = (uint64_t)rows * cols * 2;
    if (bytes <= th_ops()->caps->max_storage_buffer_range) {
        print_message("  maxStorageBufferRange %llu holds the matrix; not split\n",
                      (unsigned long long)th_ops()->caps->max_storage_buffer_range);
    }
    static op_tuning tiled; /* static: outlives a failed check */
    const op_tuning *own = th_ops()->tuning;
    tiled = *own;
    tiled.name = "tiled";
    tiled.matmul_min_n = 9;
    th_ops()->tuning = &tiled;
    static const uint32_t ns[] = {1, 9};
    th_check_matmul(QUANT_F16, rows, cols, ns, 2);
    th_ops()->tuning = own;
}

static void expect_error(vkllm_status got, vkllm_status want, const char *needle)
{
    assert_int_equal(got, want);
    if (!strstr(vkllm_last_error(), needle)) fail_msg("message '%s' lacks '%s'", vkllm_last_error(), needle);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    uint8_t data[34 * 4] = {0};
    ops_weight *w = NULL;
    /* cols not a multiple of the block */
    expect_error(ops_weight_create(o, QUANT_Q8_0, 2, 48, data, &w), VKLLM_ERROR_INVALID_ARGUMENT, "multiple of");
    assert_null(w);
    expect_error(ops_weight_create(o, QUANT_Q4_K, 1, 128, data, &w), VKLLM_ERROR_INVALID_ARGUMENT, "256");
    /* unknown type, and a known one without a GPU layout */
    expect_error(ops_weight_create(o, 39, 2, 32, data, &w), VKLLM_ERROR_UNSUPPORTED, "type");
    expect_error(ops_weight_create(o, QUANT_Q8_K, 1, 256, data, &w), VKLLM_ERROR_UNSUPPORTED, "Q8_K");
    expect_error(ops_weight_create(o, QUANT_Q8_0, 0, 32, data, &w), VKLLM_ERROR_INVALID_ARGUMENT, "empty");

    th_check_status(ops_weight_create(o, QUANT_Q8_0, 4, 32, data, &w), "ops_weight_create");
    vkr_buffer x = th_alloc(4 * 32 * 2), y = th_alloc(4 * 4 * 2);
    vkr_sequence *seq = th_begin();
    expect_error(ops_matmul(o, seq, w, vkr_whole(&x), vkr_whole(&y), 0), VKLLM_ERROR_INVALID_ARGUMENT, "n is 0");
    expect_error(ops_matmul(o, seq, w, vkr_whole(&x), vkr_whole(&y), 3), VKLLM_ERROR_INVALID_ARGUMENT, "x holds");
    expect_error(ops_matmul(o, seq, NULL, vkr_whole(&x), vkr_whole(&y), 1), VKLLM_ERROR_INVALID_ARGUMENT, "weight");
    th_check_status(ops_matmul(o, seq, w, vkr_whole(&x), vkr_whole(&y), 2), "n = 2 fits");
    th_end_and_free(seq);
    th_free(&x);
    th_free(&y);
    ops_weight_free(o, w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_float_types),
        cmocka_unit_test(test_legacy_types),
        cmocka_unit_test(test_k_types),
        cmocka_unit_test(test_tiled_matmul),
        cmocka_unit_test(test_larger_than_binding),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_matmul", tests);
}
