#version 450
// The Q/K/V store for a cache with a quantized K or V (KV_K_Q8_0 / KV_K_Q4_0 / KV_K_F16, and the same with V):
// after the mat-vec or mat-mul wrote the stacked projection of n tokens, one pass adds the bias, rotates Q and K,
// writes Q, and quantizes K and V into the cache as it writes them (kv_blocks.glsl) -- the full-precision rows
// never reach the cache.  Invocations: first one per pair of Q rows, then one per pair of 32-value blocks of each
// token's K row, then of its V row (an F16 side is written in the same pairs of blocks, head-major as ever).
#include "common.glsl"
#include "kv_blocks.glsl"
#include "rope.glsl"

layout(std430, binding = 0) readonly buffer QKV { float qkv[]; };                  // [n][q_rows + 2 kv_rows]
layout(std430, binding = 1) writeonly buffer QOut { vec2 q_out[]; };               // [n][q_rows]
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) readonly buffer Tokens { ivec2 tokens[]; };
layout(std430, binding = 4) readonly buffer Pages { int page_table[]; };
layout(std430, binding = 5) writeonly buffer KCache { uint k_cache[]; };
layout(std430, binding = 6) writeonly buffer VCache { uint v_cache[]; };

layout(push_constant) uniform Push {
    uint n_tokens;
    uint q_rows, kv_rows, head_dim, n_rot;
    float freq_base, freq_scale;
    uint has_bias, page_shift, n_pages, n_seqs, max_pages_per_seq;
} p;

// Element r (even) and r + 1 of token t's stacked row, with bias, rotated when `rotate` and within n_rot.
vec2 load_pair(uint t, uint row, bool rotate, int pos)
{
    const uint stride = p.q_rows + 2u * p.kv_rows;
    vec2 v = vec2(qkv[t * stride + row], qkv[t * stride + row + 1u]);
    if (p.has_bias != 0u) v += vec2(bias[row], bias[row + 1u]);
    const uint d = (rotate ? (row < p.q_rows ? row : row - p.q_rows) : 0u) % p.head_dim;
    if (rotate && d < p.n_rot) v = rope_rotate(v.x, v.y, pos, d / 2u, p.n_rot, p.freq_base, p.freq_scale);
    return v;
}

#if defined(KV_K_Q8_0) || defined(KV_K_Q4_0) || defined(KV_K_F16)
#else
#error "qkv_store_blocks.comp needs KV_K_Q8_0, KV_K_Q4_0 or KV_K_F16"
#endif

#ifdef ROTATE_K
#define ROTATE(v) if (is_k) hadamard_segments(v, 32u, r);
#else
#define ROTATE(v)
#endif

// One block (32 values starting at element e of the K or V row) into a token record at word rec.
#define STORE_BLOCK(CACHE, Q8, Q4, F16)                                                                    \
    {                                                                                                      \
        float v[32];                                                                                       \
        for (uint j = 0u; j < 32u; j += 2u) {                                                              \
            vec2 x = load_pair(t, base_row + e + j, is_k, rope_pos);                                        \
            v[j] = x.x;                                                                                    \
            v[j + 1u] = x.y;                                                                               \
        }                                                                                                  \
        ROTATE(v)                                                                                          \
        if (Q8) {                                                                                          \
            float d = q8_scale_of(v), id = d != 0.0 ? 1.0 / d : 0.0;                                       \
            for (uint j = 0u; j < 32u; j += 4u) CACHE[rec + e / 4u + j / 4u] = q8_pack4(v, j, id);         \
            scales[b - blk0] = d;                                                                          \
        } else if (Q4) {                                                                                   \
            float d = q4_scale_of(v), id = d != 0.0 ? 1.0 / d : 0.0;                                       \
            for (uint j = 0u; j < 16u; j += 4u) CACHE[rec + e / 8u + j / 4u] = q4_pack4(v, j, id);         \
            scales[b - blk0] = d;                                                                          \
        } else {                                                                                           \
            for (uint j = 0u; j < 32u; j += 2u) {                                                          \
                uint el = e + j, kvh = el / p.head_dim, dd = el % p.head_dim;                              \
                uint at = ((uint(page) * n_kv_heads + kvh) << p.page_shift | slot) * p.head_dim + dd;      \
                CACHE[at / 2u] = packHalf2x16(vec2(v[j], v[j + 1u]));                                      \
            }                                                                                              \
        }                                                                                                  \
    }

void main()
{
    const uint i = linear_invocation();
    const uint q_pairs = p.q_rows / 2u;
    const uint row_blocks = p.kv_rows / 32u, block_pairs = (row_blocks + 1u) / 2u;
    const uint per_token = q_pairs + 2u * block_pairs;
    if (i >= p.n_tokens * per_token) return;
    const uint t = i / per_token, k = i % per_token;
    const ivec2 sp = token_slot(tokens[t]);
    const int rope_pos = token_rope_pos(tokens[t]);
#ifdef ROTATE_K
    const uint r = min(p.head_dim & (~p.head_dim + 1u), 32u); // gcd(head_dim, 32): its lowest set bit, at most 32
#endif
    if (k < q_pairs) {
#ifdef ROTATE_K
        // The invocation at the start of each segment of r rows rotates it whole; the others have nothing to do.
        if ((2u * k) % r != 0u) return;
        float v[32];
        for (uint j = 0u; j < 32u; j += 2u) {
            if (j >= r) break;
            vec2 x = load_pair(t, 2u * k + j, true, rope_pos);
            v[j] = x.x;
            v[j + 1u] = x.y;
        }
        hadamard_segments(v, r, r);
        for (uint j = 0u; j < 32u; j += 2u) {
            if (j >= r) break;
            q_out[t * q_pairs + k + j / 2u] = vec2(v[j], v[j + 1u]);
        }
#else
        q_out[t * q_pairs + k] = load_pair(t, 2u * k, true, rope_pos);
#endif
        return;
    }
    const bool is_k = k < q_pairs + block_pairs;
    const uint pair = is_k ? k - q_pairs : k - q_pairs - block_pairs;
    const uint base_row = is_k ? p.q_rows : p.q_rows + p.kv_rows;
    if (sp.x < 0 || uint(sp.x) >= p.n_seqs || sp.y < 0 || (uint(sp.y) >> p.page_shift) >= p.max_pages_per_seq)
        return;
    const int page = page_table[uint(sp.x) * p.max_pages_per_seq + (uint(sp.y) >> p.page_shift)];
    if (page < 0 || uint(page) >= p.n_pages) return;
    const uint slot = uint(sp.y) & ((1u << p.page_shift) - 1u);
    const uint n_kv_heads = p.kv_rows / p.head_dim;
    const uint token_slot = uint(page) << p.page_shift | slot;
    const uint blk0 = 2u * pair, blk_end = min(blk0 + 2u, row_blocks);
    float scales[2] = float[2](0.0, 0.0);
    if (is_k) {
#if defined(KV_K_Q8_0)
        const uint rec = token_slot * q8_record_words(p.kv_rows), scale_at = rec + q8_scale_offset(p.kv_rows);
#elif defined(KV_K_Q4_0)
        const uint rec = token_slot * q4_record_words(p.kv_rows), scale_at = rec + q4_scale_offset(p.kv_rows);
#else
        const uint rec = 0u, scale_at = 0u;
#endif
        for (uint b = blk0, guard = 0u; b < blk_end; b++) {
            LOOP_GUARD(guard, 2u);
            const uint e = 32u * b;
#if defined(KV_K_Q8_0)
            STORE_BLOCK(k_cache, true, false, false)
#elif defined(KV_K_Q4_0)
            STORE_BLOCK(k_cache, false, true, false)
#else
            STORE_BLOCK(k_cache, false, false, true)
#endif
        }
#if defined(KV_K_Q8_0) || defined(KV_K_Q4_0)
        k_cache[scale_at + pair] = packHalf2x16(vec2(scales[0], scales[1]));
#endif
    } else {
#if defined(KV_V_Q8_0)
        const uint rec = token_slot * q8_record_words(p.kv_rows), scale_at = rec + q8_scale_offset(p.kv_rows);
#elif defined(KV_V_Q4_0)
        const uint rec = token_slot * q4_record_words(p.kv_rows), scale_at = rec + q4_scale_offset(p.kv_rows);
#else
        const uint rec = 0u, scale_at = 0u;
#endif
        for (uint b = blk0, guard = 0u; b < blk_end; b++) {
            LOOP_GUARD(guard, 2u);
            const uint e = 32u * b;
#if defined(KV_V_Q8_0)
            STORE_BLOCK(v_cache, true, false, false)
#elif defined(KV_V_Q4_0)
            STORE_BLOCK(v_cache, false, true, false)
#else
            STORE_BLOCK(v_cache, false, false, true)
#endif
        }
#if defined(KV_V_Q8_0) || defined(KV_V_Q4_0)
        v_cache[scale_at + pair] = packHalf2x16(vec2(scales[0], scales[1]));
#endif
    }
}
