/* Inside the mat-mul ops (matmul.c, matmul_fused.c): the mat-vec with a chosen epilogue. */
#ifndef VKLLM_OPS_MATMUL_RECORD_H
#define VKLLM_OPS_MATMUL_RECORD_H

#include <stdbool.h>

#include "matmul.h"

#define MATVEC_STORE_MAX_EXTRA 5u

/* The epilogues of shaders/matvec.comp, in the order of vkr_matvec_variants' last index (shader_families.h). */
typedef enum matvec_epilogue {
    MATVEC_PLAIN,   /* y = W x */
    MATVEC_SWIGLU,  /* _swiglu: stacked gate/up rows */
    MATVEC_QKV_F16, /* _qkv_f16: stacked Q/K/V rows into an F16 KV cache */
    MATVEC_QKV_F32, /* _qkv_f32: the same into an F32 cache */
} matvec_epilogue;

/* How the mat-vec stores its sums. */
typedef struct matvec_store {
    matvec_epilogue epilogue;
    uint32_t y_stride, y_row0; /* y [n][y_stride] from row y_row0; y_stride 0: the weight's rows */
    uint32_t n_extra;          /* bindings after y (binding 3), at most MATVEC_STORE_MAX_EXTRA */
    vkr_range extra[MATVEC_STORE_MAX_EXTRA];
    uint32_t extra_readonly;   /* bit i: extra binding i is only read */
    const void *push_tail;     /* appended to the push constants */
    uint32_t push_tail_bytes;
    vkr_range x_q8;            /* x already quantized (ops_q8_bytes(n, cols) bytes), read by the integer path
                                  instead of quantizing x first; size 0: none */
} matvec_store;

/* Does ops_matmul take the mat-vec for n columns (else the tiled mat-mul)? */
bool ops_matmul_is_matvec(const ops_context *ops, uint32_t n);
/* Can the mat-vec store pairs of rows (an even number of rows per invocation group, and bindings enough)? */
bool ops_matvec_pairs_rows(const ops_context *ops);
/* Records the mat-vec of n columns (any n; blocks of the tuning's columns) with the given store; x and y are
 * checked by the caller. */
vkllm_status ops_matvec_record(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x, vkr_range y,
                               uint32_t n, const matvec_store *store);

#endif
