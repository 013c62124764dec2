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

// What a pair's store needs of its token: the RoPE position, and the cache element of the token's slot (its page
// and slot; ok false where the token has no valid slot: no K/V store).
struct QkvToken {
    int rope_pos;
    uint slot_elem; // (page * n_kv_heads) << page_shift | slot: add kv_head << page_shift, times head_dim, plus d
    bool ok;
};
// ... and of its row (the same for every token): where it goes and its RoPE frequency.
struct QkvRow {
    bool is_q, is_k, rotate;
    uint r;         // row within its part (Q, K or V)
    uint d;         // element within its head
    float inv_freq; // rope_inv_freq of the pair, where rotate
};

QkvToken qkv_token(QkvParams prm, uint t)
{
    const ivec2 raw = tokens[t];
    const ivec2 sp = token_slot(raw);
    QkvToken tk;
    tk.rope_pos = token_rope_pos(raw);
    tk.ok = false;
    tk.slot_elem = 0u;
    if (sp.x < 0 || uint(sp.x) >= prm.n_seqs || sp.y < 0 || (uint(sp.y) >> prm.page_shift) >= prm.max_pages_per_seq)
        return tk;
    const int page = page_table[uint(sp.x) * prm.max_pages_per_seq + (uint(sp.y) >> prm.page_shift)];
    if (page < 0 || uint(page) >= prm.n_pages) return tk;
    const uint n_kv_heads = prm.kv_rows / prm.head_dim;
    tk.slot_elem = (uint(page) * n_kv_heads) << prm.page_shift | (uint(sp.y) & ((1u << prm.page_shift) - 1u));
    tk.ok = true;
    return tk;
}

// Row `row` (even) of the stacked projection.
QkvRow qkv_row(QkvParams prm, uint row)
{
    QkvRow rw;
    rw.is_q = row < prm.q_rows;
    rw.is_k = !rw.is_q && row < prm.q_rows + prm.kv_rows;
    rw.r = rw.is_q ? row : rw.is_k ? row - prm.q_rows : row - prm.q_rows - prm.kv_rows;
    rw.d = rw.r % prm.head_dim;
    rw.rotate = (rw.is_q || rw.is_k) && rw.d < prm.n_rot;
    rw.inv_freq = rw.rotate ? rope_inv_freq(rw.d / 2u, prm.n_rot, prm.freq_base) : 0.0;
    return rw;
}

// Rows `row` (even, described by rw) and row + 1 of token t (described by tk), a and b before the bias.
void qkv_store_pair_at(QkvParams prm, QkvToken tk, QkvRow rw, uint t, uint row, float a, float b)
{
    if (prm.has_bias != 0u) {
        a += bias[row];
        b += bias[row + 1u];
    }
    if (rw.rotate) {
        vec2 v = rope_rotate_freq(a, b, tk.rope_pos, rw.inv_freq, prm.freq_scale);
        a = v.x;
        b = v.y;
    }
    if (rw.is_q) {
        q_out[t * prm.q_rows + rw.r] = a;
        q_out[t * prm.q_rows + rw.r + 1u] = b;
        return;
    }
    if (!tk.ok) return;
    // The page's kv heads each hold 1 << page_shift slots of head_dim elements (kv_cache.h's head-major layout).
    const uint elem = (tk.slot_elem + ((rw.r / prm.head_dim) << prm.page_shift)) * prm.head_dim + rw.d;
    if (rw.is_k) k_cache[elem / 2u] = kv_pack_pair(vec2(a, b));
    else v_cache[elem / 2u] = kv_pack_pair(vec2(a, b));
}

// Rows `row` (even) and row + 1 of token t's stacked projection, a and b before the bias.
void qkv_store_pair(QkvParams prm, uint t, uint row, float a, float b)
{
    qkv_store_pair_at(prm, qkv_token(prm, t), qkv_row(prm, row), t, row, a, b);
}

#endif
