/* The mat-vec's integer path (x quantized to 8-bit blocks, integer dot products) beyond what
 * test_ops_matmul_variants runs: quantize_q8 bit for bit against its C mirror; matvec_T_sg_q8 and
 * matvec_T_q8 (VKLLM_DISABLE_INT_DOT: the same math in plain integer arithmetic); row groups smaller than a
 * subgroup (shuffle butterflies) with 4 rows per lane; the CPU row's shape (no reduction) with column blocks;
 * and batch invariance on every mat-vec path of the GPU rows.  Each product is checked tightly against the
 * reference on x's q8 round trip and loosely against the float reference (matmul_check.c).  Run by hand with
 * LP_NATIVE_VECTOR_WIDTH=512 too (subgroups of 16). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "matmul_check.h"
#include "ops/matmul/matmul.h"
#include "quant/quant.h"

static const uint32_t all_types[] = {QUANT_WEIGHT_TYPE_IDS};
static const uint32_t quant_types[] = {QUANT_BLOCK_TYPE_IDS};
static const uint32_t main_types[] = {QUANT_F16, QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_K};
/* 4-bit, 6-bit and 8-bit levels, groups of 32 and of 64 */
static const uint32_t some_quant_types[] = {QUANT_Q8_0, QUANT_Q4_0, QUANT_Q2_K, QUANT_Q6_K};
#define COUNT(a) (sizeof(a) / sizeof *(a))

static void set_env(const char *subgroup, const char *int_dot)
{
    if (subgroup) setenv("VKLLM_DISABLE_SUBGROUP", subgroup, 1);
    else unsetenv("VKLLM_DISABLE_SUBGROUP");
    if (int_dot) setenv("VKLLM_DISABLE_INT_DOT", int_dot, 1);
    else unsetenv("VKLLM_DISABLE_INT_DOT");
    th_reset_device();
}

/* quantize_q8 against its C mirror (th_q8_quantize), bit for bit: random blocks, a zero block, exact ties
 * (127 x / amax = k + 1/2 rounds away from zero), huge and tiny magnitudes, lone values, negative zeros;
 * the levels, d and the sums of each half. */
static void check_quantize_q8(void)
{
    enum { N = 3, COLS = 160, BLOCKS = COLS / 32 }; /* an odd number of blocks: columns padded in the layout */
    static float x[N * COLS];
    th_rng rng = {77};
    th_fill_uniform(&rng, x, N * COLS, -1.0f, 1.0f);
    for (int k = 32; k < 64; k++) x[k] = 0.0f;
    static const float ties[] = {127.0f, 0.5f, -0.5f, 2.5f, -3.5f, 126.5f, -126.5f, 63.5f, 1.5f, -1.5f, 100.25f};
    for (int k = 0; k < 32; k++) x[64 + k] = ties[k % (int)(sizeof ties / sizeof *ties)];
    for (int k = 96; k < 128; k++) x[k] *= 1e30f;
    for (int k = 128; k < 160; k++) x[k] *= 1e-30f;
    for (int k = 0; k < 32; k++) x[COLS + k] = k == 7 ? -0.3f : -0.0f;
    for (int b = 0; b < BLOCKS; b++)
        for (int k = 0; k < 32; k++) x[2 * COLS + 32 * b + k] *= powf(10.0f, (float)(b - 2) * 3.0f);
    uint64_t bytes = ops_q8_bytes(N, COLS);
    assert_int_equal(bytes % 16, 0);
    vkr_buffer xb = th_upload(x, sizeof x), qb = th_alloc(bytes);
    th_check_status(vkr_fill(th_device(), &qb, 0, bytes, 0xdeadbeefu), "poison");
    vkr_sequence *seq = th_begin();
    th_check_status(ops_quantize_q8(th_ops(), seq, vkr_whole(&xb), N, COLS, vkr_whole(&qb)), "ops_quantize_q8");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    vkr_sequence_destroy(seq);
    uint32_t *words = malloc(bytes);
    assert_non_null(words);
    th_download(&qb, words, bytes);
    const uint32_t col_words = (uint32_t)(bytes / 4 / N);
    for (int c = 0; c < N; c++) {
        int8_t levels[COLS];
        float d[BLOCKS];
        th_q8_quantize(x + c * COLS, COLS, levels, d);
        const uint32_t *w = words + c * col_words;
        for (int b = 0; b < BLOCKS; b++) {
            int sums[2] = {0, 0};
            for (int k = 0; k < 32; k++) {
                int8_t got = (int8_t)(w[8 * b + k / 4] >> (8 * (k % 4)));
                if (got != levels[32 * b + k])
                    fail_msg("column %d element %d: x %.9g level %d, want %d", c, 32 * b + k,
                             (double)x[c * COLS + 32 * b + k], got, levels[32 * b + k]);
                sums[k / 16] += got;
            }
            uint32_t d_bits;
            memcpy(&d_bits, &d[b], 4);
            uint32_t ds = w[8 * BLOCKS + 2 * b], packed = w[8 * BLOCKS + 2 * b + 1];
            if (ds != d_bits) fail_msg("column %d block %d: d bits %08x, want %08x", c, b, ds, d_bits);
            if ((int16_t)packed != sums[0] || (int16_t)(packed >> 16) != sums[1])
                fail_msg("column %d block %d: sums %d %d, want %d %d", c, b, (int16_t)packed, (int16_t)(packed >> 16),
                         sums[0], sums[1]);
        }
    }
    /* The ties rounded away from zero. */
    int8_t levels[COLS];
    float d[BLOCKS];
    th_q8_quantize(x, COLS, levels, d);
    assert_int_equal(levels[64 + 1], 1);
    assert_int_equal(levels[64 + 4], -4);
    assert_int_equal(levels[64 + 5], 127);
    free(words);
    th_free(&xb);
    th_free(&qb);
}

/* Both variants: quantize_q8_sg (8 lanes per block, shuffles) where the device has subgroup shuffles, and
 * quantize_q8 (a block per invocation) without subgroups. */
static void test_quantize_q8(void **state)
{
    set_env(NULL, NULL);
    print_message("  quantize_q8%s\n", th_ops()->caps->subgroup_shuffle ? "_sg" : "");
    check_quantize_q8();
    set_env("1", NULL);
    assert_false(th_ops()->caps->subgroup_shuffle);
    print_message("  quantize_q8 (VKLLM_DISABLE_SUBGROUP=1)\n");
    check_quantize_q8();
    set_env(NULL, NULL);
}

/* y of column 5 of x, computed alone (n = 1 from its offset), among 8 and among 5 (and in blocks of 3
 * columns): the same bits.  Speculative decoding verifies draft tokens in one pass and must match what
 * decoding them one by one gives. */
/* A matrix with long rows widens the mat-vec's split (matvec_max_split): split 8 on a row of 129 groups of 32
 * becomes 32 (4 groups per lane at most), one of 33 groups 16; the integer and the float path, n = 1..8. */
static void test_long_rows_widen_split(void **state)
{
    set_env(NULL, NULL);
    static op_tuning wide;
    wide = *tuning_row(TUNING_NVIDIA);
    wide.name = "nvidia-split8-max32";
    wide.matvec_split = 8;
    wide.matvec_max_split = 32;
    th_ops()->tuning = &wide;
    static const uint32_t ns[] = {1, 3, 8};
    th_check_matmul(QUANT_Q4_0, 37, 4128, ns, COUNT(ns));
    th_check_matmul(QUANT_Q6_K, 9, 33 * 256, ns, 1);
    th_check_matmul(QUANT_Q4_0, 16, 1056, ns, COUNT(ns));
    /* The float path's reduction is the same code; at subgroups of 16 its f16 variants are lavapipe's slowest
     * compiles, and test_ops_matmul_variants_sg16 runs them at NVIDIA's split: not again here on the rerun. */
    if (!th_subgroup_rerun()) {
        th_ops()->tuning = th_float_path(&wide, 0);
        th_check_matmul(QUANT_Q4_0, 37, 4128, ns, COUNT(ns));
        th_check_matmul(QUANT_F16, 21, 1000, ns, COUNT(ns));
    }
    th_ops()->tuning = &th_ops()->resolved;
}

/* Without the device's integer dot product: the same integer math in plain integer arithmetic,
 * matvec_T_sg_q8 on NVIDIA's row (n = 1, 5, 8); without subgroups too, matvec_T_q8 on the wave64 row (n = 3
 * only: one more pipeline per type, whose parts the runs before exercise). */
static void test_no_int_dot(void **state)
{
    static const uint32_t ns[] = {1, 5, 8}, n3[] = {3};
    set_env(NULL, "1");
    assert_false(th_ops()->caps->int_dot);
    th_check_matmul_shapes_n(quant_types, COUNT(quant_types), tuning_row(TUNING_NVIDIA), ns, COUNT(ns));
    set_env("1", "1");
    th_check_matmul_shapes_n(quant_types, COUNT(quant_types), tuning_row(TUNING_AMD_WAVE64), n3, 1);
    set_env(NULL, NULL);
}

/* Row groups of 2 lanes inside a subgroup (shuffle butterflies), 4 rows per lane (32 sums at n = 8), on the
 * integer path and on the float path of F16 (the quantized types' f16 variants of this shape were the costliest
 * compiles of the suite on lavapipe, and their reduction is the same code); and the CPU row's shape on the
 * integer path (one lane per 16 rows, no reduction; n = 5 in blocks of 3 and 2 columns, n = 9 in three blocks:
 * the mat-vec serves batches there). */
static op_tuning in_subgroup; /* static: outlives a failed check */

static const op_tuning *rows_in_subgroup(void)
{
    in_subgroup = *tuning_row(TUNING_NVIDIA);
    in_subgroup.name = "split-2-rows-4";
    in_subgroup.matvec_wg = 16;
    in_subgroup.matvec_split = 2;
    in_subgroup.matvec_rows = 4;
    return &in_subgroup;
}

static void test_other_rows(void **state)
{
    static op_tuning cpu_q8; /* static: outlives a failed check */
    static const uint32_t ns[] = {1, 5, 8}, n59[] = {5, 9};
    set_env(NULL, NULL);
    th_check_matmul_shapes_n(some_quant_types, COUNT(some_quant_types), rows_in_subgroup(), ns, COUNT(ns));
    static const uint32_t f16[] = {QUANT_F16}; /* the shuffles are the integer path's; F16 for the float one */
    if (!th_subgroup_rerun()) /* the same shuffles as the integer path's, which the rerun runs above */
        th_check_matmul_shapes_n(f16, 1, th_float_path(rows_in_subgroup(), 0), ns, COUNT(ns));
    cpu_q8 = *tuning_row(TUNING_CPU);
    cpu_q8.name = "cpu-q8";
    cpu_q8.matvec_int_dot = 1;
    cpu_q8.matvec_cols = 3;
    th_check_matmul_shapes_n(some_quant_types, COUNT(some_quant_types), &cpu_q8, n59, COUNT(n59));
}

static void check_invariance(uint32_t type, const op_tuning *row)
{
    const uint32_t rows = 37, cols = 256, col = 5;
    th_ops()->tuning = row;
    th_rng rng = {type * 31ull + 5};
    uint64_t row_bytes = quant_row_size(type, cols);
    uint8_t *data = malloc(row_bytes * rows);
    float *x = malloc(sizeof *x * 8 * cols), *w_row = malloc(sizeof *w_row * cols);
    float *y_all = malloc(sizeof *y_all * 8 * rows), *y_one = malloc(sizeof *y_one * rows);
    assert_true(data && x && w_row && y_all && y_one);
    for (uint32_t r = 0; r < rows; r++) {
        th_fill_uniform(&rng, w_row, cols, -1.0f, 1.0f);
        th_check_status(quant_quantize_row(type, w_row, data + r * row_bytes, cols), "quantize");
    }
    th_fill_uniform(&rng, x, 8 * cols, -1.0f, 1.0f);
    ops_weight *w;
    th_check_status(ops_weight_create(th_ops(), type, rows, cols, data, &w), "weight");
    vkr_buffer xb = th_upload(x, sizeof *x * 8 * cols), yb = th_alloc(sizeof *y_all * 8 * rows);
    static const uint32_t ns[] = {1, 8, 5};
    for (size_t i = 0; i < COUNT(ns); i++) {
        uint32_t n = ns[i];
        vkr_range xr = n == 1 ? vkr_sub(&xb, 4ull * col * cols, 4ull * cols) : vkr_whole(&xb);
        vkr_sequence *seq = th_begin();
        th_check_status(ops_matmul(th_ops(), seq, w, xr, vkr_whole(&yb), n), "ops_matmul");
        th_check_status(vkr_sequence_end(seq), "end");
        th_check_status(vkr_sequence_run(seq), "run");
        vkr_sequence_destroy(seq);
        if (n == 1) {
            th_download(&yb, y_one, sizeof *y_one * rows);
            continue;
        }
        th_download(&yb, y_all, sizeof *y_all * n * rows);
        for (uint32_t r = 0; r < rows; r++)
            if (memcmp(&y_all[col * rows + r], &y_one[r], 4) != 0)
                fail_msg("%s (tuning %s, path %s): row %u of column %u is %.9g among %u, %.9g alone",
                         quant_get_traits(type)->name, row->name, ops_matmul_path_name(ops_matmul_path_of(th_ops(), w, n)),
                         r, col, (double)y_all[col * rows + r], n, (double)y_one[r]);
    }
    printf("  %-5s (tuning %-16s path %-5s): column %u alone, among 5 and among 8: same bits\n",
           quant_get_traits(type)->name, row->name, ops_matmul_path_name(ops_matmul_path_of(th_ops(), w, 1)), col);
    th_free(&xb);
    th_free(&yb);
    ops_weight_free(th_ops(), w);
    free(data), free(x), free(w_row), free(y_all), free(y_one);
}

static void check_invariance_all(const uint32_t *types, size_t n_types, const op_tuning *row)
{
    if (th_rerun_skips_row(row)) return;
    for (size_t t = 0; t < n_types; t++)
        if (!th_rerun_skips_type(types[t])) check_invariance(types[t], row);
}

/* Every mat-vec path of the GPU rows: subgroupAdd + shared memory (NVIDIA's row on lavapipe's subgroups of 8),
 * shuffles (row groups of 2 lanes), shared memory only; integer path with and without the device's dot
 * product (every type through the dot product: each has its own group_dot); f16 and f32 float paths (F16,
 * Q8_0 and Q4_0 in f16, Q4_K in f32); column blocks of 3. */
static void test_batch_invariance(void **state)
{
    static op_tuning blocks_of_3; /* static: outlives a failed check */
    set_env(NULL, NULL);
    blocks_of_3 = *tuning_row(TUNING_AMD_WAVE64);
    blocks_of_3.name = "amd-wave64-cols-3";
    blocks_of_3.matvec_cols = 3;
    check_invariance_all(all_types, COUNT(all_types), tuning_row(TUNING_NVIDIA));
    check_invariance_all(main_types, COUNT(main_types), th_float_path(tuning_row(TUNING_NVIDIA), 0));
    check_invariance_all(main_types, COUNT(main_types), rows_in_subgroup());
    check_invariance_all(main_types, COUNT(main_types), &blocks_of_3);
    check_invariance_all(main_types, COUNT(main_types), tuning_row(TUNING_INTEL));
    set_env(NULL, "1");
    check_invariance_all(some_quant_types, COUNT(some_quant_types), tuning_row(TUNING_NVIDIA));
    set_env("1", NULL);
    check_invariance_all(main_types, COUNT(main_types), tuning_row(TUNING_NVIDIA));
    check_invariance_all(main_types, COUNT(main_types), th_float_path(tuning_row(TUNING_NVIDIA), 0));
    set_env(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_q8),
        cmocka_unit_test(test_long_rows_widen_split),
        cmocka_unit_test(test_no_int_dot),
        cmocka_unit_test(test_other_rows),
        cmocka_unit_test(test_batch_invariance),
    };
    return TH_RUN("ops_matmul_q8", tests);
}
