/* Shared by the quant/ files: per-type block codecs and the rounding helpers that make their bytes equal
 * ggml's.  Callers (quant.c) have already validated sizes and pointers. */
#ifndef VKLLM_QUANT_INTERNAL_H
#define VKLLM_QUANT_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "blocks.h"
#include "quant.h"

/* Byte-exactness needs the same float operations as ggml's reference C, each rounded separately: a fused
 * a*b+c (FMA, with -march=native) changes chosen levels.  GCC in ISO C mode already keeps them apart, but
 * not in GNU mode; both pragmas make this independent of the build flags (checked with -march=native). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Block formats: one block at a time.  `block` is aligned scratch of the type's block struct; quant.c
 * copies it to or from the caller's (possibly unaligned, mmapped) bytes and runs the loop over blocks. */
typedef void (*quant_quantize_block_fn)(const float *x, void *block);
typedef void (*quant_dequantize_block_fn)(const void *block, float *y);
/* Element formats (F32/F16/BF16) convert n elements at once: a call per element would cost more than the
 * conversion.  src/dst may be unaligned. */
typedef void (*quant_quantize_elements_fn)(const float *src, void *dst, uint64_t n);
typedef void (*quant_dequantize_elements_fn)(const void *src, float *dst, uint64_t n);

/* Importance-weighted block formats (ggml's quantize_*_impl with quant_weights): qw holds the block's
 * importance per weight (the imatrix's mean squared activation of the weight's input column).  The legacy
 * types weight by row_sigma2, the mean x^2 of the whole row; the K-quants compute their super-block's. */
typedef void (*quant_quantize_block_weighted_fn)(const float *x, const float *qw, float row_sigma2, void *block);

/* GPTQ (gptq.c) keeps a block's scales and writes its levels: codes 0..nmax as stored (q_legacy.c, q_k.c). */
typedef void (*quant_set_levels_fn)(void *block, const uint8_t *levels);
void quant_q4_0_set_levels(void *block, const uint8_t *levels);
void quant_q4_1_set_levels(void *block, const uint8_t *levels);
void quant_q5_0_set_levels(void *block, const uint8_t *levels);
void quant_q5_1_set_levels(void *block, const uint8_t *levels);
void quant_q8_0_set_levels(void *block, const uint8_t *levels);
void quant_q2_K_set_levels(void *block, const uint8_t *levels);
void quant_q3_K_set_levels(void *block, const uint8_t *levels);
void quant_q4_K_set_levels(void *block, const uint8_t *levels);
void quant_q5_K_set_levels(void *block, const uint8_t *levels);
void quant_q6_K_set_levels(void *block, const uint8_t *levels);

/* half.c */
void quant_f16_quantize(const float *src, void *dst, uint64_t n);
void quant_f16_dequantize(const void *src, float *dst, uint64_t n);
void quant_bf16_quantize(const float *src, void *dst, uint64_t n);
void quant_bf16_dequantize(const void *src, float *dst, uint64_t n);

/* q_legacy.c: x and y hold QUANT_QK_LEGACY floats. */
void quant_q4_0_quantize_block(const float *x, void *block);
void quant_q4_1_quantize_block(const float *x, void *block);
void quant_q5_0_quantize_block(const float *x, void *block);
void quant_q5_1_quantize_block(const float *x, void *block);
void quant_q8_0_quantize_block(const float *x, void *block);
void quant_q8_1_quantize_block(const float *x, void *block);
void quant_q4_0_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q4_1_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q5_0_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q5_1_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q4_0_dequantize_block(const void *block, float *y);
void quant_q4_1_dequantize_block(const void *block, float *y);
void quant_q5_0_dequantize_block(const void *block, float *y);
void quant_q5_1_dequantize_block(const void *block, float *y);
void quant_q8_0_dequantize_block(const void *block, float *y);
void quant_q8_1_dequantize_block(const void *block, float *y);

/* q_k.c: x and y hold QUANT_QK_K floats. */
void quant_q2_K_quantize_block(const float *x, void *block);
void quant_q3_K_quantize_block(const float *x, void *block);
void quant_q4_K_quantize_block(const float *x, void *block);
void quant_q5_K_quantize_block(const float *x, void *block);
void quant_q6_K_quantize_block(const float *x, void *block);
void quant_q8_K_quantize_block(const float *x, void *block);
void quant_q2_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q3_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q4_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q5_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q6_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block);
void quant_q2_K_dequantize_block(const void *block, float *y);
void quant_q3_K_dequantize_block(const void *block, float *y);
void quant_q4_K_dequantize_block(const void *block, float *y);
void quant_q5_K_dequantize_block(const void *block, float *y);
void quant_q6_K_dequantize_block(const void *block, float *y);
void quant_q8_K_dequantize_block(const void *block, float *y);

/* Scale searches (k_search.c), ggml's make_*_quants.  L receives the levels; each returns the (sub-)block's
 * float scale. */
float quant_search_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw); /* make_qx_quants */
float quant_search_symmetric_q3(int n, int nmax, const float *x, int8_t *L); /* Q3_K: make_q3_quants */
float quant_search_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                          float *neg_min, float rmin, float rdelta, int nstep, bool use_mad); /* make_qkx2 */
float quant_search_affine_weighted(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                                   float *neg_min, float rmin, float rdelta, int nstep, bool use_mad); /* qkx3 */
float quant_search_positive(int n, int nmax, const float *x, uint8_t *L, const float *qw); /* make_qp_quants */

/* Round half to even, as ggml's nearest_int (which adds 1.5 * 2^23 and reads the mantissa).  ggml asserts
 * |v| <= 4194303; clamping there (and sending NaN to 0) keeps every input defined without changing any
 * result ggml defines. */
static inline int quant_nearest_int(float v)
{
    const float limit = 4194303.0f;
    if (isnan(v)) return 0;
    if (v < -limit) v = -limit;
    if (v > limit) v = limit;
    float biased = v + 12582912.0f;
    int32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

/* Below this a K-quant (sub-)block counts as all zero (ggml's GROUP_MAX_EPS). */
#define QUANT_GROUP_MAX_EPS 1e-15f

static inline int quant_clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* The element of largest magnitude, with its sign; the first one on ties, as ggml picks it. */
static inline float quant_signed_absmax(int n, const float *x)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

/* C's truncating float-to-int conversion, clamped to [lo, hi] first so that it is always defined (NaN
 * gives lo).  Equals ggml's MIN(hi, (int)v) for every v > lo - 1. */
static inline int quant_truncate_clamped(float v, int lo, int hi)
{
    if (!(v >= (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

#endif
