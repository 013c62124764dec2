/* Checks ops_matmul against a CPU reference: random weights quantized to the type with quant_quantize_row,
 * dequantized again with quant_dequantize_row, and a double-precision dot product per output. */
#ifndef VKLLM_TEST_MATMUL_CHECK_H
#define VKLLM_TEST_MATMUL_CHECK_H

#include <stdint.h>

#include "harness.h"

/* Every n in ns for one weight of type at rows x cols; fails above bound.  Returns the largest NMSE. */
double th_check_matmul(uint32_t type, uint32_t rows, uint32_t cols, const uint32_t *ns, size_t n_ns, double bound);

/* Bounds of the normalized squared error against the reference, by arithmetic: the reference sees the
 * very weights the GPU decodes, so only the rounding of the products and sums is left. */
#define TH_MATMUL_NMSE_F32 1e-9  /* f32 arithmetic throughout */
#define TH_MATMUL_NMSE_F16 1e-5  /* x rounded to f16 (2^-11 relative) and 8-term f16 dots (measured <= 1.4e-6) */

#endif
