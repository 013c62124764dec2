/* ops_matmul for every GGUF type against the CPU reference (dequantize, then double-precision dots), with
 * the device's own tuning (mat-vec for n = 1..8; above, the cooperative-matrix or the tiled mat-mul or, on
 * CPUs, blocks of 16 mat-vec columns), with the tiled mat-mul forced, and with each kind of cooperative
 * matrices the device has (NV, KHR); odd row counts, K not a multiple of 256 where the type allows; a weight
 * larger than maxStorageBufferRange, and one larger than a (lowered) maxMemoryAllocationSize; bad shapes. */
#include <stdio.h>
#include <stdlib.h>

#include "matmul_check.h"
#include "ops/matmul/matmul.h"
#include "quant/quant.h"

/* Every column count of one mat-vec pass (1..8, and 16: lavapipe's blocks), remainders past 8 (9, 13: a pass of 8
 * and the rest), blocks of them and batches. */
static const uint32_t all_n[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 67};
/* Elsewhere: one column, partial blocks of mat-vec columns, and full blocks with a remainder (67).  Each
 * column count of a pass is a pipeline of its own (a specialization constant), compiled cold by lavapipe in CI
 * (0.1-2 s of LLVM each), so every n for every type would be most of this test's time for no new code. */
static const uint32_t some_n[] = {1, 3, 8, 9, 67};

/* Every n at the first shape of the representative types (th_representative_type), some_n elsewhere. */
static void check_types(const uint32_t *types, size_t n_types, const uint32_t (*shapes)[2], size_t n_shapes)
{
    for (size_t t = 0; t < n_types; t++)
        for (size_t s = 0; s < n_shapes; s++) {
            bool all = s == 0 && th_representative_type(types[t]);
            th_check_matmul(types[t], shapes[s][0], shapes[s][1], all ? all_n : some_n,
                            all ? sizeof all_n / sizeof *all_n : sizeof some_n / sizeof *some_n);
        }
}

/* Float types take any cols: odd ones leave a partial last group of 8; cols % 8 == 4 (172: stories260K's
 * down projection; 4) half a group, whose x is read as whole vec4s up to the row's end. */
static void test_float_types(void **state)
{
    static const uint32_t types[] = {QUANT_F32, QUANT_F16, QUANT_BF16};
    static const uint32_t shapes[][2] = {{37, 97}, {129, 416}, {1, 3}, {70, 8}, {37, 172}, {3, 4}};
    check_types(types, 3, shapes, 6);
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

/* The tiled mat-mul at the device row's tiles (also where it has cooperative matrices: the fallback): n and rows
 * not multiples of the tile. */
static void test_tiled_matmul(void **state)
{
    static const uint32_t types[] = {QUANT_WEIGHT_TYPE_IDS};
    static const uint32_t ns[] = {9, 17, 67};
    static op_tuning tiled; /* static: outlives a failed check */
    const op_tuning *own = th_ops()->tuning;
    tiled = *own;
    tiled.name = "tiled";
    tiled.matmul_min_n = 9;
    tiled.coopmat.on = 0;
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
    tiled.coopmat.on = 0;
    th_ops()->tuning = &tiled;
    static const uint32_t ns[] = {1, 9};
    th_check_matmul(QUANT_F16, rows, cols, ns, 2);
    th_ops()->tuning = own;
}

/* One kind of cooperative matrices ("nv", "khr") through VKLLM_COOPMAT: every type f16 holds, the device's own
 * tuning row with cooperative matrices on, partial tiles (37 and 129 rows, one row, n = 9..300) and a few full
 * ones.  KHR runs without the validation layer where the installed one predates VK_KHR_cooperative_matrix
 * (1.3.255): it would report the extension's structures and SPIR-V as errors. */
static void check_coopmat_kind(const char *kind, bool drop_validation)
{
    static const uint32_t types[] = {QUANT_F16,  QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1,
                                     QUANT_Q2_K, QUANT_Q3_K, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
    static const uint32_t ns[] = {9, 17, 64, 67, 130, 300};
    const char *was = getenv("VKLLM_VALIDATION");
    char *validation = was ? strdup(was) : NULL;
    if (drop_validation) {
        print_message("  %s without the validation layer: the installed one predates VK_KHR_cooperative_matrix\n", kind);
        unsetenv("VKLLM_VALIDATION");
    }
    setenv("VKLLM_COOPMAT", kind, 1);
    /* Listed but, under the old layer, unprobed: probe (a device listing, which has no validation layer; a second
     * device would replace volk's function pointers under the harness's) rather than fail on the listing. */
    vkr_caps *listed = NULL;
    uint32_t count = 0, chosen = 0;
    th_check_status(vkr_list_devices(NULL, &listed, &count, &chosen), "vkr_list_devices");
    vkr_coopmat want = strcmp(kind, "nv") == 0 ? VKR_COOPMAT_NV : strcmp(kind, "khr") == 0 ? VKR_COOPMAT_KHR
                                                                                        : VKR_COOPMAT_EMULATED;
    bool usable = chosen < count && listed[chosen].coopmat == want;
    free(listed);
    if (!usable) {
        print_message("  %s cooperative matrices are listed but not usable (see 'vkllm devices')\n", kind);
    } else {
        th_reset_device();
        const vkr_caps *caps = th_ops()->caps;
        static op_tuning row; /* static: outlives a failed check */
        row = *th_ops()->tuning;
        static char name[32];
        snprintf(name, sizeof name, "device-%s", kind);
        row.name = name;
        row.coopmat.on = 1;
        row.matmul_min_n = 9;
        th_ops()->tuning = &row;
        print_message("  %s cooperative matrices %ux%ux%u, tuning row %s's tiles\n", vkr_coopmat_name(caps->coopmat),
                      caps->coopmat_m, caps->coopmat_n, caps->coopmat_k, tuning_for(caps)->name);
        for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
            uint32_t block = quant_get_traits(types[t])->block_elems;
            uint32_t cols = block == 1 ? 97 : block == 32 ? 416 : 512;
            th_check_matmul(types[t], 37, cols, ns, 6);
            th_check_matmul(types[t], 129, 2 * cols, ns, 3);
            th_check_matmul(types[t], 1, cols, ns, 2);
        }
        static const uint32_t big[] = {300, 512};
        th_check_matmul(QUANT_Q4_0, 1024, 1024, big, 2);
        th_check_matmul(QUANT_Q4_K, 1000, 1024, big, 1);
        th_check_matmul(QUANT_F16, 1000, 1000, big, 1);
    }
    unsetenv("VKLLM_COOPMAT");
    if (validation) setenv("VKLLM_VALIDATION", validation, 1);
    free(validation);
    th_reset_device();
}

/* The real cooperative-matrix variants (matmul_T_cm_nv, matmul_T_cm_khr), each kind the device has.  Skipped on
 * devices without (lavapipe), where test_ops_matmul_coopmat runs their emulated twin. */
static void test_coopmat_device(void **state)
{
    const vkr_caps *caps = th_ops()->caps;
    bool nv = caps->coopmat_nv, khr = caps->coopmat_khr || caps->coopmat_khr_unvalidated;
    bool old_layer = caps->coopmat_khr_unvalidated;
    if (!nv && !khr) {
        print_message("  '%s' has no cooperative matrices: the NV / KHR variants run only on a device with them "
                      "(test_ops_matmul_coopmat tests their emulated twin here)\n", caps->name);
        skip();
    }
    if (nv) check_coopmat_kind("nv", false);
    if (khr) check_coopmat_kind("khr", old_layer);
}

/* With VKLLM_MAX_ALLOCATION=64K a 1000 x 512 weight no longer fits one allocation: it is kept in row chunks
 * of their own (the mat-vec and the tiled mat-mul dispatch per chunk), and the products stay right. */
static void test_larger_than_allocation(void **state)
{
    setenv("VKLLM_MAX_ALLOCATION", "64K", 1);
    th_reset_device();
    assert_int_equal(th_ops()->caps->max_memory_allocation, 65536);
    static const uint32_t types[] = {QUANT_F16, QUANT_Q4_0, QUANT_Q6_K};
    const uint32_t rows = 1000, cols = 512;
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        uint64_t bytes = quant_row_size(types[t], cols) * rows;
        uint8_t *zeros = calloc(1, bytes);
        ops_weight *w = NULL;
        th_check_status(ops_weight_create(th_ops(), types[t], rows, cols, zeros, &w), "ops_weight_create");
        print_message("  %s %ux%u: %u chunks of %u rows\n", quant_get_traits(types[t])->name, rows, cols, w->n_chunks,
                      w->chunk_rows);
        assert_true(w->n_chunks > 1);
        for (uint32_t c = 0; c < w->n_chunks; c++) assert_true(w->quants[c].size <= 65536);
        ops_weight_free(th_ops(), w);
        free(zeros);
        static op_tuning tiled; /* static: outlives a failed check */
        const op_tuning *own = th_ops()->tuning;
        tiled = *own;
        tiled.name = "tiled";
        tiled.matmul_min_n = 9;
        tiled.coopmat.on = 0;
        th_ops()->tuning = &tiled;
        static const uint32_t ns[] = {1, 3, 9};
        th_check_matmul(types[t], rows, cols, ns, 3);
        th_ops()->tuning = own;
    }
    /* A buffer that cannot be chunked is refused with the limit named. */
    vkr_buffer big;
    assert_int_equal(vkr_buffer_alloc(th_device(), 65537, VKR_MEMORY_DEVICE, &big), VKLLM_ERROR_OUT_OF_DEVICE_MEMORY);
    assert_non_null(strstr(vkllm_last_error(), "maxMemoryAllocationSize"));
    unsetenv("VKLLM_MAX_ALLOCATION");
    th_reset_device();
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
        cmocka_unit_test(test_coopmat_device),
        cmocka_unit_test(test_larger_than_allocation),
        cmocka_unit_test(test_bad_shapes),
    };
    return TH_RUN("ops_matmul", tests);
}
