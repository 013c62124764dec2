#include "matmul_check.h"

#include <stdio.h>
#include <stdlib.h>

#include "ops/matmul.h"
#include "quant/quant.h"

/* Random weights in [-1, 1] quantized to `type`, row by row. */
static uint8_t *random_weights(th_rng *rng, uint32_t type, uint32_t rows, uint32_t cols)
{
    uint64_t row_bytes = quant_row_size(type, cols);
    uint8_t *data = malloc(row_bytes * rows);
    float *row = malloc(sizeof *row * cols);
    assert_true(data && row);
    for (uint32_t r = 0; r < rows; r++) {
        th_fill_uniform(rng, row, cols, -1.0f, 1.0f);
        th_check_status(quant_quantize_row(type, row, data + r * row_bytes, cols), "quant_quantize_row");
    }
    free(row);
    return data;
}

/* ref[c][r] = sum_k W[r][k] x[c][k] in double, W dequantized a row at a time. */
static void reference(uint32_t type, const uint8_t *w, uint32_t rows, uint32_t cols, const float *x, uint32_t n,
                      float *ref)
{
    uint64_t row_bytes = quant_row_size(type, cols);
    float *row = malloc(sizeof *row * cols);
    assert_non_null(row);
    for (uint32_t r = 0; r < rows; r++) {
        th_check_status(quant_dequantize_row(type, w + r * row_bytes, row, cols), "quant_dequantize_row");
        for (uint32_t c = 0; c < n; c++) {
            double sum = 0;
            for (uint32_t k = 0; k < cols; k++) sum += (double)row[k] * x[(size_t)c * cols + k];
            ref[(size_t)c * rows + r] = (float)sum;
        }
    }
    free(row);
}

double th_check_matmul(uint32_t type, uint32_t rows, uint32_t cols, const uint32_t *ns, size_t n_ns, double bound)
{
    th_rng rng = {type * 7919ull + rows * 31ull + cols};
    uint32_t max_n = 0;
    for (size_t i = 0; i < n_ns; i++) max_n = ns[i] > max_n ? ns[i] : max_n;
    uint8_t *data = random_weights(&rng, type, rows, cols);
    ops_weight *w;
    th_check_status(ops_weight_create(th_ops(), type, rows, cols, data, &w), "ops_weight_create");
    if (w->chunk_rows < rows) printf("  bound in chunks of %u rows\n", w->chunk_rows);
    /* A matrix the device cannot bind whole must come in chunks that each fit. */
    if ((uint64_t)rows * w->quant_row_bytes > th_ops()->caps->max_storage_buffer_range)
        assert_true(w->chunk_rows < rows &&
                    (uint64_t)w->chunk_rows * w->quant_row_bytes <= th_ops()->caps->max_storage_buffer_range);

    size_t x_n = (size_t)max_n * cols, y_n = (size_t)max_n * rows;
    float *x = malloc(sizeof *x * x_n), *ref = malloc(sizeof *ref * y_n), *got = malloc(sizeof *got * y_n);
    assert_true(x && ref && got);
    th_fill_uniform(&rng, x, x_n, -1.0f, 1.0f);
    reference(type, data, rows, cols, x, max_n, ref);
    vkr_buffer xb = th_upload(x, sizeof *x * x_n), yb = th_alloc(sizeof *got * y_n);
    vkr_sequence *seq;
    th_check_status(vkr_sequence_create(th_device(), &seq), "vkr_sequence_create");

    double worst = 0;
    for (size_t i = 0; i < n_ns; i++) {
        uint32_t n = ns[i];
        /* NaN-poisoned, so an output the op forgets to write fails the comparison. */
        th_check_status(vkr_fill(th_device(), &yb, 0, yb.size, 0x7fc00000u), "poison y");
        th_check_status(vkr_sequence_begin(seq), "begin");
        th_check_status(ops_matmul(th_ops(), seq, w, vkr_whole(&xb), vkr_whole(&yb), n), "ops_matmul");
        th_check_status(vkr_sequence_end(seq), "end");
        th_check_status(vkr_sequence_run(seq), "run");
        th_download(&yb, got, sizeof *got * n * rows);
        /* The reference's first n columns use the same x as the GPU's first n. */
        double e = th_nmse(ref, got, (size_t)n * rows);
        worst = e > worst ? e : worst;
        char what[160];
        snprintf(what, sizeof what, "%s %ux%u n=%u (tuning %s)", quant_get_traits(type)->name, rows, cols, n,
                 th_ops()->tuning->name);
        th_assert_nmse(what, ref, got, (size_t)n * rows, bound);
    }
    printf("  %-5s %6u x %-6u n up to %-4u (tuning %-10s) worst nmse %.3g\n", quant_get_traits(type)->name, rows,
           cols, max_n, th_ops()->tuning->name, worst);
    vkr_sequence_destroy(seq);
    th_free(&xb);
    th_free(&yb);
    ops_weight_free(th_ops(), w);
    free(data);
    free(x);
    free(ref);
    free(got);
    return worst;
}
