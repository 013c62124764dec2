/* Checks ops_matmul against a CPU reference: random weights quantized to the type with quant_quantize_row,
 * dequantized again with quant_dequantize_row, and a double-precision dot product per output.  The bound
 * follows the path the op takes for each n (ops_matmul_path_of). */
#ifndef VKLLM_TEST_MATMUL_CHECK_H
#define VKLLM_TEST_MATMUL_CHECK_H

#include <stdint.h>

#include "harness.h"

/* Every n in ns for one weight of type at rows x cols under the current tuning; fails above the path's
 * bound.  Returns the largest error measure (see below). */
double th_check_matmul(uint32_t type, uint32_t rows, uint32_t cols, const uint32_t *ns, size_t n_ns);

/* th_check_matmul for each type under `tuning` (made the context's) at odd rows and K not a multiple of 256 where
 * the block allows (n = 1, 5, 8, 9 on the representative types, n = 1 and 9 on the others), and at one row of one
 * block (whose output is one sum: f16 rounding that the multi-row shapes average out shows there, e.g. the old f16
 * dots of Q4_1's uncentred levels; the first and last n); for the representative types also at twice the columns
 * (n = 1), for the lane and row splitting that the block size decides.  Each further shape or n is a further
 * compile on lavapipe, which inlines the push constants that bound a mat-vec's loops (test_ops_matmul runs every
 * type at every shape on the device's own row). */
void th_check_matmul_shapes(const uint32_t *types, size_t n_types, const op_tuning *tuning);
/* The same shapes with other n: fewer n, fewer pipelines to compile (each costs LLVM 0.1-2 s on lavapipe,
 * the mat-vec's per number of columns). */
void th_check_matmul_shapes_n(const uint32_t *types, size_t n_types, const op_tuning *tuning, const uint32_t *ns,
                              size_t n_ns);
/* A copy of row that keeps quantized weights on the float path (matvec_int_dot = 0), named row-float; static
 * storage (it outlives a failed check), one per slot < 4. */
const op_tuning *th_float_path(const op_tuning *row, int slot);
/* On the subgroup-size rerun (th_subgroup_rerun), the tuning rows a check skips: those whose mat-vec uses no
 * subgroup operation on the current device (neither the _sg variants' reductions, the integer path's
 * quantize_q8_sg nor the texel variants' shared loads of x), so its result cannot depend on the size (it prints
 * the row it skips); false on every other run.  The shapes checks above apply it.  _at: for a check whose passes
 * take at most max_cols columns (the shared loads start at 4). */
bool th_rerun_skips_row(const op_tuning *tuning);
bool th_rerun_skips_row_at(const op_tuning *tuning, uint32_t max_cols);
/* On the subgroup-size rerun, the types a sweep leaves out: a type's own code (its dequantization, its integer
 * dot) runs in one lane and cannot depend on the subgroup size, so the rerun keeps one type per block size and
 * path (F16, Q8_0, Q4_0, Q4_K) to exercise the reductions; false on every other run. */
bool th_rerun_skips_type(uint32_t type);
/* One type per block size and weight path (F16, Q8_0, Q4_0, Q4_K): the sweeps run every column count on these and
 * the ends on the others, whose own code (the decoding of a group) does not depend on the column count. */
bool th_representative_type(uint32_t type);

/* Bounds of the squared error against the reference, normalized per output by the larger of ref^2 and
 * (sum_k |w_k x_k|)^2 / cols: rounding errors of a sum follow the size of its terms, so an output that
 * cancels to near zero (one-row shapes) would make a plain nmse measure luck; for outputs of typical size
 * the two are the same.  The reference sees the very weights the GPU decodes, so only the rounding of the
 * products and sums is left. */
#define TH_MATMUL_NMSE_F32 1e-9 /* f32 arithmetic throughout */
#define TH_MATMUL_NMSE_Q8 1e-10 /* the integer path against the reference on x's q8 round trip (th_q8_quantize):
                                   exact integer dot products, f32 scales and sums */
#define TH_MATMUL_NMSE_F16 5e-6 /* x rounded to f16 (2^-11 relative) and 8-term f16 dots: measured <= 1.7e-6
                                  on lavapipe, which rounds every f16 operation (one-row Q4_0); the old
                                  f16 dots of Q4_1's uncentred levels gave 1.1e-5 */

/* The C mirror of ops_quantize_q8 for one column of cols (a multiple of 32) elements: levels[cols] and
 * d[cols / 32], bit for bit.  round(127 x / amax) in double equals the shader's exact integer rounding: 127 x
 * is exact, and a quotient that is not a tie lies at least 2^-33 from one, far beyond double's rounding. */
/* Random weights in [-1, 1] quantized to `type`, row by row: rows * quant_row_size(type, cols) bytes (free()). */
uint8_t *th_random_weights(th_rng *rng, uint32_t type, uint32_t rows, uint32_t cols);
void th_q8_quantize(const float *x, uint32_t cols, int8_t *levels, float *d);
/* x [n][cols] replaced by its q8 round trip d * level (rounded to float: 2^-24 relative), for references of
 * ops that run the integer path. */
void th_q8_round_trip(const float *x, uint32_t n, uint32_t cols, float *out);
/* Fails unless words (rows columns of the device's q8 layout, ops_q8_bytes(rows, cols) bytes) hold exactly what
 * th_q8_quantize makes of each row of out [rows][cols]: levels, scales and level sums. */
void th_check_q8_mirror(const float *out, const uint32_t *words, uint32_t rows, uint32_t cols, const char *what);

#endif
