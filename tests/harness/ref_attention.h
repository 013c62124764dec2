/* Host model of the paged KV cache and a plain attention reference, for the cache and attention tests
 * (tests/ops/attention/), test_ops_fused and ref_llama.c.  Layouts as in src/ops/kv_cache.h. */
#ifndef VKLLM_TEST_REF_ATTENTION_H
#define VKLLM_TEST_REF_ATTENTION_H

#include "harness.h"
#include "ops/flash_attn.h"

/* Gives every (seq, page) entry of table [n_seqs][max_pages_per_seq] its own page, in shuffled order;
 * needs n_pages >= n_seqs * max_pages_per_seq. */
void ref_shuffled_page_table(th_rng *rng, const ops_kv_layout *kv, int32_t *table);

/* Stores row [n_kv_heads][head_dim] of position pos of sequence seq into cache (the device's bytes:
 * float, or uint16 halves rounded to nearest even). */
void ref_kv_store(const ops_kv_layout *kv, const int32_t *table, void *cache, uint32_t seq, uint32_t pos,
                  const float *row);

/* The same for one side of any type (kv->k_type or kv->v_type): F32/F16 head-major as above; Q8_0/Q4_0 the
 * token's record of kv_cache.h, made by the CPU quantizer (quant/, ggml's bytes) and rearranged into quants then
 * scales.  decoded (may be NULL) gets the values the cache now holds (F16 rounded, blocks dequantized). */
void ref_kv_store_typed(const ops_kv_layout *kv, ops_kv_type type, const int32_t *table, void *cache, uint32_t seq,
                        uint32_t pos, const float *row, float *decoded);

/* The rotation of quantized keys (shaders/kv_blocks.glsl hadamard_segments), the same float operations in the same
 * order: an orthonormal Walsh-Hadamard transform of each segment of r values of v[0..n) (r a power of two
 * dividing n).  Its own inverse. */
void ref_hadamard_segments(float *v, uint32_t n, uint32_t r);
/* The segment of that rotation for a head size: gcd(head_dim, 32). */
uint32_t ref_rotation_segment(uint32_t head_dim);

/* What a centered K cache (ops_kv_layout.center_pairs) subtracts from the key at position pos, as a row
 * [n_kv_heads][head_dim]: RoPE pairs n_rot / 2 - pairs .. n_rot / 2 - 1 of each kv head hold center
 * [n_kv_heads][pairs][2] rotated to pos (rope.glsl's angle, in double), every other value 0; then, with r != 0,
 * through ref_hadamard_segments as rotated keys are. */
void ref_key_center_row(const float *center, uint32_t pairs, uint32_t n_kv_heads, uint32_t head_dim, uint32_t n_rot,
                        double freq_base, double freq_scale, uint32_t pos, uint32_t r, float *row);

/* out [n_heads][head_dim] = causal attention of one token's q [n_heads][head_dim] over the first context
 * positions of an explicit history k, v [context][n_kv_heads][head_dim], computed in double. */
void ref_attention(const float *q, const float *k, const float *v, uint32_t context, uint32_t n_heads,
                   uint32_t n_kv_heads, uint32_t head_dim, double scale, float *out);

#endif
