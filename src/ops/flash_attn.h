/* Flash attention over the paged KV cache (kv_cache.h has its layout and buffers).
 *
 * Device buffers (all row-major), beside the cache's tokens, page_table, k_cache and v_cache:
 *   q           F32 [n_tokens][n_heads][head_dim]        queries after RoPE
 *   out         F32 [n_tokens][n_heads][head_dim]
 *
 * A token whose tokens or page_table entries are out of range (see kv_cache.h) gets a zero output, and the
 * key positions behind a bad page entry are left out. */
#ifndef VKLLM_OPS_FLASH_ATTN_H
#define VKLLM_OPS_FLASH_ATTN_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_cache.h"
#include "ops.h"

typedef struct ops_attention_shape {
    uint32_t n_tokens;
    uint32_t n_heads;           /* query heads, a multiple of kv.n_kv_heads (GQA: head h reads kv head
                                   h / (n_heads / n_kv_heads)) */
    uint32_t max_context;       /* bound on pos + 1 of every token whenever the recording runs: it fixes
                                   the split of long contexts over workgroups; keys past it are ignored */
    float scale;                /* applied to q.k, usually 1 / sqrt(head_dim) */
    ops_kv_layout kv;
    uint32_t split_tokens;      /* tokens the split of the keys is planned for; 0: n_tokens.  1 gives every row
                                   the split a one-token pass would have at this max_context, so a row's result
                                   does not depend on how many tokens share the pass (verification passes) */
    bool one_sequence;          /* every token is of one sequence (a verification pass, a prompt): lets a workgroup
                                   attend several of them in one pass over their keys (the tuning's
                                   attn_token_values).  A hint: a batch of several sequences is still right. */
    /* With kv.center_pairs: the mean key the store subtracted, [n_kv_heads][center_pairs] (x, y) floats, before
     * RoPE, of RoPE pairs n_rot / 2 - center_pairs .. n_rot / 2 - 1 of each head; and RoPE's parameters, which
     * rotate it to each key's position (the key's cache position: not for tree passes, which have no quantized
     * cache). */
    vkr_range k_center;
    uint32_t n_rot;
    float freq_base, freq_scale;
} ops_attention_shape;

/* Bytes of scratch ops_flash_attention needs at this shape (0 when it does not split the keys).  It may
 * vary with n_tokens either way: size it for every shape that will be recorded with it. */
uint64_t ops_attention_scratch_bytes(const ops_context *ops, const ops_attention_shape *shape);
/* Workgroups each (token, head) row's keys are split over at this shape (1: no split, no combine pass). */
uint32_t ops_attention_splits(const ops_context *ops, const ops_attention_shape *shape);
/* Heads one workgroup takes in turn at this shape (the tuning's attn_wgs_per_worker and ops->cpu_workers): 1 on
 * GPUs; a row's bits are the same for any count (flash_attn.comp). */
uint32_t ops_attention_heads_per_workgroup(const ops_context *ops, const ops_attention_shape *shape);
/* Query heads of one KV head attended in one pass over the keys at this shape (the tuning's attn_gqa_values; 1 on
 * GPUs): each key and value read once for them; a row's bits are the same for any count. */
uint32_t ops_attention_gqa_pass(const ops_context *ops, const ops_attention_shape *shape);
/* Tokens one workgroup takes at this shape (the tuning's attn_token_values with one_sequence; 1 on GPUs), those of
 * one sequence attended in one pass over the keys; a row's bits are the same for any count. */
uint32_t ops_attention_token_pass(const ops_context *ops, const ops_attention_shape *shape);

/* Does ops_flash_attention take the prompt attention on cooperative matrices (flash_attn_coopmat.comp, no
 * scratch, no split) at this shape on this device and tuning? */
bool ops_attention_uses_coopmat(const ops_context *ops, const ops_attention_shape *shape);

/* Does flash_attn.comp read q and these cache ranges through uniform texel buffers (its _tx variants: the tuning's
 * texel_loads, the device's texel formats, limits and subgroup arithmetic), rather than as storage buffers? */
bool ops_attention_reads_texels(const ops_context *ops, const ops_kv_layout *kv, vkr_range q, vkr_range k_cache,
                                vkr_range v_cache);

/* Causal attention of each token t (sequence s, position p) and head h over the keys at positions 0..p of
 * sequence s (the batch's own keys must have been written to the cache first, by ops_kv_write):
 *   out[t][h] = sum_j softmax_j(scale * q[t][h] . K_s[j][kvh]) V_s[j][kvh],  kvh = h / (n_heads / n_kv_heads)
 * Online softmax over tiles of keys, accumulated in F32.  Long contexts are split over workgroups that
 * write partial (max, sum, accumulator) to scratch, merged by a second dispatch; scratch may be an empty
 * range when ops_attention_scratch_bytes is 0.  Fails with VKLLM_ERROR_UNSUPPORTED if a layer's cache is
 * larger than the device can bind at once (maxStorageBufferRange). */
vkllm_status ops_flash_attention(ops_context *ops, vkr_sequence *seq, vkr_range q, vkr_range k_cache,
                                 vkr_range v_cache, vkr_range page_table, vkr_range tokens, vkr_range scratch,
                                 vkr_range out, const ops_attention_shape *shape);

/* ops_flash_attention that also writes out quantized as the integer mat-vec reads x (matmul.h: ops_quantize_q8,
 * ops_matmul_into_xq): out_q8 [ops_q8_bytes(n_tokens, n_heads * head_dim)], n_heads * head_dim a multiple of
 * 32; bit for bit what ops_quantize_q8 makes of out.  In the combine pass where the keys are split and head_dim
 * is a multiple of 32, else in a quantize_q8 dispatch after the attention. */
vkllm_status ops_flash_attention_q8(ops_context *ops, vkr_sequence *seq, vkr_range q, vkr_range k_cache,
                                    vkr_range v_cache, vkr_range page_table, vkr_range tokens, vkr_range scratch,
                                    vkr_range out, vkr_range out_q8, const ops_attention_shape *shape);

/* Tree attention (Medusa's verification of a tree of candidates in one pass): ops_flash_attention where the tokens
 * at positions first..first+n-1 of a sequence form a tree.  tree holds one row per batch token (uint32 x 4: first,
 * then the 64-bit set of the positions first + j it sees, low word first, then 0); positions below first are seen
 * as usual, up to the token's own position.  A token outside a tree has first = 0xffffffff.  F32 and F16 caches
 * (VKLLM_ERROR_UNSUPPORTED otherwise); never the cooperative-matrix attention. */
#define OPS_TREE_MAX_NODES 64u
vkllm_status ops_flash_attention_tree(ops_context *ops, vkr_sequence *seq, vkr_range q, vkr_range k_cache,
                                      vkr_range v_cache, vkr_range page_table, vkr_range tokens, vkr_range tree,
                                      vkr_range scratch, vkr_range out, const ops_attention_shape *shape);
/* The tree rows of n nodes at positions first + i from a parent list (parents[i] < i; -1: a root, which sees the
 * prefix and itself): each node sees its ancestors and itself.  VKLLM_ERROR_INVALID_ARGUMENT for more than
 * OPS_TREE_MAX_NODES nodes or a parent not before its node. */
vkllm_status ops_tree_rows(const int32_t *parents, uint32_t n, uint32_t first, uint32_t (*rows)[4]);

#endif
