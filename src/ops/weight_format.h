/* Per-type GPU layouts of weight matrices (src/ops/weights.c), as read by shaders/dequant.glsl. */
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
    bool fp16;              /* has _f16 variants (f16 holds its levels exactly) */
    /* Repacks one row of cols elements from ggml blocks into groups * group_bytes quant bytes and the
     * row's aux bytes (both zeroed by the caller). */
    void (*repack_row)(const uint8_t *src, uint32_t cols, uint8_t *quants, uint8_t *aux);
};

/* NULL if the type has no GPU layout. */
const struct weight_format *weight_format_of(uint32_t type);

#endif
