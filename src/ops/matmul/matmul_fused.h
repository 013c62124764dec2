/* Mat-vecs that finish the job themselves, saving the dispatches (~40 us each on lavapipe) of the small ops
 * that would follow them:
 *
 *   ops_qkv_project:    x -> Q/K/V, + bias, RoPE on Q and K, Q to a buffer, K and V into the paged cache;
 *   ops_swiglu_project: x -> gate/up -> silu(gate) * up.
 *
 * Both read stacked weights (ops_weight_create_rows): Q rows, then K, then V; gate and up rows alternating.
 * Where the mat-vec cannot store pairs of rows (the tiled mat-mul of a large batch on a GPU, an odd
 * rows-per-invocation tuning) the product goes to a scratch buffer and one more pass does the rest; the
 * results are the same.  So does a cache with a quantized K or V side: that pass quantizes the rows into ggml's
 * 32-value blocks as it stores them (no separate quantize pass, no full-precision copy in the cache). */
#ifndef VKLLM_OPS_MATMUL_FUSED_H
#define VKLLM_OPS_MATMUL_FUSED_H

#include "ops/kv_cache.h"
#include "matmul.h"

typedef struct ops_qkv {
    const ops_weight *stacked;   /* [q_rows + 2 kv_rows] x cols: Q, K, V rows; NULL when the types differ: */
    const ops_weight *q, *k, *v; /* then the three matrices, each multiplied into the scratch */
    vkr_range bias;              /* F32 [q_rows + 2 kv_rows] (stacked like the rows), or size 0: none */
    uint32_t n_head, n_head_kv, head_dim;
    uint32_t n_rot;              /* rotated dims per head, even; Q/K rows in RoPE's normal layout (pairs
                                    2i, 2i+1): NeoX weights are permuted by ops_rope_neox_source_row */
    float freq_base, freq_scale;
} ops_qkv;

typedef struct ops_qkv_dest {
    vkr_range q;                 /* F32 [n][n_head * head_dim]: rotated Q */
    vkr_range tokens;            /* int32 {seq, pos} per token: the cache slot and the RoPE position */
    vkr_range page_table, k_cache, v_cache;
    const ops_kv_layout *kv;
    vkr_range scratch;           /* F32 [n][q_rows + 2 kv_rows]; used only when the mat-vec cannot store */
} ops_qkv_dest;

vkllm_status ops_qkv_project(ops_context *ops, vkr_sequence *seq, const ops_qkv *qkv, vkr_range x, uint32_t n,
                             const ops_qkv_dest *dst);
/* The same with x also given quantized (x_q8: see ops_matmul_into_xq; an empty range: none). */
vkllm_status ops_qkv_project_xq(ops_context *ops, vkr_sequence *seq, const ops_qkv *qkv, vkr_range x,
                                vkr_range x_q8, uint32_t n, const ops_qkv_dest *dst);

/* act [n][rows / 2] = silu(gate) * up for gate_up [rows] x cols (gate row i at 2i, up row i at 2i + 1);
 * scratch F32 [n][rows], used only when the mat-vec cannot store. */
vkllm_status ops_swiglu_project(ops_context *ops, vkr_sequence *seq, const ops_weight *gate_up, vkr_range x,
                                vkr_range act, uint32_t n, vkr_range scratch);
vkllm_status ops_swiglu_project_xq(ops_context *ops, vkr_sequence *seq, const ops_weight *gate_up, vkr_range x,
                                   vkr_range x_q8, vkr_range act, uint32_t n, vkr_range scratch);

/* Row r of a head (r < head_dim) in RoPE's normal layout comes from this row of the NeoX layout: pairs
 * (i, i + n_rot/2) become (2i, 2i + 1); rows from n_rot on stay. */
uint32_t ops_rope_neox_source_row(uint32_t r, uint32_t n_rot);

#endif
