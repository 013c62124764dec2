/* Ops: the compute kernels of a forward pass, recorded into a vkr_sequence.  Each op checks its shapes,
 * picks its pipeline (shader variant + specialization constants from the tuning table) and records one or
 * a few dispatches.  Tensors are vkr_ranges of row-major data; shapes are passed explicitly.  Every op has
 * a plain-C reference in tests/ and is checked against it by a test_ops_*.c under tests/ops/. */
#ifndef VKLLM_OPS_H
#define VKLLM_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/commands.h"
#include "shader_names.h" /* generated: SHADER(name), a variant name checked at compile time */
#include "tuning/tuning.h"

typedef struct ops_context {
    vkr_device *dev;
    const vkr_caps *caps;
    const op_tuning *tuning; /* what ops read: &resolved, unless a test or benchmark points it elsewhere */
    op_tuning resolved;      /* the device's row, or $VKLLM_TUNING's, with $VKLLM_TUNE applied */
    uint32_t cpu_workers;    /* threads a CPU device computes on (vkr_device_cpu_workers), 0 on a GPU; what the
                                tuning's per-worker counts multiply (a test may change it) */
    /* Scratch that ops use between their own dispatches (the mat-vec's quantized x), see ops_scratch. */
    vkr_buffer scratch;
    vkr_buffer *retired; /* scratch buffers outgrown: sequences recorded before still bind them */
    uint32_t n_retired;
} ops_context;

/* Fails (VKLLM_ERROR_INVALID_ARGUMENT, nothing created) when $VKLLM_TUNING or $VKLLM_TUNE is bad. */
vkllm_status ops_create(vkr_device *dev, ops_context **out);
void ops_free(ops_context *ops);

/* At least `bytes` of the context's scratch, grown on demand (the buffers it outgrows live until ops_free).
 * One scratch serves every sequence recorded through the context: barriers order its uses inside a
 * sequence, so sequences of one context must not run at the same time (vkr_sequence_run waits for each). */
vkllm_status ops_scratch(ops_context *ops, uint64_t bytes, vkr_range *out);

/* Looks up (creating once) the pipeline of a shader variant; id 0 of spec is local_size_x. */
vkllm_status ops_pipeline(ops_context *ops, const char *shader, uint32_t n_bindings, uint32_t readonly_mask,
                          uint32_t push_size, const uint32_t *spec, uint32_t n_spec, const vkr_pipeline **out);

/* Whether a workgroup of wg invocations is one subgroup whatever subgroup size the device picks for a pipeline. */
bool ops_one_subgroup(const ops_context *ops, uint32_t wg);

/* ops_pipeline for a shader that gives a row to a workgroup of wg invocations and reduces it through reduce.glsl:
 * constant 1 says whether the workgroup is one subgroup, so its subgroup variants lose the shared-memory step. */
vkllm_status ops_row_pipeline(ops_context *ops, const char *shader, uint32_t n_bindings, uint32_t readonly_mask,
                              uint32_t push_size, uint32_t wg, const vkr_pipeline **out);

/* Element-wise, F32.  out[i] = a[i] (+|*) b[i % b_len]; b_len divides n (b_len == n: same shape; b_len ==
 * row length: a row broadcast, e.g. a bias).  out may alias a. */
typedef enum ops_binary { OPS_ADD, OPS_MUL } ops_binary;
vkllm_status ops_binary_f32(ops_context *ops, vkr_sequence *seq, ops_binary op, vkr_range a, vkr_range b,
                            vkr_range out, uint32_t n, uint32_t b_len);
/* out[i] = a[i] * scale */
vkllm_status ops_scale_f32(ops_context *ops, vkr_sequence *seq, vkr_range a, vkr_range out, uint32_t n,
                           float scale);

/* ---- Row reductions: one row per workgroup (src/ops/rms_norm.c, softmax.c, argmax.c).  Each invocation walks
 * ceil(cols / row_wg) columns of its row, which must stay <= 65,535 (lavapipe cuts longer loops). ---- */

/* RMSNorm fused with its weight.  x, out [rows][cols] F32; w [cols] F32.
 * out[r][c] = x[r][c] / sqrt(mean_c(x[r][c]^2) + eps) * w[c]. */
vkllm_status ops_rms_norm_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range w, vkr_range out,
                              uint32_t rows, uint32_t cols, float eps);
/* The residual add and the norm after it in one pass: x[r][c] += add[r][c] (x updated in place), then out as
 * above from the sum.  add [rows][cols] F32 must not alias x or out. */
vkllm_status ops_add_rms_norm_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range add, vkr_range w,
                                  vkr_range out, uint32_t rows, uint32_t cols, float eps);
/* Either norm also writing out as the mat-vec's integer path reads x (matmul.h: ops_quantize_q8, ops_matmul_xq):
 * out_q8 [ops_q8_bytes(rows, cols)] (cols a multiple of 32), bit for bit what ops_quantize_q8 makes of out, in the
 * same dispatch where the tuning's row_wg is a multiple of 8 (else in a quantize_q8 dispatch after it).  out is
 * the same bits as the plain op's. */
vkllm_status ops_rms_norm_f32_q8(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range w, vkr_range out,
                                 vkr_range out_q8, uint32_t rows, uint32_t cols, float eps);
vkllm_status ops_add_rms_norm_f32_q8(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range add, vkr_range w,
                                     vkr_range out, vkr_range out_q8, uint32_t rows, uint32_t cols, float eps);

/* Softmax of each row of x * scale.  x, out [rows][cols] F32.  causal: row r sees the columns
 * c <= r + pos_offset and the others give 0 (pos_offset: the position of row 0 among the keys). */
vkllm_status ops_softmax_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range out, uint32_t rows,
                             uint32_t cols, float scale, bool causal, uint32_t pos_offset);

/* Greedy sampling: out[r] = the index of the largest x[r][c], the first on ties.  x [rows][cols] F32 without
 * NaN; out [rows] int32. */
vkllm_status ops_argmax_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range out, uint32_t rows,
                            uint32_t cols);

/* ---- Rotary position embedding (src/ops/rope.c) ---- */
typedef enum ops_rope_mode {
    OPS_ROPE_NORMAL = 0, /* llama.cpp mode 0: rotates (x[2i], x[2i+1]) (LLaMA, Mistral) */
    OPS_ROPE_NEOX = 2,   /* llama.cpp mode 2: rotates (x[i], x[i + n_rot/2]) (NeoX, Qwen, Phi) */
} ops_rope_mode;

typedef struct ops_rope_params {
    ops_rope_mode mode;
    uint32_t n_rot;   /* dims rotated, even, <= head_dim; dims from n_rot on are copied */
    float freq_base;  /* theta_i = pos * freq_scale * freq_base^(-2i/n_rot) */
    float freq_scale; /* linear scaling: 1, or 1/factor for linearly stretched contexts */
} ops_rope_params;

/* x, out [n_tokens][n_heads][head_dim] F32, head_dim even; pos [n_tokens] int32 (any positions: offsets,
 * several sequences).  The angle pos * base^(-2i/n_rot) * freq_scale is computed in float (one pow, no
 * accumulation over i) and reduced to [-pi, pi] exactly before sin/cos, so its error is that of theta's
 * float rounding and pow: about 1e-7 * pos rad (measured on lavapipe: 9.6e-5 rad below position 1,024,
 * 3.1e-3 rad below 32,768). */
vkllm_status ops_rope_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range pos, vkr_range out,
                          uint32_t n_tokens, uint32_t n_heads, uint32_t head_dim, const ops_rope_params *params);

/* ---- Activations, element-wise F32 (src/ops/activation.c) ---- */
/* gate, up, out [n]: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). */
vkllm_status ops_swiglu_f32(ops_context *ops, vkr_sequence *seq, vkr_range gate, vkr_range up, vkr_range out,
                            uint32_t n);
/* x, out [n]: GELU, ggml's tanh approximation 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))). */
vkllm_status ops_gelu_f32(ops_context *ops, vkr_sequence *seq, vkr_range x, vkr_range out, uint32_t n);

/* ---- Embedding gather (src/ops/get_rows.c) ---- */
/* out[i][c] = table[ids[i]][c].  table [n_rows][row_len] of type QUANT_F32 or QUANT_F16 (F16: halves packed
 * two per 32-bit word, the range holding whole words: n_rows*row_len rounded up to even, offset a multiple
 * of 4); ids [n_ids] int32; out [n_ids][row_len] F32.  The table may exceed maxStorageBufferRange: it is
 * bound a chunk of rows at a time, one dispatch per chunk.  The ids live on the device, so an id outside
 * [0, n_rows) cannot be reported: its output row is zeros. */
vkllm_status ops_get_rows(ops_context *ops, vkr_sequence *seq, uint32_t table_type, vkr_range table, vkr_range ids,
                          vkr_range out, uint32_t n_rows, uint32_t row_len, uint32_t n_ids);

/* ---- F32 <-> F16 (src/ops/convert.c) ---- */
/* n elements; F16 as halves packed two per 32-bit word: its range holds ceil(n/2) words, and with an odd n
 * the upper half of the last word is written 0 / ignored.  Round to nearest even, bit-identical to
 * quant_f32_to_f16 / quant_f16_to_f32 (subnormals, infinities and NaN included). */
vkllm_status ops_f32_to_f16(ops_context *ops, vkr_sequence *seq, vkr_range src, vkr_range dst, uint32_t n);
vkllm_status ops_f16_to_f32(ops_context *ops, vkr_sequence *seq, vkr_range src, vkr_range dst, uint32_t n);

#endif
