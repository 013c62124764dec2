/* Per-device tuning, as data: one row per device class, feeding specialization constants.  No vendor
 * branches elsewhere: code asks tuning_for(caps) and uses the numbers. */
#ifndef VKLLM_OPS_TUNING_H
#define VKLLM_OPS_TUNING_H

#include <stdint.h>

#include "runtime/device.h"

typedef enum tuning_class {
    TUNING_CPU = 0,      /* lavapipe/llvmpipe: a workgroup is SIMD lanes on one CPU thread; barriers dear */
    TUNING_NVIDIA,       /* warps of 32 */
    TUNING_AMD_WAVE32,   /* RDNA */
    TUNING_AMD_WAVE64,   /* GCN/CDNA, or RDNA driven at wave64 */
    TUNING_INTEL,        /* subgroups 8..32 */
    TUNING_APPLE,        /* SIMD groups of 32 */
    TUNING_UNKNOWN,
    TUNING_CLASS_COUNT
} tuning_class;

typedef struct op_tuning {
    const char *name;
    uint32_t elementwise_wg;   /* workgroup size of element-wise ops */
    uint32_t row_wg;           /* workgroup size of row reductions (norm, softmax, argmax): one row per group */
    /* Mat-vec (decoding, n <= 8 columns; shaders/matvec.comp): an invocation group of matvec_split
     * invocations owns matvec_rows rows, each taking every split-th weight group and reducing at the end. */
    uint32_t matvec_wg;        /* invocations per workgroup, a multiple of matvec_split */
    uint32_t matvec_rows;      /* rows per invocation group, held in registers with x reused across them */
    uint32_t matvec_split;     /* invocations per row group, power of two (1: no reduction) */
    /* Tiled mat-mul (prompts; shaders/matmul.comp): tile_m x tile_n outputs per workgroup, k steps of
     * tile_k (a multiple of 8); tile_m * tile_n must be a multiple of matmul_wg. */
    uint32_t matmul_wg;
    uint32_t matmul_tile_m, matmul_tile_n, matmul_tile_k;
    /* Flash attention (src/ops/attention.c): */
    uint32_t attn_wg;          /* invocations per (token, head) workgroup; each owns every attn_wg-th key */
    uint32_t attn_block_kv;    /* keys per tile (rounded to a multiple of attn_wg): the running max is
                                  rescaled once per tile */
    uint32_t attn_split_kv;    /* keys per workgroup before a long context is split over workgroups */
    uint32_t attn_split_rows;  /* split only while (token, head) rows x splits stay within this many
                                  workgroups: splitting pays when the rows alone cannot fill the device */
    /* More mat-vec / mat-mul knobs (src/ops/matmul.c): */
    uint32_t matvec_cols;      /* columns of x per mat-vec pass (1..8), bounded by registers */
    uint32_t fp16;             /* 1: use f16 arithmetic where the device has it (packed f16 math) */
    uint32_t matmul_min_n;     /* smallest n for the tiled mat-mul; below, mat-vec blocks of matvec_cols */
    uint32_t texel_loads;      /* 1: the mat-vec reads weights and x through uniform texel buffers where the
                                  device has them (lavapipe gathers texels without a per-lane loop) */
    uint32_t matvec_int_dot;   /* 1: the mat-vec of quantized weights takes the integer path (x quantized to
                                  8-bit blocks first, integer dot products: the device's own where it has
                                  shaderIntegerDotProduct, plain integer arithmetic otherwise); 0: the float
                                  path (weights decoded to floats) */
} op_tuning;

tuning_class tuning_class_of(const vkr_caps *caps);
const op_tuning *tuning_for(const vkr_caps *caps);
/* The row of a class (tests run the GPU rows on lavapipe to exercise their code paths). */
const op_tuning *tuning_row(tuning_class cls);
/* The row named name ("cpu", "nvidia", ...), or NULL. */
const op_tuning *tuning_by_name(const char *name);

#endif
