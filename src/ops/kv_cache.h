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
 *   k_cache,    [n_pages][n_kv_heads][page_size][head_dim] of one layer, F32 or F16 (F16: two halves per
 *   v_cache                                              uint, low half first, as packHalf2x16 writes them)
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

/* Shape of one layer's paged cache; the same for every layer of a model. */
typedef struct ops_kv_layout {
    uint32_t n_pages;           /* pages in k_cache (and in v_cache) */
    uint32_t n_kv_heads;
    uint32_t head_dim;          /* multiple of 4, at most 256 */
    uint32_t page_size;         /* positions per page, a power of two */
    uint32_t n_seqs;            /* rows of the page table */
    uint32_t max_pages_per_seq; /* columns of the page table */
    bool f16;                   /* cache elements are F16 (else F32) */
} ops_kv_layout;

/* log2(page_size): the shaders split positions with shifts. */
static inline uint32_t ops_kv_page_shift(const ops_kv_layout *kv)
{
    uint32_t shift = 0;
    while ((kv->page_size >> shift) > 1) shift++;
    return shift;
}

/* Bytes of one layer's K (or V) cache. */
uint64_t ops_kv_cache_bytes(const ops_kv_layout *kv);
/* Checks the layout, that the ranges hold it, and that a layer's cache fits one shader binding
 * (VKLLM_ERROR_UNSUPPORTED if K or V is above maxStorageBufferRange); op names the caller in messages. */
vkllm_status ops_kv_check(const ops_context *ops, const char *op, const ops_kv_layout *kv, vkr_range k_cache,
                          vkr_range v_cache, vkr_range page_table);

/* Writes each token's K and V rows (k_new, v_new [n_tokens][n_kv_heads][head_dim] F32) into the cache at
 * page page_table[seq][pos / page_size], slot pos % page_size; F16 caches round to nearest. */
vkllm_status ops_kv_write(ops_context *ops, vkr_sequence *seq, vkr_range k_new, vkr_range v_new,
                          vkr_range tokens, vkr_range page_table, vkr_range k_cache, vkr_range v_cache,
                          uint32_t n_tokens, const ops_kv_layout *kv);

#endif
