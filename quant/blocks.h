/* ggml's block layouts, byte for byte.  GPU shaders mirror these structs, so every size and field offset
 * is pinned by a static assert.  Halves are stored as raw IEEE binary16 bits (uint16_t), little-endian
 * as in the GGUF file.
 *
 * Legacy types quantize blocks of 32 weights with one scale (and for *_1 one min).  K-quants use
 * super-blocks of 256 weights split into 16 or 8 sub-blocks, whose scales are themselves quantized
 * against the super-block's half-precision d (and dmin). */
#ifndef VKLLM_QUANT_BLOCKS_H
#define VKLLM_QUANT_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#define QUANT_QK_LEGACY 32 /* weights per block of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 */
#define QUANT_QK_K 256     /* weights per K-quant super-block */
#define QUANT_K_SCALE_SIZE 12

/* Q4_0: w = d * (q - 8), q in [0, 15].  qs[j] holds weight j (low nibble) and weight j+16 (high). */
typedef struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QUANT_QK_LEGACY / 2];
} block_q4_0; /* 18 bytes */

/* Q4_1: w = d * q + m, q in [0, 15]; nibble order as Q4_0. */
typedef struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QUANT_QK_LEGACY / 2];
} block_q4_1; /* 20 bytes */

/* Q5_0: w = d * (q - 16), q in [0, 31].  Low nibbles as Q4_0; bit j of the little-endian uint32 in qh is
 * bit 4 of weight j. */
typedef struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QUANT_QK_LEGACY / 2];
} block_q5_0; /* 22 bytes */

/* Q5_1: w = d * q + m, q in [0, 31]; bit layout as Q5_0. */
typedef struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QUANT_QK_LEGACY / 2];
} block_q5_1; /* 24 bytes */

/* Q8_0: w = d * q. */
typedef struct block_q8_0 {
    uint16_t d;
    int8_t qs[QUANT_QK_LEGACY];
} block_q8_0; /* 34 bytes */

/* Q8_1: w = d * q; s = d * sum(q), used by dot products against Q4_1/Q5_1. */
typedef struct block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[QUANT_QK_LEGACY];
} block_q8_1; /* 36 bytes */

/* Q2_K: 16 sub-blocks of 16.  scales[i] = scale (low nibble) | min (high nibble) of sub-block i;
 * w = d * scale * q - dmin * min, q in [0, 3].  qs: for each 128-weight half, byte l of its 32 bytes
 * holds weights l, l+32, l+64, l+96 in bit pairs 0-1, 2-3, 4-5, 6-7. */
typedef struct block_q2_K {
    uint8_t scales[QUANT_QK_K / 16];
    uint8_t qs[QUANT_QK_K / 4];
    uint16_t d;
    uint16_t dmin;
} block_q2_K; /* 84 bytes */

/* Q3_K: 16 sub-blocks of 16, w = d * (scale - 32) * (q - 4), q in [0, 7].  Low 2 bits of q packed as
 * Q2_K; bit 2 of weight j sits in hmask[j % 32], bit j / 32.  The 16 6-bit scales: low nibbles in
 * scales[0..7] (sub-block i and i+8 share byte i), high 2-bit pairs in scales[8..11]. */
typedef struct block_q3_K {
    uint8_t hmask[QUANT_QK_K / 8];
    uint8_t qs[QUANT_QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
} block_q3_K; /* 110 bytes */

/* Q4_K: 8 sub-blocks of 32, w = d * scale * q - dmin * min, q in [0, 15].  8 6-bit scales and 8 6-bit
 * mins packed into 12 bytes (see get_scale_min in q_k.c).  qs: each 64-weight chunk is 32 bytes, low
 * nibbles the first 32 weights, high nibbles the next 32. */
typedef struct block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[QUANT_K_SCALE_SIZE];
    uint8_t qs[QUANT_QK_K / 2];
} block_q4_K; /* 144 bytes */

/* Q5_K: Q4_K plus a fifth bit: bit 2c of qh[l] is bit 4 of weight 64c + l, bit 2c+1 of weight
 * 64c + 32 + l. */
typedef struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[QUANT_K_SCALE_SIZE];
    uint8_t qh[QUANT_QK_K / 8];
    uint8_t qs[QUANT_QK_K / 2];
} block_q5_K; /* 176 bytes */

/* Q6_K: 16 sub-blocks of 16, w = d * scale * (q - 32), q in [0, 63], scale int8.  Per 128-weight half:
 * ql is 64 bytes (low nibbles of weights l and l+64 in byte l, of l+32 and l+96 in byte l+32), qh is 32
 * bytes (bits 4-5 of weights l, l+32, l+64, l+96 in bit pairs of byte l). */
typedef struct block_q6_K {
    uint8_t ql[QUANT_QK_K / 2];
    uint8_t qh[QUANT_QK_K / 4];
    int8_t scales[QUANT_QK_K / 16];
    uint16_t d;
} block_q6_K; /* 210 bytes */

/* Q8_K: intermediate type for K-quant dot products (not found in model files).  w = d * q;
 * bsums[i] = sum of q over weights 16i..16i+15. */
typedef struct block_q8_K {
    float d;
    int8_t qs[QUANT_QK_K];
    int16_t bsums[QUANT_QK_K / 16];
} block_q8_K; /* 292 bytes */

_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must match ggml");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must match ggml");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 must match ggml");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 must match ggml");
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must match ggml");
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1 must match ggml");
_Static_assert(sizeof(block_q2_K) == 84, "block_q2_K must match ggml");
_Static_assert(sizeof(block_q3_K) == 110, "block_q3_K must match ggml");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K must match ggml");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K must match ggml");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K must match ggml");
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K must match ggml");

_Static_assert(offsetof(block_q5_0, qs) == 6, "block_q5_0 layout");
_Static_assert(offsetof(block_q5_1, qs) == 8, "block_q5_1 layout");
_Static_assert(offsetof(block_q2_K, d) == 80, "block_q2_K layout");
_Static_assert(offsetof(block_q3_K, scales) == 96 && offsetof(block_q3_K, d) == 108, "block_q3_K layout");
_Static_assert(offsetof(block_q4_K, qs) == 16, "block_q4_K layout");
_Static_assert(offsetof(block_q5_K, qh) == 16 && offsetof(block_q5_K, qs) == 48, "block_q5_K layout");
_Static_assert(offsetof(block_q6_K, scales) == 192 && offsetof(block_q6_K, d) == 208, "block_q6_K layout");
_Static_assert(offsetof(block_q8_K, bsums) == 260, "block_q8_K layout");

#endif
