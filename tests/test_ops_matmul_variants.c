/* Every shader variant of ops_matmul on lavapipe: the GPU tuning rows (an invocation group per row pair,
 * reduced with subgroupAdd or through shared memory), f16 arithmetic, and each forced fallback
 * (VKLLM_DISABLE_F16 / _SUBGROUP / _STORAGE16 / _STORAGE8).  Variants per type: matvec_T, matvec_T_sg,
 * matvec_T_f16, matvec_T_sg_f16, matmul_T, matmul_T_f16 (the _f16 ones not for F32 and BF16); lavapipe's
 * own tuning (test_ops_matmul) covers matvec_T_tx (texel loads), and matmul_T where it forces the tiled
 * mat-mul; the CPU row without texel loads (knob off, VKLLM_DISABLE_TEXEL, or a texel limit too small for
 * x) covers matvec_T, and weights chunked for a small maxTexelBufferElements matvec_T_tx with chunks. */
#include <stdlib.h>

#include "matmul_check.h"
#include "ops/matmul.h"
#include "quant/quant.h"

static const uint32_t all_types[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0,
                                     QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q2_K, QUANT_Q3_K,
                                     QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
static const uint32_t main_types[] = {QUANT_F16, QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_K};
static const uint32_t variant_n[] = {1, 5, 8, 9};

/* Odd rows; K not a multiple of 256 where the block allows. */
static uint32_t cols_for(uint32_t type)
{
    uint32_t block = quant_get_traits(type)->block_elems;
    return block == 1 ? 97 : block == 32 ? 96 : 256;
}

static void set_env(const char *f16, const char *subgroup)
{
    if (f16) setenv("VKLLM_DISABLE_F16", f16, 1);
    else unsetenv("VKLLM_DISABLE_F16");
    if (subgroup) setenv("VKLLM_DISABLE_SUBGROUP", subgroup, 1);
    else unsetenv("VKLLM_DISABLE_SUBGROUP");
    th_reset_device();
}

/* Odd rows, twice the columns, and one row of one block (whose output is one sum: f16 rounding that the
 * multi-row shapes average out shows there, e.g. the old f16 dots of Q4_1's uncentred levels, nmse 0.014). */
static void check_all(const uint32_t *types, size_t n_types, const op_tuning *tuning)
{
    ops_context *o = th_ops();
    o->tuning = tuning;
    for (size_t t = 0; t < n_types; t++) {
        uint32_t block = quant_get_traits(types[t])->block_elems;
        th_check_matmul(types[t], 37, cols_for(types[t]), variant_n, sizeof variant_n / sizeof *variant_n);
        th_check_matmul(types[t], 129, 2 * cols_for(types[t]), variant_n, 1);
        th_check_matmul(types[t], 1, block == 1 ? 3 : block, variant_n, sizeof variant_n / sizeof *variant_n);
    }
}

/* NVIDIA's row: 32 invocations per row pair (4 lavapipe subgroups: subgroupAdd, then shared memory),
 * f16 arithmetic, 64x64 mat-mul tiles: matvec_T_sg_f16 and matmul_T_f16. */
static void test_gpu_row_subgroup_f16(void **state)
{
    set_env(NULL, NULL);
    check_all(all_types, sizeof all_types / sizeof *all_types, tuning_row(TUNING_NVIDIA));
}

/* Without f16 arithmetic: matvec_T_sg. */
static void test_gpu_row_no_f16(void **state)
{
    set_env("1", NULL);
    assert_false(th_ops()->caps->fp16_arith);
    check_all(all_types, sizeof all_types / sizeof *all_types, tuning_row(TUNING_NVIDIA));
}

/* Without subgroup arithmetic: the shared-memory reduction, matvec_T_f16 (and matvec_T for F32/BF16). */
static void test_gpu_row_no_subgroup(void **state)
{
    set_env(NULL, "1");
    assert_false(th_ops()->caps->subgroup_arithmetic);
    check_all(all_types, sizeof all_types / sizeof *all_types, tuning_row(TUNING_NVIDIA));
}

/* Both fallbacks at once, on the wave64 row (64 invocations per row group, wider workgroups). */
static void test_gpu_row_no_subgroup_no_f16(void **state)
{
    set_env("1", "1");
    check_all(main_types, sizeof main_types / sizeof *main_types, tuning_row(TUNING_AMD_WAVE64));
}

/* Other code paths of the same variants: a row group of exactly one subgroup (subgroupAdd alone), the
 * Intel and unknown rows, and the CPU row with f16 arithmetic (no reduction, f16 dots). */
static void test_other_rows(void **state)
{
    set_env(NULL, NULL);
    static op_tuning one_subgroup, cpu_f16; /* static: outlive a failed check */
    one_subgroup = *tuning_row(TUNING_UNKNOWN);
    one_subgroup.name = "split-8";
    one_subgroup.matvec_wg = 32;
    one_subgroup.matvec_split = 8; /* lavapipe's subgroup size */
    check_all(main_types, sizeof main_types / sizeof *main_types, &one_subgroup);
    check_all(main_types, sizeof main_types / sizeof *main_types, tuning_row(TUNING_INTEL));
    check_all(main_types, sizeof main_types / sizeof *main_types, tuning_row(TUNING_UNKNOWN));
    cpu_f16 = *tuning_row(TUNING_CPU);
    cpu_f16.name = "cpu-f16";
    cpu_f16.fp16 = 1;
    cpu_f16.matvec_cols = 3; /* n = 5 and 8 take several passes */
    check_all(main_types, sizeof main_types / sizeof *main_types, &cpu_f16);
}

/* The CPU row's storage-buffer fallback: with the knob off, and where the device lacks the texel formats. */
static void test_cpu_row_without_texels(void **state)
{
    static op_tuning ssbo; /* static: outlives a failed check */
    set_env(NULL, NULL);
    ssbo = *tuning_row(TUNING_CPU);
    ssbo.name = "cpu-ssbo";
    ssbo.texel_loads = 0;
    check_all(all_types, sizeof all_types / sizeof *all_types, &ssbo);
    setenv("VKLLM_DISABLE_TEXEL", "1", 1);
    set_env(NULL, NULL);
    assert_false(th_ops()->caps->texel_rgba32);
    check_all(main_types, sizeof main_types / sizeof *main_types, tuning_row(TUNING_CPU));
    unsetenv("VKLLM_DISABLE_TEXEL");
    set_env(NULL, NULL);
}

/* A device with few texels per view (4096 here): weights are bound in chunks of 256 rows that fit one, and
 * an x too large for a view (n = 67 at 416 columns) falls back to the storage-buffer variant. */
static void test_small_texel_limit(void **state)
{
    set_env(NULL, NULL);
    ops_context *o = th_ops();
    const vkr_caps *own = o->caps;
    static vkr_caps small; /* static: outlives a failed check */
    small = *own;
    small.max_texel_buffer_elements = 4096;
    o->caps = &small;
    o->tuning = tuning_row(TUNING_CPU);
    /* Q4_0 at 416 columns: 208 bytes of quants per row, 315 rows per 64 KiB view, so 256-row chunks. */
    static uint8_t data[600 * 13 * 18];
    ops_weight *w = NULL;
    th_check_status(ops_weight_create(o, QUANT_Q4_0, 600, 416, data, &w), "ops_weight_create");
    assert_int_equal(w->chunk_rows, 256);
    ops_weight_free(o, w);
    static const uint32_t ns[] = {1, 8, 9, 67};
    th_check_matmul(QUANT_Q4_0, 600, 416, ns, 4);
    th_check_matmul(QUANT_F16, 600, 97, ns, 4);
    th_check_matmul(QUANT_Q4_K, 300, 512, ns, 2);
    o->caps = own;
}

/* The repacked layout reads 32-bit words only: nothing changes without 16- and 8-bit storage. */
static void test_no_small_storage(void **state)
{
    setenv("VKLLM_DISABLE_STORAGE16", "1", 1);
    setenv("VKLLM_DISABLE_STORAGE8", "1", 1);
    set_env(NULL, NULL);
    assert_false(th_ops()->caps->storage16 || th_ops()->caps->storage8);
    check_all(main_types, sizeof main_types / sizeof *main_types, th_ops()->tuning);
    unsetenv("VKLLM_DISABLE_STORAGE16");
    unsetenv("VKLLM_DISABLE_STORAGE8");
    set_env(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpu_row_subgroup_f16),
        cmocka_unit_test(test_gpu_row_no_f16),
        cmocka_unit_test(test_gpu_row_no_subgroup),
        cmocka_unit_test(test_gpu_row_no_subgroup_no_f16),
        cmocka_unit_test(test_other_rows),
        cmocka_unit_test(test_no_small_storage),
        cmocka_unit_test(test_cpu_row_without_texels),
        cmocka_unit_test(test_small_texel_limit),
    };
    return TH_RUN("ops_matmul_variants", tests);
}
