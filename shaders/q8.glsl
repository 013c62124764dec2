// The layout of x quantized to 8-bit blocks of 32 (written by quantize_q8.comp, read by matvec.comp INT_DOT;
// src/ops/matmul/matmul.c sizes it the same way): per column of cols elements, 8 words of levels per block, then a
// pair of words (d, level sums) per block, the column padded to whole uvec4s.
#ifndef VKLLM_Q8_GLSL
#define VKLLM_Q8_GLSL

#define Q8_LEVEL_WORDS(cols) (8u * ((cols) / 32u))
#define Q8_COL_WORDS(cols) ((10u * ((cols) / 32u) + 3u) & ~3u)
// fl(1/127) as C's 1.0f / 127.0f rounds it (not left to the compiler's constant folding).
#define Q8_INV_127 uintBitsToFloat(0x3c010204u)

#endif
