/* GGUF tensor types: ggml's block layouts, bit-exact.  CPU dequantizers and round-to-nearest quantizers
 * (bytes equal to llama.cpp's reference quantizers), and per-type size arithmetic. */
#ifndef VKLLM_QUANT_H
#define VKLLM_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* The weight types vkllm runs on the GPU, in one list: X(NAME, ggml type id as stored in GGUF).  The enum below,
 * the GPU formats (src/ops/matmul/weight_repack.c, checked against it at compile time), the tests' lists of every type
 * and the shader variants per type (shaders/variants.cmake reads this list from this file) follow it. */
#define QUANT_FLOAT_TYPES(X) X(F32, 0) X(F16, 1) X(BF16, 30)
#define QUANT_BLOCK_TYPES(X)                                                                                       \
    X(Q8_0, 8) X(Q4_0, 2) X(Q4_1, 3) X(Q5_0, 6) X(Q5_1, 7) X(Q2_K, 10) X(Q3_K, 11) X(Q4_K, 12) X(Q5_K, 13)       \
    X(Q6_K, 14)
#define QUANT_WEIGHT_TYPES(X) QUANT_FLOAT_TYPES(X) QUANT_BLOCK_TYPES(X)
/* Types only the CPU uses: the other operand of the quantized dot products. */
#define QUANT_CPU_ONLY_TYPES(X) X(Q8_1, 9) X(Q8_K, 15)

typedef enum quant_type {
#define QUANT_ENUMERATOR(name, id) QUANT_##name = id,
    QUANT_WEIGHT_TYPES(QUANT_ENUMERATOR) QUANT_CPU_ONLY_TYPES(QUANT_ENUMERATOR)
#undef QUANT_ENUMERATOR
    QUANT_TYPE_LIMIT = 40 /* ids are < this */
} quant_type;

/* The lists as array initializers: static const uint32_t all[] = {QUANT_WEIGHT_TYPE_IDS}; */
#define QUANT_ID_ITEM(name, id) QUANT_##name,
#define QUANT_WEIGHT_TYPE_IDS QUANT_WEIGHT_TYPES(QUANT_ID_ITEM)
#define QUANT_BLOCK_TYPE_IDS QUANT_BLOCK_TYPES(QUANT_ID_ITEM)
#define QUANT_COUNT_ITEM(name, id) +1
enum { QUANT_WEIGHT_TYPE_COUNT = 0 QUANT_WEIGHT_TYPES(QUANT_COUNT_ITEM) };

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
/* As quant_quantize_row, with importance (n floats: llama.cpp's imatrix entry, the mean squared activation
 * of each input column) steering the scale searches as llama-quantize --imatrix does, bytes included.
 * NULL importance, or a type without a weighted search (Q8_0, floats), is plain quant_quantize_row. */
vkllm_status quant_quantize_row_weighted(uint32_t type, const float *src, void *dst, uint64_t n,
                                         const float *importance);
/* True for the types importance changes: Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K. */
bool quant_uses_importance(uint32_t type);

/* IEEE half and bfloat16 conversions (round to nearest even, as ggml). */
uint16_t quant_f32_to_f16(float f);
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);
float quant_bf16_to_f32(uint16_t h);

#endif
