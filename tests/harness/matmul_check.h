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

/* Bounds of the squared error against the reference, normalized per output by the larger of ref^2 and
 * (sum_k |w_k x_k|)^2 / cols: rounding errors of a sum follow the size of its terms, so an output that
 * cancels to near zero (one-row shapes) would make a plain nmse measure luck; for outputs of typical size
 * the two are the same.  The reference sees the very weights the GPU decodes, so only the rounding of the
 * products and sums is left. */
#define TH_MATMUL_NMSE_F32 1e-9 /* f32 arithmetic throughout */
#define TH_MATMUL_NMSE_F16 5e-6 /* x rounded to f16 (2^-11 relative) and 8-term f16 dots: measured <= 1.7e-6
                                  on lavapipe, which rounds every f16 operation (one-row Q4_0); the old
                                  f16 dots of Q4_1's uncentred levels gave 1.1e-5 */

#endif
