/* The paged KV cache: its layout, shared by the write (kv_write.c, shaders/kv_write.comp), flash attention
 * (flash_attn.h) and the fused Q/K/V mat-vec (matmul_fused.h), and the write of a batch's K and V rows.
 *
 * A batch holds n_tokens tokens that may belong to several sequences at different positions (decode
 * steps and prompt chunks mixed).  Which sequence and position each token has lives in a device buffer,
 * so a recorded sequence can be replayed as contexts grow: only the buffers change, not the recording.
 *
 * Device buffers (all row-major):
 *   tokens      int32 [n_tokens][2]                      {seq, pos} of each token
 *   page_table  int32 [n_seqs][max_pages_per_seq]        page holding positions [i*page_size, (i+1)*page_size)
 *                                                        of a sequence; entries never looked up may be -1
 *   k_cache,    F32 or F16: [n_pages][n_kv_heads][page_size][head_dim] of one layer (F16: two halves per
 *   v_cache                                              uint, low half first, as packHalf2x16 writes them)
 *               Q8_0 or Q4_0: [n_pages][page_size] records, one per token slot, of its row of n_kv_heads *
 *               head_dim values in ggml's blocks of 32 (so within a head when head_dim is a multiple of 32,
 *               across heads otherwise): the blocks' quants (Q8_0: 32 int8; Q4_0: ggml's 16 bytes of nibbles),
 *               then their f16 scales, two per uint (shaders/kv_blocks.glsl).  34 / 18 bytes per 32 values
 *               against F16's 64, plus 2 bytes per token row when its block count is odd.
 *               K and V may have different types (F32 only with F32).
 *   k_new,      F32 [n_tokens][n_kv_heads][head_dim]     the batch's keys (after RoPE) and values
 *   v_new
 *
 * Out-of-range entries in tokens or page_table (negative, seq >= n_seqs, pos past the page table, page >=
 * n_pages) are skipped on the device rather than read or written out of bounds. */
#ifndef VKLLM_OPS_KV_CACHE_H
#define VKLLM_OPS_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "ops.h"

/* Element type of one side (K or V) of the cache. */
typedef enum ops_kv_type { OPS_KV_F32 = 0, OPS_KV_F16, OPS_KV_Q8_0, OPS_KV_Q4_0 } ops_kv_type;

static inline bool ops_kv_type_quantized(ops_kv_type t) { return t == OPS_KV_Q8_0 || t == OPS_KV_Q4_0; }
/* "f32", "f16", "q8_0", "q4_0": the names in shader variants and messages. */
const char *ops_kv_type_name(ops_kv_type t);

/* Shape of one layer's paged cache; the same for every layer of a model. */
typedef struct ops_kv_layout {
    uint32_t n_pages;           /* pages in k_cache (and in v_cache) */
    uint32_t n_kv_heads;
    uint32_t head_dim;          /* multiple of 4, at most 256 */
    uint32_t page_size;         /* positions per page, a power of two */
    uint32_t n_seqs;            /* rows of the page table */
    uint32_t max_pages_per_seq; /* columns of the page table */
    ops_kv_type k_type, v_type; /* zero: F32 */
    bool rotate_k;              /* quantized K only: keys and queries through a Walsh-Hadamard transform in
                                   segments of gcd(head_dim, 32) before the keys are quantized (kv_blocks.glsl) */
    uint32_t center_pairs;      /* quantized K only: each key is stored minus a mean key at its position in its
                                   center_pairs lowest-frequency RoPE pairs (the store's bias subtracts it before
                                   RoPE), and attention adds it back (ops_attention_shape.k_center); 0: none */
} ops_kv_layout;

/* Both sides F32 or both F16: the head-major layout the fused mat-vec store and kv_write handle. */
static inline bool ops_kv_plain(const ops_kv_layout *kv)
{
    return kv->k_type == kv->v_type && !ops_kv_type_quantized(kv->k_type);
}

/* The segment of the keys' Hadamard rotation (rotate_k): gcd(head_dim, 32), head_dim's lowest set bit up to 32. */
static inline uint32_t ops_kv_rotation_segment(uint32_t head_dim)
{
    uint32_t low = head_dim & (~head_dim + 1u);
    return low < 32 ? low : 32;
}

/* log2(page_size): the shaders split positions with shifts. */
static inline uint32_t ops_kv_page_shift(const ops_kv_layout *kv)
{
    uint32_t shift = 0;
    while ((kv->page_size >> shift) > 1) shift++;
    return shift;
}

/* Bytes of one token's row of one side of this type in one layer (a quantized side: its record). */
uint64_t ops_kv_row_bytes(const ops_kv_layout *kv, ops_kv_type type);
/* Bytes of one layer's cache of one side of this type (kv->k_type for K, kv->v_type for V). */
uint64_t ops_kv_cache_bytes(const ops_kv_layout *kv, ops_kv_type type);
/* Bytes one token position takes in one layer's K and V caches together. */
uint64_t ops_kv_bytes_per_token(const ops_kv_layout *kv);
/* Checks the layout, that the ranges hold it, and that a layer's cache fits one shader binding
 * (VKLLM_ERROR_UNSUPPORTED if K or V is above maxStorageBufferRange); a quantized side needs a token row
 * (n_kv_heads * head_dim) that is a multiple of 32, and F32 goes with F32 only; op names the caller. */
vkllm_status ops_kv_check(const ops_context *ops, const char *op, const ops_kv_layout *kv, vkr_range k_cache,
                          vkr_range v_cache, vkr_range page_table);

/* Writes each token's K and V rows (k_new, v_new [n_tokens][n_kv_heads][head_dim] F32) into the cache at
 * page page_table[seq][pos / page_size], slot pos % page_size; F16 caches round to nearest.  F32 and F16
 * caches only: quantized ones are written by the Q/K/V store (matmul_fused.h), VKLLM_ERROR_UNSUPPORTED here. */
vkllm_status ops_kv_write(ops_context *ops, vkr_sequence *seq, vkr_range k_new, vkr_range v_new,
                          vkr_range tokens, vkr_range page_table, vkr_range k_cache, vkr_range v_cache,
                          uint32_t n_tokens, const ops_kv_layout *kv);

#endif
