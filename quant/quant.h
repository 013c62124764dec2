/* GGUF tensor types: ggml's block layouts, bit-exact.  CPU dequantizers and round-to-nearest quantizers
 * (bytes equal to llama.cpp's reference quantizers), and per-type size arithmetic. */
#ifndef VKLLM_QUANT_H
#define VKLLM_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* ggml's type ids, as stored in GGUF. */
typedef enum quant_type {
    QUANT_F32 = 0,
    QUANT_F16 = 1,
    QUANT_Q4_0 = 2,
    QUANT_Q4_1 = 3,
    QUANT_Q5_0 = 6,
    QUANT_Q5_1 = 7,
    QUANT_Q8_0 = 8,
    QUANT_Q8_1 = 9,
    QUANT_Q2_K = 10,
    QUANT_Q3_K = 11,
    QUANT_Q4_K = 12,
    QUANT_Q5_K = 13,
    QUANT_Q6_K = 14,
    QUANT_Q8_K = 15,
    QUANT_BF16 = 30,
    QUANT_TYPE_LIMIT = 40 /* ids are < this */
} quant_type;

typedef struct quant_traits {
    const char *name;     /* "Q4_0" as llama.cpp spells it */
    uint32_t block_elems; /* weights per block (1 for F32/F16/BF16) */
    uint32_t block_bytes; /* bytes per block */
    bool supported;       /* vkllm can dequantize it */
} quant_traits;

/* NULL for an id vkllm does not know. */
const quant_traits *quant_get_traits(uint32_t type);
/* "Q4_0" -> QUANT_Q4_0; case-insensitive; false if unknown. */
bool quant_type_from_name(const char *name, quant_type *out);
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size or the type is unknown. */
uint64_t quant_row_size(uint32_t type, uint64_t n);

/* CPU reference: n must be a multiple of the type's block_elems. */
vkllm_status quant_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n);
vkllm_status quant_quantize_row(uint32_t type, const float *src, void *dst, uint64_t n);

/* IEEE half and bfloat16 conversions (round to nearest even, as ggml). */
uint16_t quant_f32_to_f16(float f);
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);
float quant_bf16_to_f32(uint16_t h);

#endif
