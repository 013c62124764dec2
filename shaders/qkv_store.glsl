// Where a token's Q/K/V projection goes: the fused epilogue of the Q/K/V mat-vec (matvec.comp STORE_QKV)
// and the pass after a tiled mat-mul (qkv_store.comp) call qkv_store_pair for each pair of rows.
//
// The stacked Q/K/V matrix has q_rows rows of Q (n_head x head_dim), then kv_rows of K, then kv_rows of V.
// A pair is rows (2i, 2i+1): the bias is added, Q and K pairs below n_rot within their head are rotated (RoPE
// in llama.cpp's "normal" layout: NeoX models have their Q/K rows permuted at load time, which leaves q.k
// unchanged), Q goes to q_out [n][q_rows] and K/V to the paged cache at the token's {seq, pos} (as
// kv_write.comp).  The including shader defines QKV_BINDING, the first of the six bindings below.
#ifndef VKLLM_QKV_STORE_GLSL
#define VKLLM_QKV_STORE_GLSL

#include "kv_cache.glsl"
#include "rope.glsl"

// A member of the shader's push-constant block (src/ops/qkv.c: qkv_params).
struct QkvParams {
    uint q_rows;  // rows of Q in the stacked matrix (n_head * head_dim)
    uint kv_rows; // rows of K, and of V (n_head_kv * head_dim)
    uint head_dim;
    uint n_rot;   // rotated dims per head (even, <= head_dim)
    float freq_base;
    float freq_scale;
    uint has_bias;   // 1: add bias[row] first
    uint page_shift; // log2 of the positions per cache page
    uint n_pages;
    uint n_seqs;
    uint max_pages_per_seq;
};

layout(std430, binding = QKV_BINDING) writeonly buffer QOut { float q_out[]; };          // [n][q_rows]
layout(std430, binding = QKV_BINDING + 1) readonly buffer Bias { float bias[]; };       // [q_rows + 2 kv_rows]
layout(std430, binding = QKV_BINDING + 2) readonly buffer Tokens { ivec2 tokens[]; };   // {seq, pos} per token
layout(std430, binding = QKV_BINDING + 3) readonly buffer Pages { int page_table[]; };  // [n_seqs][max_pages]
layout(std430, binding = QKV_BINDING + 4) writeonly buffer KCache { KV_PAIR k_cache[]; };
layout(std430, binding = QKV_BINDING + 5) writeonly buffer VCache { KV_PAIR v_cache[]; };

// Rows `row` (even) and row + 1 of token t's stacked projection, a and b before the bias.
void qkv_store_pair(QkvParams prm, uint t, uint row, float a, float b)
{
    if (prm.has_bias != 0u) {
        a += bias[row];
        b += bias[row + 1u];
    }
    const ivec2 sp = token_slot(tokens[t]);
    const bool is_q = row < prm.q_rows, is_k = !is_q && row < prm.q_rows + prm.kv_rows;
    const uint r = is_q ? row : is_k ? row - prm.q_rows : row - prm.q_rows - prm.kv_rows; // row within its part
    const uint d = r % prm.head_dim;
    if ((is_q || is_k) && d < prm.n_rot) {
        vec2 v = rope_rotate(a, b, token_rope_pos(tokens[t]), d / 2u, prm.n_rot, prm.freq_base, prm.freq_scale);
        a = v.x;
        b = v.y;
    }
    if (is_q) {
        q_out[t * prm.q_rows + r] = a;
        q_out[t * prm.q_rows + r + 1u] = b;
        return;
    }
    if (sp.x < 0 || uint(sp.x) >= prm.n_seqs || sp.y < 0 || (uint(sp.y) >> prm.page_shift) >= prm.max_pages_per_seq)
        return;
    const int page = page_table[uint(sp.x) * prm.max_pages_per_seq + (uint(sp.y) >> prm.page_shift)];
    if (page < 0 || uint(page) >= prm.n_pages) return;
    const uint slot = uint(sp.y) & ((1u << prm.page_shift) - 1u);
    const uint n_kv_heads = prm.kv_rows / prm.head_dim;
    const uint elem = ((uint(page) * n_kv_heads + r / prm.head_dim) << prm.page_shift | slot) * prm.head_dim + d;
    if (is_k) k_cache[elem / 2u] = kv_pack_pair(vec2(a, b));
    else v_cache[elem / 2u] = kv_pack_pair(vec2(a, b));
}

#endif
