/* Weight matrices and their products with activations.
 *
 *   ops_weight *w;
 *   ops_weight_create(ops, QUANT_Q4_0, rows, cols, gguf_bytes, &w);  // repacked and uploaded once
 *   ops_matmul(ops, seq, w, x, y, n);                                 // y[c] = W x[c], c < n
 *
 * The weights arrive as GGUF stores them (row-major, rows of `cols` elements in ggml blocks) and are
 * repacked on the CPU into the layout of shaders/dequant.glsl: quants as aligned uvec4s, scales in their
 * own array.  A matrix larger than maxStorageBufferRange or maxMemoryAllocationSize (or, where the mat-vec reads
 * texels, than maxTexelBufferElements texels) is kept and bound in row chunks, one dispatch each. */
#ifndef VKLLM_OPS_MATMUL_H
#define VKLLM_OPS_MATMUL_H

#include "ops/ops.h"

/* The GPU layout of one weight type (src/ops/matmul/weights.c). */
typedef struct weight_format weight_format;

typedef struct ops_weight {
    uint32_t type;              /* quant_type of the source data */
    uint32_t rows, cols;        /* W is rows x cols */
    uint32_t groups;            /* repacked groups per row (cols rounded up to the group size) */
    uint64_t quant_row_bytes;   /* bytes of a row in `quants` */
    uint64_t aux_row_bytes;     /* bytes of a row in `aux` (0 for float types) */
    /* Rows are kept in chunks of chunk_rows (the last one shorter), each its own allocation and binding, so that
     * none exceeds maxStorageBufferRange, maxMemoryAllocationSize or (texel loads) maxTexelBufferElements; a
     * matrix that fits them all is one chunk. */
    uint32_t chunk_rows;
    uint32_t n_chunks;
    vkr_buffer *quants;         /* [n_chunks]: [chunk's rows][quant_row_bytes] */
    vkr_buffer *aux;            /* [n_chunks]: [chunk's rows][aux_row_bytes], padded to 4 bytes; NULL if none */
    const weight_format *format;
} ops_weight;

/* Validates type and shape (cols a multiple of the type's block size), repacks, uploads, and frees the
 * host copy.  ggml_data holds rows * quant_row_size(type, cols) bytes. */
vkllm_status ops_weight_create(ops_context *ops, uint32_t type, uint32_t rows, uint32_t cols,
                               const void *ggml_data, ops_weight **out);
/* The same from a pointer per row (rows * cols elements in all): stacks rows of several matrices of one type
 * (the fused Q/K/V and gate/up weights, src/ops/matmul/matmul_fused.h) or reorders them. */
vkllm_status ops_weight_create_rows(ops_context *ops, uint32_t type, uint32_t rows, uint32_t cols,
                                    const void *const *row_data, ops_weight **out);
void ops_weight_free(ops_context *ops, ops_weight *w); /* NULL-safe */
/* Bytes the weight occupies on the device (what one mat-vec reads). */
uint64_t ops_weight_bytes(const ops_weight *w);

/* y = x Wᵀ: x F32 [n][cols], y F32 [n][rows].  n <= 8 runs the mat-vec (all columns in one pass over the
 * weights, or blocks of the tuning's matvec_cols), larger n the tiled mat-mul -- except on devices whose
 * tuning row raises matmul_min_n (CPUs), where blocks of mat-vec columns are faster. */
vkllm_status ops_matmul(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x, vkr_range y,
                        uint32_t n);

/* The same into rows y_row0.. of y [n][y_stride] (several matrices writing one stacked output). */
vkllm_status ops_matmul_into(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x, vkr_range y,
                             uint32_t n, uint32_t y_stride, uint32_t y_row0);

/* ops_matmul_into with x also given quantized: x_q8 holds ops_q8_bytes(n, cols) bytes as ops_quantize_q8 writes
 * them (e.g. from the RMSNorm that produced x, ops_rms_norm_f32_q8), or is an empty range.  The integer path
 * reads x_q8 and skips its own quantize_q8 dispatch; every other path reads x. */
vkllm_status ops_matmul_into_xq(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x,
                                vkr_range x_q8, vkr_range y, uint32_t n, uint32_t y_stride, uint32_t y_row0);

/* Largest n handled by the mat-vec whatever the tuning (larger n: the mat-mul from the tuning's matmul_min_n). */
#define OPS_MATVEC_MAX_N 8u
/* Most columns of x one mat-vec dispatch takes (the tuning's matvec_cols; blocks of them cover larger n). */
#define OPS_MATVEC_MAX_COLS 16u

/* Whether the texel-loading mat-vec (matvec_T_tx) under tuning t shares the loads of x among its lanes by subgroup
 * shuffles for dispatches of ncol columns with split invocations per row group (specialization constant
 * X_SHUFFLE). */
bool ops_matvec_shares_x(const ops_context *ops, const op_tuning *t, uint32_t split, uint32_t ncol);

/* How ops_matmul computes n columns of x with w under the context's tuning and device (tests choose their
 * error bounds by it, vkllm bench-ops labels its rows with it). */
typedef enum ops_matmul_path {
    OPS_PATH_F32,    /* weights decoded to f32, f32 arithmetic */
    OPS_PATH_F16,    /* f16 arithmetic: the mat-vec's 8-weight dot products, or the tiled mat-mul's tiles */
    OPS_PATH_Q8,     /* the mat-vec's integer path: x quantized to 8-bit blocks (ops_quantize_q8), integer
                        dot products of weight and x levels in plain integer arithmetic, scales in f32 */
    OPS_PATH_Q8_DOT, /* the same through the device's integer dot product (shaderIntegerDotProduct) */
    OPS_PATH_COOPMAT, /* the mat-mul on cooperative matrices: f16 inputs (weights and x rounded once), f32 sums */
} ops_matmul_path;
ops_matmul_path ops_matmul_path_of(const ops_context *ops, const ops_weight *w, uint32_t n);
/* Does the product of w with n columns read x quantized (OPS_PATH_Q8 or OPS_PATH_Q8_DOT)?  Then the op producing x
 * can quantize it as well (ops_rms_norm_f32_q8) and hand it over (the _xq ops), saving a dispatch.  false for
 * w == NULL. */
bool ops_matmul_reads_q8(const ops_context *ops, const ops_weight *w, uint32_t n);
const char *ops_matmul_path_name(ops_matmul_path path);

/* The subgroup size cooperative-matrix shaders are laid out for (the tuning's coopmat.subgroup where the device
 * can pin it, else its one fixed size) and whether the pipeline must pin it; an error where neither holds. */
vkllm_status ops_coopmat_subgroup(const vkr_caps *caps, const op_coopmat_tuning *t, uint32_t *size, bool *pin);

/* x F32 [n][cols] (cols a multiple of 32) quantized to 8-bit blocks of 32 into out, ops_q8_bytes(n, cols)
 * bytes laid out as shaders/q8.glsl says: per block d = amax * fl(1/127) and levels round(127 x / amax), ties
 * away from zero, exact (no device-dependent division), and the sums of the levels of each half.  The
 * mat-vec's integer path runs it on its input; it is here for tests to compare with their C mirror. */
vkllm_status ops_quantize_q8(ops_context *ops, vkr_sequence *seq, vkr_range x, uint32_t n, uint32_t cols,
                             vkr_range out);
uint64_t ops_q8_bytes(uint32_t n, uint32_t cols);

#endif
