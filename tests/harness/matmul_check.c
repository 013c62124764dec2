#include "matmul_check.h"

#include <math.h>
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

/* ref[c][r] = sum_k W[r][k] x[c][k] in double, W dequantized a row at a time; mag[c][r] = sum_k |W[r][k] x[c][k]|. */
static void reference(uint32_t type, const uint8_t *w, uint32_t rows, uint32_t cols, const float *x, uint32_t n,
                      double *ref, double *mag)
{
    uint64_t row_bytes = quant_row_size(type, cols);
    float *row = malloc(sizeof *row * cols);
    assert_non_null(row);
    for (uint32_t r = 0; r < rows; r++) {
        th_check_status(quant_dequantize_row(type, w + r * row_bytes, row, cols), "quant_dequantize_row");
        for (uint32_t c = 0; c < n; c++) {
            double sum = 0, abs_sum = 0;
            for (uint32_t k = 0; k < cols; k++) {
                double t = (double)row[k] * x[(size_t)c * cols + k];
                sum += t;
                abs_sum += fabs(t);
            }
            ref[(size_t)c * rows + r] = sum;
            mag[(size_t)c * rows + r] = abs_sum;
        }
    }
    free(row);
}

/* The squared error normalized per output as matmul_check.h says; INFINITY on NaN. */
static double error_measure(const double *ref, const double *mag, const float *got, size_t count, uint32_t cols)
{
    double err = 0, norm = 0;
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(got[i])) return INFINITY;
        double d = ref[i] - got[i], typical = mag[i] * mag[i] / cols;
        err += d * d;
        norm += ref[i] * ref[i] > typical ? ref[i] * ref[i] : typical;
    }
    return norm > 0 ? err / norm : err;
}

static void show_misses(const double *ref, const float *got, size_t count)
{
    for (size_t i = 0, shown = 0; i < count && shown < 8; i++)
        if ((float)ref[i] != got[i]) {
            fprintf(stderr, "  [%zu] ref %.7g got %.7g\n", i, ref[i], (double)got[i]);
            shown++;
        }
}

double th_check_matmul(uint32_t type, uint32_t rows, uint32_t cols, const uint32_t *ns, size_t n_ns)
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
    float *x = malloc(sizeof *x * x_n), *got = malloc(sizeof *got * y_n);
    double *ref = malloc(sizeof *ref * y_n), *mag = malloc(sizeof *mag * y_n);
    assert_true(x && ref && mag && got);
    th_fill_uniform(&rng, x, x_n, -1.0f, 1.0f);
    reference(type, data, rows, cols, x, max_n, ref, mag);
    vkr_buffer xb = th_upload(x, sizeof *x * x_n), yb = th_alloc(sizeof *got * y_n);
    vkr_sequence *seq;
    th_check_status(vkr_sequence_create(th_device(), &seq), "vkr_sequence_create");

    double worst = 0;
    char paths[64] = "";
    for (size_t i = 0; i < n_ns; i++) {
        uint32_t n = ns[i];
        ops_matmul_path path = ops_matmul_path_of(th_ops(), w, n);
        const char *path_name = ops_matmul_path_name(path);
        if (!strstr(paths, path_name) && strlen(paths) + strlen(path_name) + 2 < sizeof paths)
            snprintf(paths + strlen(paths), sizeof paths - strlen(paths), "%s%s", paths[0] ? "," : "", path_name);
        /* NaN-poisoned, so an output the op forgets to write fails the comparison. */
        th_check_status(vkr_fill(th_device(), &yb, 0, yb.size, 0x7fc00000u), "poison y");
        th_check_status(vkr_sequence_begin(seq), "begin");
        th_check_status(ops_matmul(th_ops(), seq, w, vkr_whole(&xb), vkr_whole(&yb), n), "ops_matmul");
        th_check_status(vkr_sequence_end(seq), "end");
        th_check_status(vkr_sequence_run(seq), "run");
        th_download(&yb, got, sizeof *got * n * rows);
        /* The reference's first n columns use the same x as the GPU's first n. */
        size_t count = (size_t)n * rows;
        double bound = path == OPS_PATH_F16 ? TH_MATMUL_NMSE_F16 : TH_MATMUL_NMSE_F32;
        double e = error_measure(ref, mag, got, count, cols);
        worst = e > worst ? e : worst;
        if (!(e <= bound)) {
            show_misses(ref, got, count);
            fail_msg("%s %ux%u n=%u (tuning %s, path %s): error %.3g above %.3g", quant_get_traits(type)->name, rows,
                     cols, n, th_ops()->tuning->name, path_name, e, bound);
        }
    }
    printf("  %-5s %6u x %-6u n up to %-4u (tuning %-10s path %-7s) worst error %.3g\n", quant_get_traits(type)->name,
           rows, cols, max_n, th_ops()->tuning->name, paths, worst);
    vkr_sequence_destroy(seq);
    th_free(&xb);
    th_free(&yb);
    ops_weight_free(th_ops(), w);
    free(data);
    free(x);
    free(ref);
    free(mag);
    free(got);
    return worst;
}
