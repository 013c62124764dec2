#version 450
// Flash attention over a paged KV cache.  One workgroup per (token, head, split of the keys), or per (token, group
// of heads_per_wg heads taken in turn, split) where the host asks for fewer workgroups (main, below), the heads of one
// KV head GROUP_PASS at a time where it asks for that (attend_rows: each key and value read once for them), and
// TOKEN_PASS tokens per workgroup where it asks for that (a batch of one sequence: its tokens in one pass).  Each
// invocation owns every WG-th key of the split and runs its own online softmax over them (tiles of
// KEYS_PER_LANE keys per invocation, so the running max is rescaled once per tile): the loop needs no
// barrier and no cross-lane traffic, and the query, being the same for the whole workgroup, is a uniform
// load.  At the end the invocations merge their (max, sum, accumulator) through shared memory (two
// barriers per workgroup), or with USE_SUBGROUP (the host's choice where the workgroup is one subgroup:
// lavapipe's 8 lanes) through subgroup arithmetic in registers.  With one split the result goes to out;
// with several, each workgroup writes its partial record to scratch for flash_attn_combine.comp, and
// workgroups whose split lies past the token's context exit at once.  Scores are in base 2: q is scaled
// by scale * log2(e) up front.
// QUANTIZE_Q8 (dispatched with one split only): the output also quantized for the o-projection's integer
// mat-vec (attn_q8.glsl), as flash_attn_combine.comp does after a split.
// TREE: the batch's rows form a tree of candidates (Medusa's verification): each token's row of tree[] names the
// first cache position of the tree and which of the up to 64 positions from there it sees (its ancestors and
// itself, as bits); positions before the tree are seen as usual.  Rows outside a tree have first = 0xffffffff.
#extension GL_EXT_control_flow_attributes : require
#if defined(USE_SUBGROUP)
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
#include "common.glsl"
#include "kv_cache.glsl"
#include "kv_blocks.glsl"

// K and V each F32 or F16 (KV_F16: both; the head-major layout of kv_cache.h), or, in the variants for a
// quantized cache, KV_K_* and KV_V_* name each side's type: Q8_0 / Q4_0 records (kv_blocks.glsl), dequantized
// here four values at a time as they are read, or F16 head-major.
#if defined(KV_K_Q8_0) || defined(KV_K_Q4_0)
#define K_WORD uint
#elif defined(KV_K_F16)
#define K_WORD uvec2
#else
#define K_WORD KV_CHUNK
#endif
#if defined(KV_V_Q8_0) || defined(KV_V_Q4_0)
#define V_WORD uint
#elif defined(KV_V_F16)
#define V_WORD uvec2
#else
#define V_WORD KV_CHUNK
#endif

layout(constant_id = 1) const uint HD4 = 16;          // head_dim / 4
layout(constant_id = 2) const uint KEYS_PER_LANE = 4; // keys each invocation scores per tile
// TEXEL_KV with a quantized side: its records are whole texels (a multiple of 4 words), so a block's quant words
// come four per fetch.
layout(constant_id = 3) const bool K_RECORDS_QUAD = false;
layout(constant_id = 4) const bool V_RECORDS_QUAD = false;
layout(constant_id = 5) const uint GROUP_PASS = 1;    // query heads attended in one pass (of one KV head), below
layout(constant_id = 6) const uint TOKEN_PASS = 1;    // batch tokens a workgroup takes, those of one sequence in a pass

#if defined(TEXEL_KV)
// The query too: a uniform address is still read lane by lane from a storage buffer, a texel fetch is one gather.
layout(binding = 0) uniform samplerBuffer q_texels;                      // RGBA32F [n_tokens][n_heads][HD4]
#define Q_AT(i) texelFetch(q_texels, int(i))
#else
layout(std430, binding = 0) readonly buffer Q { vec4 q4[]; };            // [n_tokens][n_heads][HD4]
#define Q_AT(i) q4[i]
#endif
#if defined(TEXEL_KV)
// TEXEL_KV: K and V read through uniform texel buffers (the host views an F16 side's uvec2 chunks as RG32UI or, see
// below, pairs of them as RGBA32UI, an
// F32 side's vec4 chunks as RGBA32F, a quantized side's words four per RGBA32UI texel): lavapipe fetches texels
// with vector addressing, where a storage-buffer load at a per-lane address is a scalar loop over the lanes.
// An F16 side of a head of whole pairs of chunks (head_dim % 8 == 0) is viewed as RGBA32UI: two chunks (8 halves)
// per fetch, read by key_dot / value_add below; else as RG32UI, a chunk per fetch (K_AT / V_AT).
#if defined(KV_K_F16) || defined(KV_F16)
#define K_F16_TEXELS 1
#endif
#if defined(KV_V_F16) || defined(KV_F16)
#define V_F16_TEXELS 1
#endif
#if defined(KV_K_Q8_0) || defined(KV_K_Q4_0)
layout(binding = 1) uniform usamplerBuffer k_texels;  // RGBA32UI: four words per texel
#define K_AT(i) texelFetch(k_texels, int((i) >> 2u))[(i) & 3u]
#define K_QUAD(i) texelFetch(k_texels, int((i) >> 2u))
#elif defined(KV_K_F16) || defined(KV_F16)
layout(binding = 1) uniform usamplerBuffer k_texels;
#define K_AT(i) texelFetch(k_texels, int(i)).xy
#else
layout(binding = 1) uniform samplerBuffer k_texels;
#define K_AT(i) texelFetch(k_texels, int(i))
#endif
#if defined(KV_V_Q8_0) || defined(KV_V_Q4_0)
layout(binding = 2) uniform usamplerBuffer v_texels;  // RGBA32UI: four words per texel
#define V_AT(i) texelFetch(v_texels, int((i) >> 2u))[(i) & 3u]
#define V_QUAD(i) texelFetch(v_texels, int((i) >> 2u))
#elif defined(KV_V_F16) || defined(KV_F16)
layout(binding = 2) uniform usamplerBuffer v_texels;
#define V_AT(i) texelFetch(v_texels, int(i)).xy
#else
layout(binding = 2) uniform samplerBuffer v_texels;
#define V_AT(i) texelFetch(v_texels, int(i))
#endif
#else
layout(std430, binding = 1) readonly buffer KCache { K_WORD k_cache[]; };
layout(std430, binding = 2) readonly buffer VCache { V_WORD v_cache[]; };
#define K_AT(i) k_cache[i]
#define V_AT(i) v_cache[i]
#endif
layout(std430, binding = 3) readonly buffer Pages { int page_table[]; }; // [n_seqs][max_pages_per_seq]
layout(std430, binding = 4) readonly buffer Tokens { ivec2 tokens[]; };  // {seq, pos}
// n_splits == 1: [n_tokens][n_heads][HD4] normalized output; else scratch records
// [n_tokens][n_heads][n_splits][1 + HD4]: (max, sum, 0, 0) then the unnormalized accumulator.
layout(std430, binding = 5) writeonly buffer Out { vec4 out4[]; };

layout(push_constant) uniform Push {
    uint n_tokens, n_heads, group, n_kv_heads;   // group = n_heads / n_kv_heads
    uint page_shift, n_pages, n_seqs, max_pages_per_seq;
    uint n_splits, split_len;                    // split_len: keys per split, a multiple of the tile
    float scale_log2;
    uint heads_per_wg;                           // heads of one token a workgroup takes in turn (>= 1)
    float freq_base, freq_scale;                 // K_CENTER: RoPE's frequencies
} p;

#if defined(QUANTIZE_Q8)
#define Q8_BINDING 6
#include "attn_q8.glsl"
#endif
#if defined(TREE)
#if defined(QUANTIZE_Q8)
#error "TREE and QUANTIZE_Q8 share binding 6"
#endif
layout(std430, binding = 6) readonly buffer Tree { uvec4 tree[]; }; // [n_tokens] {first, mask 0..31, 32..63, 0}
#endif

#if defined(KV_K_Q8_0) || defined(KV_K_Q4_0)
// A centered K cache (CENTER_PAIRS > 0): the store's bias subtracted the model's mean key m (before RoPE, so the key
// at position pos holds k - R(pos) m) in the CENTER_PAIRS lowest-frequency RoPE pairs of each head, where a trained
// model's keys carry a large common part that would otherwise set every block's scale.  Each score gets q . R(pos) m
// back here, so it is q . k of the key itself: nothing about attention changes but the quantization error.
#define K_CENTER 1
#include "rope.glsl"
layout(constant_id = 7) const uint CENTER_PAIRS = 0;
layout(constant_id = 8) const uint ROT_SEG = 0;  // the keys' Hadamard segment (0: not rotated)
layout(constant_id = 9) const uint N_ROT = 0;    // RoPE's rotated dims
layout(std430, binding = 6) readonly buffer KCenter { vec2 k_center[]; }; // [n_kv_heads][CENTER_PAIRS]: m's pairs
#endif

const float NO_SCORE = -3.0e38;  // below any real score; exp2(NO_SCORE - finite) == 0
const uint WG = gl_WorkGroupSize.x;

#if !defined(USE_SUBGROUP)
shared float sh_max[WG];
shared float sh_sum[WG];
shared vec4 sh_acc[HD4 * WG];
#endif

uint g_row; // values in one token's K (or V) row: n_kv_heads * head_dim
// A pass attends GP query heads of one KV head at once (GQA: the heads of a group), so that each key and value is
// read once for all of them; each head's arithmetic is the same as alone, in the same order.
// A workgroup also takes TOKEN_PASS consecutive tokens of the batch, and attends those of one sequence in one pass
// (speculative verification, a prompt: the keys they share read once for all of them), each over its own keys.
// A pass's rows are r = tp * GP + g: head h0 + g of its tp-th token.
const uint GP = GROUP_PASS;
const uint TP = TOKEN_PASS;
const uint R = GP * TP;
vec4 q[R * HD4];    // the pass's queries, pre-scaled: row r's chunk c at r * HD4 + c
vec4 acc[R * HD4];  // this invocation's unnormalized outputs, likewise
float dots[R];      // key_dots' result: q . K for each row of the pass
float vw[R];        // value_adds' weights, per row
bool vtake[R];      // ... and whether row r takes this value at all
bool tok_on[TP];    // the workgroup's tokens in the current pass
uint tok_end[TP];   // ... and the end of each one's keys in this split
#if defined(K_CENTER)
vec2 cq[R * CENTER_PAIRS + 1u];    // row r's query (scaled, without the keys' Hadamard rotation) in centered pair i
vec2 c_rm[CENTER_PAIRS + 1u];      // R(pos) m in pair i for this lane's next key
vec2 c_step[CENTER_PAIRS + 1u];    // (cos, sin) of pair i's turn over WG positions: from one of its keys to the next
#endif

// Chunk c (values 4c..4c+3) of kv head kvh at token slot ts = page << page_shift | slot.
uint head_major(uint ts, uint kvh, uint c)
{
    return (((ts >> p.page_shift) * p.n_kv_heads + kvh) << p.page_shift | (ts & ((1u << p.page_shift) - 1u))) * HD4 + c;
}
vec4 load_k(uint ts, uint kvh, uint c)
{
    const uint e = kvh * HD4 * 4u + 4u * c;
#if defined(KV_K_Q8_0)
    const uint rec = ts * q8_record_words(g_row);
    return q8_dequant4(K_AT(rec + e / 4u), block_scale(K_AT(rec + q8_scale_offset(g_row) + e / 64u), e / 32u));
#elif defined(KV_K_Q4_0)
    const uint rec = ts * q4_record_words(g_row);
    return q4_dequant4(K_AT(rec + q4_word_index(e)), e,
                       block_scale(K_AT(rec + q4_scale_offset(g_row) + e / 64u), e / 32u));
#elif defined(KV_K_F16)
    const uvec2 w = K_AT(head_major(ts, kvh, c));
    return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
#else
    return kv_unpack(K_AT(head_major(ts, kvh, c)));
#endif
}
vec4 load_v(uint ts, uint kvh, uint c)
{
    const uint e = kvh * HD4 * 4u + 4u * c;
#if defined(KV_V_Q8_0)
    const uint rec = ts * q8_record_words(g_row);
    return q8_dequant4(V_AT(rec + e / 4u), block_scale(V_AT(rec + q8_scale_offset(g_row) + e / 64u), e / 32u));
#elif defined(KV_V_Q4_0)
    const uint rec = ts * q4_record_words(g_row);
    return q4_dequant4(V_AT(rec + q4_word_index(e)), e,
                       block_scale(V_AT(rec + q4_scale_offset(g_row) + e / 64u), e / 32u));
#elif defined(KV_V_F16)
    const uvec2 w = V_AT(head_major(ts, kvh, c));
    return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
#else
    return kv_unpack(V_AT(head_major(ts, kvh, c)));
#endif
}

// dots[g] = q_g . K[ts][kvh] for the pass's heads.  A head of whole blocks (head_dim a multiple of 32) goes block
// by block: one scale load per 32 values and the scale applied once per block (Q4_0: each word serves two chunks,
// its low and high nibbles); other heads chunk by chunk.  The loads are what costs on lavapipe, where per-lane
// addresses are gathered one lane at a time: each is made once for the pass.
void key_dots(uint ts, uint kvh)
{
    [[unroll]] for (uint g = 0u; g < R; g++) dots[g] = 0.0;
#if defined(K_F16_TEXELS)
    if ((HD4 & 1u) == 0u) { // chunks c and c + 1 in one RGBA32UI texel; the sums in the order of the loop below
        const uint t0 = head_major(ts, kvh, 0u) >> 1u;
        for (uint c = 0; c < HD4; c += 2u) {
            const uvec4 w = texelFetch(k_texels, int(t0 + c / 2u));
            const vec4 k0 = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
            const vec4 k1 = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
            [[unroll]] for (uint g = 0u; g < R; g++) {
                dots[g] += dot(q[g * HD4 + c], k0);
                dots[g] += dot(q[g * HD4 + c + 1u], k1);
            }
        }
        return;
    }
#endif
#if defined(KV_K_Q8_0) || defined(KV_K_Q4_0)
    if ((HD4 & 7u) == 0u) {
        const uint e0 = kvh * HD4 * 4u;
#if defined(KV_K_Q8_0)
        const uint rec = ts * q8_record_words(g_row), scales = rec + q8_scale_offset(g_row);
#else
        const uint rec = ts * q4_record_words(g_row), scales = rec + q4_scale_offset(g_row);
#endif
        for (uint b = 0u; b < HD4 / 8u; b++) {
            const uint eb = e0 + 32u * b, c0 = 8u * b;
            float sb[R];
            [[unroll]] for (uint g = 0u; g < R; g++) sb[g] = 0.0;
#if defined(KV_K_Q8_0)
#if defined(K_QUAD)
            if (K_RECORDS_QUAD) {
                for (uint j = 0u; j < 8u; j += 4u) {
                    const uvec4 w = K_QUAD(rec + eb / 4u + j);
                    const vec4 k0 = q8_ints4(w.x), k1 = q8_ints4(w.y), k2 = q8_ints4(w.z), k3 = q8_ints4(w.w);
                    [[unroll]] for (uint g = 0u; g < R; g++) {
                        const uint qc = g * HD4 + c0 + j;
                        sb[g] += dot(q[qc], k0) + dot(q[qc + 1u], k1) + dot(q[qc + 2u], k2) + dot(q[qc + 3u], k3);
                    }
                }
            } else
#endif
            for (uint j = 0u; j < 8u; j++) {
                const vec4 k = q8_ints4(K_AT(rec + eb / 4u + j));
                [[unroll]] for (uint g = 0u; g < R; g++) sb[g] += dot(q[g * HD4 + c0 + j], k);
            }
#else
#if defined(K_QUAD)
            if (K_RECORDS_QUAD) {
                const uvec4 w = K_QUAD(rec + eb / 8u);
                for (uint j = 0u; j < 4u; j++) {
                    const vec4 lo = q4_lo4(w[j]), hi = q4_hi4(w[j]);
                    [[unroll]] for (uint g = 0u; g < R; g++)
                        sb[g] += dot(q[g * HD4 + c0 + j], lo) + dot(q[g * HD4 + c0 + 4u + j], hi);
                }
            } else
#endif
            for (uint j = 0u; j < 4u; j++) {
                const uint w = K_AT(rec + eb / 8u + j);
                const vec4 lo = q4_lo4(w), hi = q4_hi4(w);
                [[unroll]] for (uint g = 0u; g < R; g++)
                    sb[g] += dot(q[g * HD4 + c0 + j], lo) + dot(q[g * HD4 + c0 + 4u + j], hi);
            }
#endif
            const float d = block_scale(K_AT(scales + eb / 64u), eb / 32u);
            [[unroll]] for (uint g = 0u; g < R; g++) dots[g] += sb[g] * d;
        }
        return;
    }
#endif
    for (uint c = 0; c < HD4; c++) {
        const vec4 k = load_k(ts, kvh, c);
        [[unroll]] for (uint g = 0u; g < R; g++) dots[g] += dot(q[g * HD4 + c], k);
    }
}

#if defined(K_CENTER)
// Dim d of row r's query as the keys were before their Hadamard rotation: the rotation is orthonormal and its own
// inverse, so rotating the rotated query again gives it back.
float query_unrotated(uint r, uint d)
{
    if (ROT_SEG <= 1u) return q[r * HD4 + d / 4u][d & 3u];
    const uint s0 = d / ROT_SEG * ROT_SEG, dl = d - s0;
    float s = 0.0;
    [[unroll]] for (uint k = 0u; k < ROT_SEG; k++) {
        const float x = q[r * HD4 + (s0 + k) / 4u][(s0 + k) & 3u];
        s += (bitCount(dl & k) & 1) != 0 ? -x : x;
    }
    return s * inversesqrt(float(ROT_SEG));
}

// The centered pairs' queries, once per pass.  Everything here and in center_dots is unrolled over
// specialization constants (the segment and the rotated dims too), so that every array index is a constant: with
// loops and indices at run time, LLVM's coroutine lowering on lavapipe took minutes over these functions.
void center_queries()
{
    [[unroll]] for (uint i = 0u; i < CENTER_PAIRS; i++) {
        const uint j = N_ROT / 2u - CENTER_PAIRS + i;
        [[unroll]] for (uint r = 0u; r < R; r++)
            cq[r * CENTER_PAIRS + i] = vec2(query_unrotated(r, 2u * j), query_unrotated(r, 2u * j + 1u));
    }
}

// The lane's first key of the pass (position pos, kv head kvh): R(pos) m from sine and cosine, then the next ones
// (every WG-th position) by turning it on; the turn's rounding over a split's keys stays far below the cache's.
void center_start(uint pos, uint kvh)
{
    [[unroll]] for (uint i = 0u; i < CENTER_PAIRS; i++) {
        const vec2 m = k_center[kvh * CENTER_PAIRS + i];
        const float freq = rope_inv_freq(N_ROT / 2u - CENTER_PAIRS + i, N_ROT, p.freq_base);
        c_rm[i] = rope_rotate_freq(m.x, m.y, int(pos), freq, p.freq_scale);
        c_step[i] = rope_rotate_freq(1.0, 0.0, int(WG), freq, p.freq_scale);
    }
}

// dots[g] += q_g . R(pos) m for the lane's current key: what the store subtracted.
void center_dots()
{
    [[unroll]] for (uint i = 0u; i < CENTER_PAIRS; i++)
        [[unroll]] for (uint g = 0u; g < R; g++) dots[g] += dot(cq[g * CENTER_PAIRS + i], c_rm[i]);
}

// On to the lane's next key, WG positions on.
void center_next()
{
    [[unroll]] for (uint i = 0u; i < CENTER_PAIRS; i++) {
        const vec2 a = c_rm[i], t = c_step[i];
        c_rm[i] = vec2(a.x * t.x - a.y * t.y, a.x * t.y + a.y * t.x);
    }
}
#endif

// acc_g += vw[g] * V[ts][kvh] for the heads with vtake[g], block by block where the head holds whole blocks (as
// key_dots).
void value_adds(uint ts, uint kvh)
{
#if defined(V_F16_TEXELS)
    if ((HD4 & 1u) == 0u) {
        const uint t0 = head_major(ts, kvh, 0u) >> 1u;
        for (uint c = 0; c < HD4; c += 2u) {
            const uvec4 x = texelFetch(v_texels, int(t0 + c / 2u));
            const vec4 v0 = vec4(unpackHalf2x16(x.x), unpackHalf2x16(x.y));
            const vec4 v1 = vec4(unpackHalf2x16(x.z), unpackHalf2x16(x.w));
            [[unroll]] for (uint g = 0u; g < R; g++)
                if (vtake[g]) {
                    acc[g * HD4 + c] += vw[g] * v0;
                    acc[g * HD4 + c + 1u] += vw[g] * v1;
                }
        }
        return;
    }
#endif
#if defined(KV_V_Q8_0) || defined(KV_V_Q4_0)
    if ((HD4 & 7u) == 0u) {
        const uint e0 = kvh * HD4 * 4u;
#if defined(KV_V_Q8_0)
        const uint rec = ts * q8_record_words(g_row), scales = rec + q8_scale_offset(g_row);
#else
        const uint rec = ts * q4_record_words(g_row), scales = rec + q4_scale_offset(g_row);
#endif
        for (uint b = 0u; b < HD4 / 8u; b++) {
            const uint eb = e0 + 32u * b, c0 = 8u * b;
            const float d = block_scale(V_AT(scales + eb / 64u), eb / 32u);
            float dw[R];
            [[unroll]] for (uint g = 0u; g < R; g++) dw[g] = vw[g] * d;
#if defined(KV_V_Q8_0)
#if defined(V_QUAD)
            if (V_RECORDS_QUAD) {
                for (uint j = 0u; j < 8u; j += 4u) {
                    const uvec4 x = V_QUAD(rec + eb / 4u + j);
                    const vec4 v0 = q8_ints4(x.x), v1 = q8_ints4(x.y), v2 = q8_ints4(x.z), v3 = q8_ints4(x.w);
                    [[unroll]] for (uint g = 0u; g < R; g++)
                        if (vtake[g]) {
                            const uint ac = g * HD4 + c0 + j;
                            acc[ac] += dw[g] * v0;
                            acc[ac + 1u] += dw[g] * v1;
                            acc[ac + 2u] += dw[g] * v2;
                            acc[ac + 3u] += dw[g] * v3;
                        }
                }
            } else
#endif
            for (uint j = 0u; j < 8u; j++) {
                const vec4 v = q8_ints4(V_AT(rec + eb / 4u + j));
                [[unroll]] for (uint g = 0u; g < R; g++)
                    if (vtake[g]) acc[g * HD4 + c0 + j] += dw[g] * v;
            }
#else
#if defined(V_QUAD)
            if (V_RECORDS_QUAD) {
                const uvec4 x = V_QUAD(rec + eb / 8u);
                for (uint j = 0u; j < 4u; j++) {
                    const vec4 lo = q4_lo4(x[j]), hi = q4_hi4(x[j]);
                    [[unroll]] for (uint g = 0u; g < R; g++)
                        if (vtake[g]) {
                            acc[g * HD4 + c0 + j] += dw[g] * lo;
                            acc[g * HD4 + c0 + 4u + j] += dw[g] * hi;
                        }
                }
            } else
#endif
            for (uint j = 0u; j < 4u; j++) {
                const uint x = V_AT(rec + eb / 8u + j);
                const vec4 lo = q4_lo4(x), hi = q4_hi4(x);
                [[unroll]] for (uint g = 0u; g < R; g++)
                    if (vtake[g]) {
                        acc[g * HD4 + c0 + j] += dw[g] * lo;
                        acc[g * HD4 + c0 + 4u + j] += dw[g] * hi;
                    }
            }
#endif
        }
        return;
    }
#endif
    for (uint c = 0; c < HD4; c++) {
        const vec4 v = load_v(ts, kvh, c);
        [[unroll]] for (uint g = 0u; g < R; g++)
            if (vtake[g]) acc[g * HD4 + c] += vw[g] * v;
    }
}

// Chunk c of row's merged accumulator a: to the split's scratch record, or normalized by the workgroup's sum to out
// (and staged for the quantized output).
void store_chunk(uint row, uint record, uint c, vec4 a, float wg_sum)
{
    if (p.n_splits > 1) {
        out4[record + 1u + c] = a;
        return;
    }
    const vec4 o = wg_sum > 0.0 ? a / wg_sum : vec4(0.0);
    out4[row * HD4 + c] = o;
#if defined(QUANTIZE_Q8)
    attn_q8_stage(c, o);
#endif
}

// The rows of one pass of one split: heads h0..h0 + GP - 1 (one KV head's) of the workgroup's tokens in the pass
// (tok_on), all of one sequence, whose key pages start at seq_pages; each token over the keys of [key_begin,
// tok_end) in tiles, then for each row the merge of the lanes and the store.  Every row runs the same operations in
// the same order whichever rows share its workgroup or its pass (a key a token does not see scores nothing for it,
// a tile where it sees none leaves its state alone), so its bits do not depend on the batch, on heads_per_wg, on GP
// or on TP.
void attend_rows(uint t0, uint h0, uint split, uint key_begin, uint seq_pages)
{
    const uint lane = gl_LocalInvocationID.x;
    uint key_end = key_begin;
    [[unroll]] for (uint tp = 0u; tp < TP; tp++)
        if (tok_on[tp]) key_end = max(key_end, tok_end[tp]);
    [[unroll]] for (uint r = 0u; r < R; r++) {
        const uint row = (t0 + r / GP) * p.n_heads + h0 + r % GP;
        for (uint c = 0; c < HD4; c++) {
            q[r * HD4 + c] = vec4(0.0);
            acc[r * HD4 + c] = vec4(0.0);
        }
        if (tok_on[r / GP])
            for (uint c = 0; c < HD4; c++) q[r * HD4 + c] = Q_AT(row * HD4 + c) * p.scale_log2;
    }
#if defined(K_CENTER)
    if (CENTER_PAIRS > 0u) {
        center_queries();
        center_start(key_begin + lane, h0 / p.group);
    }
#endif
    float run_max[R], run_sum[R];
    [[unroll]] for (uint r = 0u; r < R; r++) {
        run_max[r] = NO_SCORE;
        run_sum[r] = 0.0;
    }

#if defined(TREE)
    uvec4 tr[TP];
    [[unroll]] for (uint tp = 0u; tp < TP; tp++) {
        tr[tp] = uvec4(0u);
        if (tok_on[tp]) tr[tp] = tree[t0 + tp]; // a branch, not a select: no read past the batch's rows
    }
#endif
    uint kv_head = h0 / p.group;
    uint slot_mask = (1u << p.page_shift) - 1u;
    for (uint tile = key_begin, guard = 0u; tile < key_end; tile += WG * KEYS_PER_LANE) {
        LOOP_GUARD(guard, p.split_len);
        float score[KEYS_PER_LANE * R]; // key i's score for row r at i * R + r
        uint base[KEYS_PER_LANE];
        bool valid[KEYS_PER_LANE];
        float tile_max[R];
        [[unroll]] for (uint r = 0u; r < R; r++) tile_max[r] = NO_SCORE;
        for (uint i = 0; i < KEYS_PER_LANE; i++) {
            uint key = tile + i * WG + lane;
            [[unroll]] for (uint r = 0u; r < R; r++) score[i * R + r] = NO_SCORE;
            base[i] = 0u;
            bool sees[TP], seen = false;
            [[unroll]] for (uint tp = 0u; tp < TP; tp++) {
                sees[tp] = tok_on[tp] && key < tok_end[tp];
#if defined(TREE)
                if (sees[tp] && key >= tr[tp].x) {
                    const uint b = key - tr[tp].x;
                    sees[tp] = b < 64u && (((b < 32u ? tr[tp].y >> b : tr[tp].z >> (b - 32u)) & 1u) != 0u);
                }
#endif
                seen = seen || sees[tp];
            }
            int page = seen ? page_table[seq_pages + (key >> p.page_shift)] : -1;
            valid[i] = page >= 0 && uint(page) < p.n_pages;
            if (valid[i]) {
                base[i] = uint(page) << p.page_shift | (key & slot_mask);
                key_dots(base[i], kv_head);
#if defined(K_CENTER)
                if (CENTER_PAIRS > 0u) center_dots();
#endif
                [[unroll]] for (uint r = 0u; r < R; r++)
                    if (sees[r / GP]) {
                        score[i * R + r] = dots[r];
                        tile_max[r] = max(tile_max[r], dots[r]);
                    }
            }
#if defined(K_CENTER)
            if (CENTER_PAIRS > 0u) center_next();
#endif
        }
        // A row whose tile has no score skips it, as it would alone.
        bool any = false;
        float new_max[R];
        [[unroll]] for (uint r = 0u; r < R; r++) {
            new_max[r] = run_max[r];
            if (tile_max[r] == NO_SCORE) continue;
            any = true;
            new_max[r] = max(run_max[r], tile_max[r]);
            float rescale = exp2(run_max[r] - new_max[r]);
            run_sum[r] *= rescale;
            for (uint c = 0; c < HD4; c++) acc[r * HD4 + c] *= rescale;
        }
        if (!any) continue;
        for (uint i = 0; i < KEYS_PER_LANE; i++) {
            if (!valid[i]) continue;
            bool some = false;
            [[unroll]] for (uint r = 0u; r < R; r++) {
                vtake[r] = tile_max[r] != NO_SCORE && score[i * R + r] != NO_SCORE;
                vw[r] = 0.0;
                if (vtake[r]) {
                    vw[r] = exp2(score[i * R + r] - new_max[r]);
                    run_sum[r] += vw[r];
                    some = true;
                }
            }
            if (some) value_adds(base[i], kv_head);
        }
        [[unroll]] for (uint r = 0u; r < R; r++) run_max[r] = new_max[r];
    }

    // Merge the invocations, row by row: rescale each to the workgroup's max, then sum.
    [[unroll]] for (uint r = 0u; r < R; r++) {
        if (!tok_on[r / GP]) continue; // uniform: the pass's tokens are the workgroup's
        const uint row = (t0 + r / GP) * p.n_heads + h0 + r % GP;
#if defined(USE_SUBGROUP)
        // The workgroup is one subgroup (the host runs these variants only then: ops_attention_reads_texels), so the
        // merge runs in registers, with no shared memory and no barrier (measured on lavapipe: the shared-memory
        // merge costs every workgroup even as an untaken fallback).
        const float wg_max = subgroupMax(run_max[r]);
        const float factor = exp2(run_max[r] - wg_max);
        const float wg_sum = subgroupAdd(run_sum[r] * factor);
#else
        // (The next row writes sh_max only after its first barrier, which every invocation reaches after its last
        // read of this row's sh_sum and sh_acc.)
        sh_max[lane] = run_max[r];
        barrier();
        float wg_max = NO_SCORE;
        for (uint j = 0; j < WG; j++) wg_max = max(wg_max, sh_max[j]);
        const float factor = exp2(run_max[r] - wg_max);
        sh_sum[lane] = run_sum[r] * factor;
        for (uint c = 0; c < HD4; c++) sh_acc[c * WG + lane] = acc[r * HD4 + c] * factor;
        barrier();
        float wg_sum = 0.0;
        for (uint j = 0; j < WG; j++) wg_sum += sh_sum[j];
#endif
        const uint record = (row * p.n_splits + split) * (HD4 + 1u);
        if (p.n_splits > 1 && lane == 0) out4[record] = vec4(wg_max, wg_sum, 0.0, 0.0);
#if defined(USE_SUBGROUP)
        for (uint c = 0; c < HD4; c++) {
            const vec4 a = subgroupAdd(acc[r * HD4 + c] * factor);
            if (c % WG == lane) store_chunk(row, record, c, a, wg_sum);
        }
#else
        for (uint c = lane; c < HD4; c += WG) {
            vec4 a = vec4(0.0);
            for (uint j = 0; j < WG; j++) a += sh_acc[c * WG + j];
            store_chunk(row, record, c, a, wg_sum);
        }
#endif
#if defined(QUANTIZE_Q8)
        attn_q8_store(row);
        if (r + 1u < R) barrier(); // the next row stages into the same shared arrays (R is a constant)
#endif
    }
}

// Workgroup (group of TP tokens, group of heads_per_wg heads, split): the tokens' setup once, then for each run of
// them of one sequence (a pass) their heads in turn.  Where a workgroup's fixed cost is large against a head's work
// (lavapipe, short contexts), fewer workgroups do the same arithmetic; GPUs keep one head of one token per workgroup
// for parallelism (the host's choice, src/ops/flash_attn.c).
void main()
{
    const uint wg = linear_group();
    const uint head_groups = (p.n_heads + p.heads_per_wg - 1u) / p.heads_per_wg;
    const uint token_groups = (p.n_tokens + TP - 1u) / TP;
    if (wg >= token_groups * head_groups * p.n_splits) return;
    const uint split = wg % p.n_splits;
    const uint hg = (wg / p.n_splits) % head_groups;
    const uint t0 = wg / p.n_splits / head_groups * TP;
    g_row = p.n_kv_heads * HD4 * 4u;

    // Each token's sequence (-1: out of range, no keys) and end of keys; those with keys in this split are pending.
    const uint key_begin = split * p.split_len;
    int tok_seq[TP];
    uint pending = 0u;
    [[unroll]] for (uint tp = 0u; tp < TP; tp++) {
        tok_on[tp] = false;
        tok_end[tp] = key_begin;
        tok_seq[tp] = -1;
        if (t0 + tp >= p.n_tokens) continue;
        ivec2 sp = token_slot(tokens[t0 + tp]);
        bool valid = sp.x >= 0 && uint(sp.x) < p.n_seqs && sp.y >= 0 &&
                     (uint(sp.y) >> p.page_shift) < p.max_pages_per_seq;
        uint context = valid ? min(uint(sp.y) + 1u, p.n_splits * p.split_len) : 0u;
        tok_end[tp] = min(context, key_begin + p.split_len);
        tok_seq[tp] = valid ? sp.x : -1;
        if (p.n_splits > 1 && key_begin >= tok_end[tp]) continue; // the combine skips this split
        pending |= 1u << tp;
    }

    // heads_per_wg is a multiple of GP, and GP divides the heads of a KV head (the host's plan): whole passes.
    const uint h_end = min(p.n_heads, (hg + 1u) * p.heads_per_wg);
#if defined(QUANTIZE_Q8)
    bool staged = false; // a pass before this one staged into the shared arrays
#endif
    for (uint guard = 0u; pending != 0u;) {
        LOOP_GUARD(guard, TP);
        const int s = tok_seq[findLSB(pending)];
        [[unroll]] for (uint tp = 0u; tp < TP; tp++) {
            tok_on[tp] = ((pending >> tp) & 1u) != 0u && tok_seq[tp] == s;
            if (tok_on[tp]) pending &= ~(1u << tp);
        }
        const uint seq_pages = s >= 0 ? uint(s) * p.max_pages_per_seq : 0u;
        for (uint h = hg * p.heads_per_wg, guard_h = 0u; h < h_end; h += GP) {
            LOOP_GUARD(guard_h, p.heads_per_wg);
#if defined(QUANTIZE_Q8)
            if (staged) barrier(); // uniform: every invocation has run the same passes
            staged = true;
#endif
            attend_rows(t0, h, split, key_begin, seq_pages);
        }
    }
}
