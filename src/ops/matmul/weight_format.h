/* Per-type GPU layouts of weight matrices (src/ops/matmul/weights.c), as read by shaders/dequant.glsl. */
#ifndef VKLLM_OPS_WEIGHT_FORMAT_H
#define VKLLM_OPS_WEIGHT_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

struct weight_format {
    uint32_t type;          /* quant_type */
    const char *name;       /* shader variant suffix: matvec_<name> */
    uint32_t group;         /* weights per repacked group (8, 32 or 64) */
    uint32_t group_bytes;   /* quant bytes per group, a multiple of 16 (uvec4s) */
    uint32_t aux_span;      /* weights per aux record: one group, or a 256-weight super-block */
    uint32_t aux_bytes;     /* bytes per aux record; 0 for none */
    bool fp16;              /* has _f16 mat-mul variants (f16 holds its dequantized weights to 2^-11) */
    bool f16_dots;          /* has _f16 mat-vec variants: f16 holds its levels exactly and they are centred.
                               The types with a minimum (levels 0..2^b - 1, w = s * level + m) keep f32: an f16
                               dot of uncentred levels, later cancelled against m * sum(x), loses the result's
                               leading bits (and centring them still leaves 5e-5 nmse on one-row shapes). */
    bool q8;                /* has _q8 mat-vec variants (the integer path): integer levels in dequant.glsl */
    /* Repacks one row of cols elements from ggml blocks into groups * group_bytes quant bytes and the
     * row's aux bytes (both zeroed by the caller). */
    void (*repack_row)(const uint8_t *src, uint32_t cols, uint8_t *quants, uint8_t *aux);
};

/* NULL if the type has no GPU layout. */
const struct weight_format *weight_format_of(uint32_t type);

#endif
