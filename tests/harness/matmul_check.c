#include "matmul_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops/matmul/matmul.h"
#include "ops/matmul/matmul_record.h"
#include "quant/quant.h"

uint8_t *th_random_weights(th_rng *rng, uint32_t type, uint32_t rows, uint32_t cols)
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

void th_q8_quantize(const float *x, uint32_t cols, int8_t *levels, float *d)
{
    for (uint32_t b = 0; b < cols / 32; b++) {
        float amax = 0;
        for (uint32_t k = 32 * b; k < 32 * b + 32; k++) amax = fabsf(x[k]) > amax ? fabsf(x[k]) : amax;
        d[b] = amax * (1.0f / 127.0f);
        for (uint32_t k = 32 * b; k < 32 * b + 32; k++)
            levels[k] = (int8_t)(amax > 0 ? lround(127.0 * x[k] / amax) : 0);
    }
}

void th_q8_round_trip(const float *x, uint32_t n, uint32_t cols, float *out)
{
    int8_t *levels = malloc(cols);
    float *d = malloc(sizeof *d * (cols / 32 + 1));
    assert_true(levels && d && cols % 32 == 0);
    for (uint32_t c = 0; c < n; c++) {
        th_q8_quantize(x + (size_t)c * cols, cols, levels, d);
        for (uint32_t k = 0; k < cols; k++) out[(size_t)c * cols + k] = (float)((double)d[k / 32] * levels[k]);
    }
    free(levels);
    free(d);
}

/* The references of n columns, each [n][rows], in double, W dequantized a row at a time: ref = W x;
 * mag = sum_k |W[r][k] x[c][k]|; where xq (x's q8 round trip, exact in double) is given, ref_q8 = W xq and
 * q8_err = sum_k |W[r][k]| |xq - x| bound, the most x's quantization can move an output. */
typedef struct matmul_refs {
    double *ref, *mag, *ref_q8, *q8_err;
} matmul_refs;

static void reference(uint32_t type, const uint8_t *w, uint32_t rows, uint32_t cols, const float *x,
                      const double *xq, const double *xq_half_step, uint32_t n, matmul_refs *out)
{
    uint64_t row_bytes = quant_row_size(type, cols);
    float *row = malloc(sizeof *row * cols);
    assert_non_null(row);
    for (uint32_t r = 0; r < rows; r++) {
        th_check_status(quant_dequantize_row(type, w + r * row_bytes, row, cols), "quant_dequantize_row");
        for (uint32_t c = 0; c < n; c++) {
            double sum = 0, abs_sum = 0, sum_q8 = 0, err_q8 = 0;
            size_t o = (size_t)c * rows + r;
            for (uint32_t k = 0; k < cols; k++) {
                size_t i = (size_t)c * cols + k;
                double t = (double)row[k] * x[i];
                sum += t;
                abs_sum += fabs(t);
                if (xq) {
                    sum_q8 += (double)row[k] * xq[i];
                    err_q8 += fabs((double)row[k]) * xq_half_step[i];
                }
            }
            out->ref[o] = sum;
            out->mag[o] = abs_sum;
            if (xq) {
                out->ref_q8[o] = sum_q8;
                out->q8_err[o] = err_q8;
            }
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
    uint8_t *data = th_random_weights(&rng, type, rows, cols);
    ops_weight *w;
    th_check_status(ops_weight_create(th_ops(), type, rows, cols, data, &w), "ops_weight_create");
    if (w->chunk_rows < rows) printf("  bound in chunks of %u rows\n", w->chunk_rows);
    /* A matrix the device cannot bind whole must come in chunks that each fit. */
    if ((uint64_t)rows * w->quant_row_bytes > th_ops()->caps->max_storage_buffer_range)
        assert_true(w->chunk_rows < rows &&
                    (uint64_t)w->chunk_rows * w->quant_row_bytes <= th_ops()->caps->max_storage_buffer_range);

    size_t x_n = (size_t)max_n * cols, y_n = (size_t)max_n * rows;
    float *x = malloc(sizeof *x * x_n), *got = malloc(sizeof *got * y_n);
    matmul_refs refs = {malloc(sizeof(double) * y_n), malloc(sizeof(double) * y_n), malloc(sizeof(double) * y_n),
                        malloc(sizeof(double) * y_n)};
    assert_true(x && got && refs.ref && refs.mag && refs.ref_q8 && refs.q8_err);
    th_fill_uniform(&rng, x, x_n, -1.0f, 1.0f);
    /* x's q8 round trip in double, and half a step of each block (plus the rounding of d: see below). */
    double *xq = NULL, *xq_half_step = NULL;
    if (cols % 32 == 0) {
        xq = malloc(sizeof *xq * x_n);
        xq_half_step = malloc(sizeof *xq_half_step * x_n);
        int8_t *levels = malloc(cols);
        float *d = malloc(sizeof *d * (cols / 32));
        assert_true(xq && xq_half_step && levels && d);
        for (uint32_t c = 0; c < max_n; c++) {
            th_q8_quantize(x + (size_t)c * cols, cols, levels, d);
            for (uint32_t k = 0; k < cols; k++) {
                xq[(size_t)c * cols + k] = (double)d[k / 32] * levels[k];
                /* |x - d level| <= amax / 254 + 127 |amax / 127 - d|, d rounded twice (2^-23) */
                xq_half_step[(size_t)c * cols + k] = d[k / 32] * (0.5 + 2e-5);
            }
        }
        free(levels);
        free(d);
    }
    reference(type, data, rows, cols, x, xq, xq_half_step, max_n, &refs);
    const double *ref = refs.ref, *mag = refs.mag;
    vkr_buffer xb = th_upload(x, sizeof *x * x_n), yb = th_alloc(sizeof *got * y_n);
    vkr_sequence *seq;
    th_check_status(vkr_sequence_create(th_device(), &seq), "vkr_sequence_create");

    double worst = 0;
    char paths[64] = "";
    for (size_t i = 0; i < n_ns; i++) {
        uint32_t n = ns[i];
        ops_matmul_path path = ops_matmul_path_of(th_ops(), w, n);
        /* The tiled mat-mul (shaders/matmul.comp) uses no subgroup operation: not again on the subgroup-size rerun. */
        if (th_subgroup_rerun() && !ops_matmul_is_matvec(th_ops(), n) && path != OPS_PATH_COOPMAT) continue;
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
        bool q8 = path == OPS_PATH_Q8 || path == OPS_PATH_Q8_DOT;
        if (q8) assert_non_null(xq);
        double bound = q8 ? TH_MATMUL_NMSE_Q8
                       : path == OPS_PATH_F16 || path == OPS_PATH_COOPMAT ? TH_MATMUL_NMSE_F16 : TH_MATMUL_NMSE_F32;
        const double *want = q8 ? refs.ref_q8 : ref;
        double e = error_measure(want, mag, got, count, cols);
        worst = e > worst ? e : worst;
        if (!(e <= bound)) {
            show_misses(want, got, count);
            fail_msg("%s %ux%u n=%u (tuning %s, path %s): error %.3g above %.3g", quant_get_traits(type)->name, rows,
                     cols, n, th_ops()->tuning->name, path_name, e, bound);
        }
        /* Against the float reference, every output of the integer path lies within what x's quantization can
         * move it (plus f32 rounding). */
        for (size_t o = 0; q8 && o < count; o++)
            if (!(fabs(got[o] - ref[o]) <= refs.q8_err[o] + 1e-6 * mag[o]))
                fail_msg("%s %ux%u n=%u (tuning %s, path %s): output %zu is %.7g, %.3g from the float reference %.7g; "
                         "x's quantization allows %.3g", quant_get_traits(type)->name, rows, cols, n,
                         th_ops()->tuning->name, path_name, o, (double)got[o], fabs(got[o] - ref[o]), ref[o],
                         refs.q8_err[o]);
    }
    printf("  %-5s %6u x %-6u n up to %-4u (tuning %-10s path %-7s) worst error %.3g\n", quant_get_traits(type)->name,
           rows, cols, max_n, th_ops()->tuning->name, paths, worst);
    vkr_sequence_destroy(seq);
    th_free(&xb);
    th_free(&yb);
    ops_weight_free(th_ops(), w);
    free(data);
    free(x);
    free(xq);
    free(xq_half_step);
    free(refs.ref);
    free(refs.mag);
    free(refs.ref_q8);
    free(refs.q8_err);
    free(got);
    return worst;
}

/* Whether the mat-vec under `tuning` uses subgroup operations on the current device in passes of up to max_cols
 * columns: the _sg variants (a row split over lanes, reduced by subgroupAdd or shuffles), the integer path's
 * quantize_q8_sg, or the texel variants' shared loads of x. */
static bool matvec_uses_subgroups(const op_tuning *tuning, uint32_t max_cols)
{
    const vkr_caps *caps = th_ops()->caps;
    bool reduce = tuning->matvec_split > 1 && caps->subgroup_arithmetic && caps->subgroup_shuffle;
    bool shared_x = tuning->texel_loads && caps->texel_rgba32 &&
                    ops_matvec_shares_x(th_ops(), tuning, tuning->matvec_split, max_cols);
    return reduce || shared_x || (tuning->matvec_int_dot && caps->subgroup_shuffle);
}

bool th_rerun_skips_row_at(const op_tuning *tuning, uint32_t max_cols)
{
    if (!th_subgroup_rerun() || matvec_uses_subgroups(tuning, max_cols)) return false;
    printf("  tuning %s here runs no subgroup operations: skipped on the subgroup-size rerun\n", tuning->name);
    return true;
}

bool th_rerun_skips_row(const op_tuning *tuning) { return th_rerun_skips_row_at(tuning, OPS_MATVEC_MAX_COLS); }

/* One type per block size and weight path: F16 (float, any K), Q8_0 and Q4_0 (groups of 32, with and without
 * 4-bit levels), Q4_K (super-blocks of 256). */
bool th_representative_type(uint32_t type)
{
    return type == QUANT_F16 || type == QUANT_Q8_0 || type == QUANT_Q4_0 || type == QUANT_Q4_K;
}

bool th_rerun_skips_type(uint32_t type) { return th_subgroup_rerun() && !th_representative_type(type); }

void th_check_matmul_shapes_n(const uint32_t *types, size_t n_types, const op_tuning *tuning, const uint32_t *ns,
                              size_t n_ns)
{
    th_ops()->tuning = tuning;
    if (th_rerun_skips_row(tuning)) return;
    const uint32_t ends[2] = {ns[0], ns[n_ns - 1]};
    const size_t n_ends = n_ns > 1 ? 2 : 1;
    for (size_t t = 0; t < n_types; t++) {
        if (th_rerun_skips_type(types[t])) continue;
        uint32_t block = quant_get_traits(types[t])->block_elems;
        uint32_t cols = block == 1 ? 97 : block == 32 ? 96 : 256;
        /* Every n on the representative types; the others the first and last n (a type's own code, the decoding
         * of its groups, runs once per group whatever the column count: each column count is a pipeline of its
         * own, compiled cold in CI, so the counts between are not multiplied by every type). */
        if (th_representative_type(types[t])) {
            th_check_matmul(types[t], 37, cols, ns, n_ns);
            th_check_matmul(types[t], 129, 2 * cols, ns, 1);
        } else {
            th_check_matmul(types[t], 37, cols, ends, n_ends);
        }
        th_check_matmul(types[t], 1, block == 1 ? 3 : block, ends, n_ends);
        if (block == 1) th_check_matmul(types[t], 37, 172, ends, n_ends); /* half a group of 8 at each row's end */
    }
}

void th_check_matmul_shapes(const uint32_t *types, size_t n_types, const op_tuning *tuning)
{
    static const uint32_t ns[] = {1, 5, 8, 9};
    th_check_matmul_shapes_n(types, n_types, tuning, ns, 4);
}

const op_tuning *th_float_path(const op_tuning *row, int slot)
{
    static op_tuning copies[4];
    static char names[4][32];
    assert_true(slot >= 0 && slot < 4);
    copies[slot] = *row;
    snprintf(names[slot], sizeof names[slot], "%s-float", row->name);
    copies[slot].name = names[slot];
    copies[slot].matvec_int_dot = 0;
    return &copies[slot];
}

/* The C mirror (th_q8_quantize) of each row of out against the device's words, level by level. */
void th_check_q8_mirror(const float *out, const uint32_t *words, uint32_t rows, uint32_t cols, const char *what)
{
    uint32_t col_words = (uint32_t)(ops_q8_bytes(1, cols) / 4), blocks = cols / 32;
    int8_t *levels = malloc(cols);
    float *d = malloc(sizeof *d * blocks);
    assert_true(levels && d);
    for (uint32_t r = 0; r < rows; r++) {
        th_q8_quantize(out + (size_t)r * cols, cols, levels, d);
        const uint32_t *wr = words + (size_t)r * col_words;
        for (uint32_t b = 0; b < blocks; b++) {
            int sums[2] = {0, 0};
            for (uint32_t k = 0; k < 32; k++) {
                int8_t got = (int8_t)(wr[8 * b + k / 4] >> (8 * (k % 4)));
                if (got != levels[32 * b + k])
                    fail_msg("%s: row %u element %u: level %d, the C mirror %d", what, r, 32 * b + k, got,
                             levels[32 * b + k]);
                sums[k / 16] += got;
            }
            uint32_t d_bits, packed = wr[8 * blocks + 2 * b + 1];
            memcpy(&d_bits, &d[b], 4);
            if (wr[8 * blocks + 2 * b] != d_bits || (int16_t)packed != sums[0] || (int16_t)(packed >> 16) != sums[1])
                fail_msg("%s: row %u block %u: d %08x sums %d %d, want %08x %d %d", what, r, b, wr[8 * blocks + 2 * b],
                         (int16_t)packed, (int16_t)(packed >> 16), d_bits, sums[0], sums[1]);
        }
    }
    free(levels);
    free(d);
}
