/* Per-device tuning, as data: one row per device class, feeding specialization constants.  No vendor
 * branches elsewhere: code asks tuning_for(caps) and uses the numbers.  Overrides are data too:
 * VKLLM_TUNING=<row name> picks a row, VKLLM_TUNE="field=value,..." changes fields of it by name
 * (tuning_resolve, called by ops_create), and benchmarks sweep fields through tuning_set. */
#ifndef VKLLM_OPS_TUNING_H
#define VKLLM_OPS_TUNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/device.h"
#include "runtime/error.h"

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

/* Cooperative-matrix mat-mul (prompts on tensor / matrix cores; shaders/matmul_coopmat.comp): replaces the
 * tiled mat-mul where `on`, the device has cooperative matrices (caps->coopmat) and the weight type an f16 form.
 * The workgroup's subgroups form a subgroups_m x (wg / subgroup / subgroups_m) grid over the tile_m x tile_n
 * tile; each one's share must be whole matrices of the device's size. */
typedef struct op_coopmat_tuning {
    uint32_t on;               /* 1: use where the device has cooperative matrices */
    uint32_t wg;               /* invocations per workgroup, whole subgroups */
    uint32_t tile_m, tile_n;   /* rows of W x columns of x per workgroup */
    uint32_t tile_k;           /* k per step: a multiple of 8 and of the device's K */
    uint32_t subgroups_m;      /* subgroups along the rows; the others go along the columns */
    uint32_t subgroup;         /* subgroup size to pin where size control allows (0: the device's default) */
    uint32_t buffers;          /* shared tile buffers (1 or 2: the next step's loads overlap this step's math) */
} op_coopmat_tuning;

/* Every uint32_t field below needs a line in tuning.c's field table (its name for VKLLM_TUNE and
 * `vkllm bench-ops --set/--sweep`, and its range). */
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
    /* Flash attention (src/ops/flash_attn.c): */
    uint32_t attn_wg;          /* invocations per (token, head) workgroup; each owns every attn_wg-th key */
    uint32_t attn_block_kv;    /* keys per tile (rounded to a multiple of attn_wg): the running max is
                                  rescaled once per tile */
    uint32_t attn_split_kv;    /* keys per workgroup before a long context is split over workgroups */
    uint32_t attn_split_rows;  /* split only while (token, head) rows x splits stay within this many
                                  workgroups: splitting pays when the rows alone cannot fill the device */
    /* More mat-vec / mat-mul knobs (src/ops/matmul/matmul.c): */
    uint32_t matvec_cols;      /* columns of x per mat-vec pass (1..16), bounded by registers */
    uint32_t fp16;             /* 1: use f16 arithmetic where the device has it (packed f16 math) */
    uint32_t matmul_min_n;     /* smallest n for the tiled mat-mul; below, mat-vec blocks of matvec_cols */
    uint32_t texel_loads;      /* 1: the mat-vec reads weights and x, and flash attention K and V, through
                                  uniform texel buffers where the device has them (lavapipe gathers texels
                                  without a per-lane loop) */
    uint32_t matvec_int_dot;   /* 1: the mat-vec of quantized weights takes the integer path (x quantized to
                                  8-bit blocks first, integer dot products: the device's own where it has
                                  shaderIntegerDotProduct, plain integer arithmetic otherwise); 0: the float
                                  path (weights decoded to floats) */
    uint32_t matvec_max_split; /* the mat-vec of a matrix with long rows widens its split (doubling, within the
                                  workgroup) up to this, while a lane would take more than 4 groups of a row:
                                  a lane's steps through a row wait on memory one after the other, so on a GPU
                                  a long row is bound by latency, not bandwidth.  matvec_split: never wider */
    /* Prompt attention on cooperative matrices (shaders/flash_attn_coopmat.comp): a workgroup of attn_cm_wg
     * invocations takes (subgroups x the matrices' M) tokens of one head and reads each tile of attn_cm_keys
     * keys once for all of them; used from attn_cm_min_tokens tokens on where the device has cooperative
     * matrices (the pipeline's subgroup size is coopmat.subgroup's). */
    uint32_t attn_cm_wg;
    uint32_t attn_cm_keys;
    uint32_t attn_cm_min_tokens; /* UINT32_MAX: never */
    /* Flash attention's heads per workgroup: 0 keeps one (token, head) row per workgroup (GPUs: parallelism);
     * n > 0 lets a workgroup take a token's heads in turn while the dispatch keeps at least n workgroups per
     * CPU worker thread (lavapipe, where a workgroup's fixed cost rivals a short row's work). */
    uint32_t attn_wgs_per_worker;
    /* Flash attention's query heads per pass over the keys: heads of one KV head (a GQA group) attended together,
     * each key and value read once for all of them, as many as hold at most this many query values (heads x
     * head_dim: the pass keeps each head's query and accumulator in registers); below 2 x head_dim, one head
     * per pass.  The pass is the largest divisor of the group within this bound; a workgroup takes whole passes. */
    uint32_t attn_gqa_values;
    /* Flash attention's tokens per workgroup where a batch is one sequence's (speculative verification, a prompt):
     * a pass attends them together over the keys they share, each key and value read once for all of them, as many
     * (at most 8) as hold at most this many query values with the GQA pass (tokens x heads per pass x head_dim),
     * the batch spread evenly over workgroups of that many; 0: one token per workgroup.  The pass keeps its queries
     * and accumulators in registers: a bigger bound spills, and lavapipe's LLVM takes minutes to compile a pass of
     * 256 values at 16-wide vectors. */
    uint32_t attn_token_values;
    /* 1: RMSNorm reads and writes rows of whole vec4s (cols % 4 == 0) a vec4 per invocation and step
     * (rms_norm.comp VEC4; lavapipe loops over the lanes once per access, whatever its width); 0: a float. */
    uint32_t norm_vec4;
    op_coopmat_tuning coopmat;
} op_tuning;

tuning_class tuning_class_of(const vkr_caps *caps);
const op_tuning *tuning_for(const vkr_caps *caps);
/* The row of a class (tests run the GPU rows on lavapipe to exercise their code paths). */
const op_tuning *tuning_row(tuning_class cls);
/* The row named `name` (cpu, nvidia, amd-wave32, amd-wave64, intel, apple, unknown; any case), or NULL. */
const op_tuning *tuning_row_named(const char *name);

/* The tuning ops use on a device: the row $VKLLM_TUNING names (else the device's class row), then the
 * overrides of $VKLLM_TUNE ("field=value,field=value").  An unknown row, field or a bad value fails with
 * VKLLM_ERROR_INVALID_ARGUMENT and a message naming it (and what is valid). */
vkllm_status tuning_resolve(const vkr_caps *caps, op_tuning *out);
/* Applies "field=value,field=value" (values: decimal, 0x hex, or `max` for 4294967295; spaces ignored; an
 * empty text changes nothing).  Fields are set left to right; on failure *t may hold the earlier ones. */
vkllm_status tuning_apply(op_tuning *t, const char *overrides);
/* Sets one field by name; fails on an unknown name or a value outside the field's range. */
vkllm_status tuning_set(op_tuning *t, const char *field, uint32_t value);
/* Whether `field` names a field; if so and value is not NULL, *value is its value in *t. */
bool tuning_get(const op_tuning *t, const char *field, uint32_t *value);
/* The name of field i (0, 1, ... in struct order), NULL past the last. */
const char *tuning_field_name(size_t i);

#endif
