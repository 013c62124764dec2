/* Every shader variant of ops_matmul on lavapipe: the GPU tuning rows (an invocation group per 4 rows,
 * reduced with subgroupAdd, then shared memory, or through shared memory only), their integer path through
 * the device's integer dot product, f16 arithmetic, and each forced fallback (VKLLM_DISABLE_F16 / _SUBGROUP /
 * _STORAGE16 / _STORAGE8).  Variants per type: matvec_T, matvec_T_sg, matvec_T_f16 and matvec_T_sg_f16
 * (types with centred levels), matvec_T_q8dot and matvec_T_sg_q8dot (quantized types), matmul_T and
 * matmul_T_f16 (not F32 and BF16); the GPU rows run the float path of quantized types as copies with
 * matvec_int_dot = 0.  test_ops_matmul_q8 covers the rest of the integer path (matvec_T_q8, matvec_T_sg_q8,
 * quantize_q8, row groups inside a subgroup, batch invariance); lavapipe's own tuning (test_ops_matmul)
 * covers matvec_T_tx (texel loads, x shared by shuffles), and matmul_T where it forces the tiled mat-mul; the
 * texel variants' loads of x per column run here (test_cpu_row_x_loads); the CPU row without
 * texel loads (knob off, VKLLM_DISABLE_TEXEL, or a texel limit too small for x) covers matvec_T, and weights
 * chunked for a small maxTexelBufferElements matvec_T_tx with chunks.  Run by hand with
 * LP_NATIVE_VECTOR_WIDTH=512 too (subgroups of 16: other reduction branches). */
#include <stdlib.h>

#include "matmul_check.h"
#include "ops/matmul/matmul.h"
#include "quant/quant.h"

static const uint32_t all_types[] = {QUANT_WEIGHT_TYPE_IDS};
static const uint32_t quant_types[] = {QUANT_BLOCK_TYPE_IDS};
static const uint32_t main_types[] = {QUANT_F16, QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_K};
#define COUNT(a) (sizeof(a) / sizeof *(a))

static void set_env(const char *f16, const char *subgroup)
{
    if (f16) setenv("VKLLM_DISABLE_F16", f16, 1);
    else unsetenv("VKLLM_DISABLE_F16");
    if (subgroup) setenv("VKLLM_DISABLE_SUBGROUP", subgroup, 1);
    else unsetenv("VKLLM_DISABLE_SUBGROUP");
    th_reset_device();
}

/* NVIDIA's row: 32 invocations per 4 rows (4 lavapipe subgroups: subgroupAdd, then shared memory), 64x64
 * mat-mul tiles: the integer path through lavapipe's integer dot product (matvec_T_sg_q8dot), f16
 * arithmetic for F16 (matvec_F16_sg_f16) and matmul_T_f16; on the float path matvec_T_sg_f16 (matvec_T_sg
 * for the types with a minimum). */
static void test_gpu_row_subgroup_f16(void **state)
{
    set_env(NULL, NULL);
    assert_true(th_ops()->caps->int_dot);
    th_check_matmul_shapes(all_types, COUNT(all_types), tuning_row(TUNING_NVIDIA));
    th_check_matmul_shapes(quant_types, COUNT(quant_types), th_float_path(tuning_row(TUNING_NVIDIA), 0));
}

/* Without f16 arithmetic, the float path: matvec_T_sg. */
static void test_gpu_row_no_f16(void **state)
{
    set_env("1", NULL);
    assert_false(th_ops()->caps->fp16_arith);
    th_check_matmul_shapes(all_types, COUNT(all_types), th_float_path(tuning_row(TUNING_NVIDIA), 0));
}

/* Without subgroup arithmetic: the shared-memory reduction, matvec_T_q8dot (and matvec_F16_f16, matvec_T for
 * F32/BF16); on the float path matvec_T_f16 or matvec_T. */
static void test_gpu_row_no_subgroup(void **state)
{
    set_env(NULL, "1");
    assert_false(th_ops()->caps->subgroup_arithmetic);
    th_check_matmul_shapes(all_types, COUNT(all_types), tuning_row(TUNING_NVIDIA));
    th_check_matmul_shapes(quant_types, COUNT(quant_types), th_float_path(tuning_row(TUNING_NVIDIA), 0));
}

/* Both float fallbacks at once, on the wave64 row (64 invocations per row group, wider workgroups). */
static void test_gpu_row_no_subgroup_no_f16(void **state)
{
    set_env("1", "1");
    th_check_matmul_shapes(main_types, COUNT(main_types), th_float_path(tuning_row(TUNING_AMD_WAVE64), 0));
}

/* Other code paths of the same variants: a row group of exactly one subgroup (subgroupAdd alone), the Intel
 * and unknown rows, and the CPU row with f16 arithmetic (no reduction, f16 dots). */
static void test_other_rows(void **state)
{
    set_env(NULL, NULL);
    static op_tuning one_subgroup, cpu_f16; /* static: outlive a failed check */
    one_subgroup = *tuning_row(TUNING_NVIDIA);
    one_subgroup.name = "split-8";
    one_subgroup.matvec_wg = 32;
    one_subgroup.matvec_split = 8; /* lavapipe's subgroup size */
    th_check_matmul_shapes(main_types, COUNT(main_types), &one_subgroup);
    th_check_matmul_shapes(main_types, COUNT(main_types), th_float_path(&one_subgroup, 0));
    th_check_matmul_shapes(main_types, COUNT(main_types), tuning_row(TUNING_INTEL));
    th_check_matmul_shapes(main_types, COUNT(main_types), tuning_row(TUNING_UNKNOWN));
    cpu_f16 = *tuning_row(TUNING_CPU);
    cpu_f16.name = "cpu-f16";
    cpu_f16.fp16 = 1;
    cpu_f16.matvec_cols = 3; /* n = 5 and 8 take several passes */
    th_check_matmul_shapes(main_types, COUNT(main_types), &cpu_f16);
}

/* The CPU row's storage-buffer fallback: with the knob off, and where the device lacks the texel formats. */
static void test_cpu_row_without_texels(void **state)
{
    static op_tuning ssbo; /* static: outlives a failed check */
    set_env(NULL, NULL);
    ssbo = *tuning_row(TUNING_CPU);
    ssbo.name = "cpu-ssbo";
    ssbo.texel_loads = 0;
    th_check_matmul_shapes(all_types, COUNT(all_types), &ssbo);
    setenv("VKLLM_DISABLE_TEXEL", "1", 1);
    set_env(NULL, NULL);
    assert_false(th_ops()->caps->texel_rgba32);
    th_check_matmul_shapes(main_types, COUNT(main_types), tuning_row(TUNING_CPU));
    unsetenv("VKLLM_DISABLE_TEXEL");
    set_env(NULL, NULL);
}

/* The CPU row's loads of x: shared by shuffles among 8 lanes of a subgroup (the row as it is; on the rerun at
 * subgroups of 16 also workgroups of 16, whose lanes 8..15 fetch what lanes 0..7 do), and per column where the
 * workgroup has fewer than 8 lanes (4), spans subgroups (16 at lavapipe's usual 8) or has no subgroup operations
 * (VKLLM_DISABLE_SUBGROUP).  n = 4 (the first count that shares), a full block of 16 and one more. */
static void test_cpu_row_x_loads(void **state)
{
    static const uint32_t types[] = {QUANT_F16, QUANT_Q4_0, QUANT_Q4_K};
    static const uint32_t ns[] = {4, 16, 17};
    static const uint32_t wgs[] = {8, 4, 16};
    static const char *const names[] = {"cpu-wg8", "cpu-wg4", "cpu-wg16"};
    static op_tuning rows[3]; /* static: outlive a failed check */
    set_env(NULL, NULL);
    for (int i = 0; i < 3; i++) {
        rows[i] = *tuning_row(TUNING_CPU);
        rows[i].name = names[i];
        rows[i].matvec_wg = wgs[i];
        th_check_matmul_shapes_n(types, COUNT(types), &rows[i], ns, COUNT(ns));
    }
    if (th_ops()->caps->subgroup_shuffle) assert_true(ops_matvec_shares_x(th_ops(), &rows[0], 1, 4));
    assert_false(ops_matvec_shares_x(th_ops(), &rows[0], 1, 3));
    assert_false(ops_matvec_shares_x(th_ops(), &rows[1], 1, 16));
    set_env(NULL, "1");
    assert_false(ops_matvec_shares_x(th_ops(), tuning_row(TUNING_CPU), 1, 16));
    th_check_matmul_shapes_n(types, COUNT(types), tuning_row(TUNING_CPU), ns, COUNT(ns));
    set_env(NULL, NULL);
}

/* A device with few texels per view (4096 here): weights are kept in chunks of as many rows as fit one view
 * (each chunk its own allocation), and an x too large for a view (n = 67 at 416 columns) falls back to the
 * storage-buffer variant. */
static void test_small_texel_limit(void **state)
{
    set_env(NULL, NULL);
    if (th_rerun_skips_row(tuning_row(TUNING_CPU))) skip();
    ops_context *o = th_ops();
    const vkr_caps *own = o->caps;
    static vkr_caps small; /* static: outlives a failed check */
    small = *own;
    small.max_texel_buffer_elements = 4096;
    o->caps = &small;
    o->tuning = tuning_row(TUNING_CPU);
    /* Q4_0 at 416 columns: 208 bytes of quants per row, 315 rows per 64 KiB view: chunks of 315 and 285. */
    static uint8_t data[600 * 13 * 18];
    ops_weight *w = NULL;
    th_check_status(ops_weight_create(o, QUANT_Q4_0, 600, 416, data, &w), "ops_weight_create");
    assert_int_equal(w->chunk_rows, 315);
    assert_int_equal(w->n_chunks, 2);
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
    th_check_matmul_shapes(main_types, COUNT(main_types), th_ops()->tuning);
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
        cmocka_unit_test(test_cpu_row_x_loads),
        cmocka_unit_test(test_small_texel_limit),
    };
    return TH_RUN("ops_matmul_variants", tests);
}
