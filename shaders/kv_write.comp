#version 450
// Writes a batch's K and V rows into the paged cache.  One invocation per 4 elements of one (token, kv
// head) row, so that in an F16 cache each invocation owns whole uints (two halves each) and no two
// invocations write the halves of one uint.
#include "common.glsl"
#include "kv_cache.glsl"

layout(std430, binding = 0) readonly buffer KNew { vec4 k_new[]; };  // [n_tokens][n_kv_heads][head_dim/4]
layout(std430, binding = 1) readonly buffer VNew { vec4 v_new[]; };
layout(std430, binding = 2) readonly buffer Tokens { ivec2 tokens[]; };  // {seq, pos}
layout(std430, binding = 3) readonly buffer Pages { int page_table[]; }; // [n_seqs][max_pages_per_seq]
layout(std430, binding = 4) writeonly buffer KCache { KV_CHUNK k_cache[]; };
layout(std430, binding = 5) writeonly buffer VCache { KV_CHUNK v_cache[]; };

layout(push_constant) uniform Push {
    uint n_tokens, n_kv_heads, head_dim4, page_shift, n_pages, n_seqs, max_pages_per_seq;
} p;

void main()
{
    uint i = linear_invocation();
    uint row = p.n_kv_heads * p.head_dim4;   // chunks per token
    if (i >= p.n_tokens * row) return;
    uint t = i / row;
    uint kv_head = (i % row) / p.head_dim4;
    uint chunk = i % p.head_dim4;
    ivec2 sp = token_slot(tokens[t]);
    if (sp.x < 0 || uint(sp.x) >= p.n_seqs || sp.y < 0 || (uint(sp.y) >> p.page_shift) >= p.max_pages_per_seq)
        return;
    uint pos = uint(sp.y);
    int page = page_table[uint(sp.x) * p.max_pages_per_seq + (pos >> p.page_shift)];
    if (page < 0 || uint(page) >= p.n_pages) return;
    uint slot = pos & ((1u << p.page_shift) - 1u);
    uint dst = ((uint(page) * p.n_kv_heads + kv_head) << p.page_shift | slot) * p.head_dim4 + chunk;
    k_cache[dst] = kv_pack(k_new[i]);
    v_cache[dst] = kv_pack(v_new[i]);
}
