#version 450
// Flash attention for prompts on cooperative matrices (tensor cores): the same result as flash_attn.comp, for
// batches of many tokens.  flash_attn.comp gives each (token, head) its own workgroup, so every token reads all
// of its keys again; here a workgroup takes BR consecutive tokens of one head and reads each tile of BC keys
// once for all of them:
//   S = Q K^T   (BR x BC: one CM_M-row strip per subgroup, Q held in registers as fragments)
//   P = exp2(S - rowmax)   (f16, in shared memory, by one invocation per row)
//   O += P V    (BR x D: the subgroup's strip as D / CM_N accumulators)
// Two passes over the keys instead of the online rescaling of O: the first finds each row's final maximum,
// the second accumulates with it.  O then never needs a rescale (an accumulator's elements cannot be scaled
// per row without knowing how the device spreads them over lanes), at the cost of computing S twice, which
// is the cheap half of the work.
//
// Tokens of a batch may belong to several sequences (a prompt chunk beside decode tokens): the workgroup runs
// both passes once per distinct sequence among its rows (usually one), over that sequence's pages, and a row
// takes only the keys of its own sequence at positions 0..pos (and below max_context).  Rows of other
// sequences, past the batch or with a bad token get probability 0 for those keys; a row without any key gets
// a zero output, as in flash_attn.comp.
//
// Shared memory: the K and V tiles (rows padded by 8 halves: cooperative-matrix loads need 16-byte aligned
// rows), the scores S in f32, P in f16, per-row state.  Q is staged through the K/V tiles before the first
// tile (so BR <= 2 BC; the host checks), except in the emulated variant, whose fragments are offsets into a
// Q tile of its own.  Scores are in base 2: q is scaled by scale * log2(e) before its f16 rounding.
//
// Variants as matmul_coopmat.comp: COOPMAT_NV (GL_NV_cooperative_matrix; the KHR variant is that binary
// rewritten, so every matrix is sized by the spec constants CM_M, CM_N, CM_K and every layout is a literal);
// COOPMAT_EMULATE: plain GLSL with the same tiles, barriers and roundings, for devices without matrices.
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#if !defined(COOPMAT_EMULATE)
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
#include "common.glsl"
#include "kv_cache.glsl"

// The emulated variant keeps its loops rolled: unrolled, the scalar matrix products make a pipeline that
// lavapipe takes minutes to compile, and only tests run it.
#if defined(COOPMAT_EMULATE)
#define UNROLL [[dont_unroll]]
#else
#define UNROLL [[unroll]]
#endif

layout(constant_id = 1) const uint D = 64;  // head_dim: a multiple of CM_K and CM_N
layout(constant_id = 2) const uint BC = 32; // keys per tile: a multiple of CM_K and CM_N
layout(constant_id = 4) const uint SG = 32; // subgroup size (pinned by the host for the real variants)
// The cooperative-matrix size; ids 8..10 are what cmake/shaders.cmake tells the KHR rewriter.
layout(constant_id = 8) const uint CM_M = 16;
layout(constant_id = 9) const uint CM_N = 16;
layout(constant_id = 10) const uint CM_K = 16;

layout(std430, binding = 0) readonly buffer Q { vec4 q4[]; };            // [n_tokens][n_heads][D / 4]
layout(std430, binding = 1) readonly buffer KCache { KV_CHUNK k_cache[]; };
layout(std430, binding = 2) readonly buffer VCache { KV_CHUNK v_cache[]; };
layout(std430, binding = 3) readonly buffer Pages { int page_table[]; }; // [n_seqs][max_pages_per_seq]
layout(std430, binding = 4) readonly buffer Tokens { ivec2 tokens[]; };  // {seq, pos}
layout(std430, binding = 5) writeonly buffer Out { float out_[]; };      // [n_tokens][n_heads][D]

layout(push_constant) uniform Push {
    uint n_tokens, n_heads, group, n_kv_heads; // group = n_heads / n_kv_heads
    uint page_shift, n_pages, n_seqs, max_pages_per_seq;
    uint max_context;                          // keys at positions >= max_context are ignored
    float scale_log2;
} p;

const float NO_SCORE = -3.0e38;
const uint WG = gl_WorkGroupSize.x;
const uint NSG = WG / SG;         // subgroups
const uint BR = NSG * CM_M;       // query rows (tokens) per workgroup: CM_M per subgroup
const uint SK = D + 8u;           // row stride of the Q, K and V tiles, in halves
const uint SS = BC + 4u;          // row stride of the scores, in floats
const uint SP = BC + 8u;          // row stride of the probabilities, in halves
const uint C4 = D / 4u;           // 4-element chunks per row of a head
const uint FD = D / CM_K;         // Q fragments along the head
const uint FS = BC / CM_N;        // score accumulators of a subgroup's strip
const uint FP = BC / CM_K;        // P fragments along the keys
const uint FO = D / CM_N;         // output accumulators of a subgroup's strip

shared float16_t kv_sh[2u * BC * SK]; // [key][dim] of K, then of V
shared float s_sh[BR * SS];           // [row][key] scores; the output on its way out
shared float16_t p_sh[BR * SP];       // [row][key] probabilities
shared float row_max[BR], row_sum[BR];
shared int row_seq[BR];               // -1: no token, or a bad one
shared uint row_last[BR];             // the row's last key position
shared uint key_ok[BC];               // the tile's key lies on a valid page

#if defined(COOPMAT_EMULATE)
shared float16_t q_sh[BR * SK];
// As in matmul_coopmat.comp: a fragment records where it was read from (offset, stride, column-major), the
// mul-add reads the tile through it (nothing writes a tile between a fragment's load and its use), and an
// accumulator is spread over the SG invocations of a subgroup: lane holds elements lane, lane + SG, ...
const uint CM_ELEMS = CM_M * CM_N / SG;
float s_acc[FS * CM_ELEMS];
float o_acc[FO * CM_ELEMS];
uvec3 qf[FD];
#define SUBGROUP_ID (gl_LocalInvocationIndex / SG)
#define LANE (gl_LocalInvocationIndex % SG)
#define FRAG_A uvec3
#define LOAD_Q(i, off) qf[i] = uvec3(off, SK, 0u)
#define S_ZERO(j) emu_zero_s(j)
#define S_MULADD(j, kd, boff) emu_qk(j, qf[kd], uvec3(boff, SK, 1u))
#define S_STORE(j, off) emu_store_s(j, off)
#define O_ZERO(j) emu_zero_o(j)
#define P_LOAD(a, off) a = uvec3(off, SP, 0u)
#define O_MULADD(j, a, boff) emu_pv(j, a, uvec3(boff, SK, 0u))
#define O_STORE(j, off) emu_store_o(j, off)

uint emu_at(uvec3 f, uint r, uint c) { return f.x + (f.z != 0u ? c * f.y + r : r * f.y + c); }
void emu_zero_s(uint j)
{
    for (uint e = 0u; e < CM_ELEMS; e++) s_acc[j * CM_ELEMS + e] = 0.0;
}
void emu_zero_o(uint j)
{
    for (uint e = 0u; e < CM_ELEMS; e++) o_acc[j * CM_ELEMS + e] = 0.0;
}
void emu_qk(uint j, uvec3 a, uvec3 b)
{
    for (uint e = 0u; e < CM_ELEMS; e++) {
        const uint el = LANE + e * SG, m = el / CM_N, n = el % CM_N;
        float sum = s_acc[j * CM_ELEMS + e];
        for (uint k = 0u; k < CM_K; k++) sum = fma(float(q_sh[emu_at(a, m, k)]), float(kv_sh[emu_at(b, k, n)]), sum);
        s_acc[j * CM_ELEMS + e] = sum;
    }
}
void emu_pv(uint j, uvec3 a, uvec3 b)
{
    for (uint e = 0u; e < CM_ELEMS; e++) {
        const uint el = LANE + e * SG, m = el / CM_N, n = el % CM_N;
        float sum = o_acc[j * CM_ELEMS + e];
        for (uint k = 0u; k < CM_K; k++) sum = fma(float(p_sh[emu_at(a, m, k)]), float(kv_sh[emu_at(b, k, n)]), sum);
        o_acc[j * CM_ELEMS + e] = sum;
    }
}
void emu_store_s(uint j, uint off)
{
    for (uint e = 0u; e < CM_ELEMS; e++) {
        const uint el = LANE + e * SG;
        s_sh[off + (el / CM_N) * SS + el % CM_N] = s_acc[j * CM_ELEMS + e];
    }
}
void emu_store_o(uint j, uint off)
{
    for (uint e = 0u; e < CM_ELEMS; e++) {
        const uint el = LANE + e * SG;
        s_sh[off + (el / CM_N) * SS + el % CM_N] = o_acc[j * CM_ELEMS + e];
    }
}
#else
#define q_sh kv_sh // Q is staged in the K/V tiles, read into registers before the first tile
#define SUBGROUP_ID gl_SubgroupID
#define FRAG_A fcoopmatNV<16, gl_ScopeSubgroup, CM_M, CM_K>
#define FRAG_B fcoopmatNV<16, gl_ScopeSubgroup, CM_K, CM_N>
#define ACC_T fcoopmatNV<32, gl_ScopeSubgroup, CM_M, CM_N>
FRAG_A qf[FD];
ACC_T s_acc[FS];
ACC_T o_acc[FO];
#define LOAD_Q(i, off) coopMatLoadNV(qf[i], kv_sh, off, SK, false)
#define S_ZERO(j) s_acc[j] = ACC_T(0.0)
#define S_MULADD(j, kd, boff)                                                                                         \
    {                                                                                                                 \
        FRAG_B b_;                                                                                                    \
        coopMatLoadNV(b_, kv_sh, boff, SK, true);                                                                     \
        s_acc[j] = coopMatMulAddNV(qf[kd], b_, s_acc[j]);                                                             \
    }
#define S_STORE(j, off) coopMatStoreNV(s_acc[j], s_sh, off, SS, false)
#define O_ZERO(j) o_acc[j] = ACC_T(0.0)
#define P_LOAD(a, off) coopMatLoadNV(a, p_sh, off, SP, false)
#define O_MULADD(j, a, boff)                                                                                          \
    {                                                                                                                 \
        FRAG_B b_;                                                                                                    \
        coopMatLoadNV(b_, kv_sh, boff, SK, false);                                                                    \
        o_acc[j] = coopMatMulAddNV(a, b_, o_acc[j]);                                                                  \
    }
#define O_STORE(j, off) coopMatStoreNV(o_acc[j], s_sh, off, SS, false)
#endif

// Keys kb.. of the sequence whose page-table row starts at `pages` into the K tile (and the V tile), f16;
// zeros past `keys` or behind a bad page entry, which key_ok marks.
void load_tile(uint pages, uint kb, uint keys, uint kv_head, bool with_v)
{
    const uint slot_mask = (1u << p.page_shift) - 1u;
    for (uint i = gl_LocalInvocationID.x, guard = 0u; i < BC * C4; i += WG) {
        LOOP_GUARD(guard, BC * C4);
        const uint j = i / C4, c = i % C4, key = kb + j;
        vec4 k = vec4(0.0), v = vec4(0.0);
        bool ok = false;
        if (key < keys) {
            const int page = page_table[pages + (key >> p.page_shift)];
            if (page >= 0 && uint(page) < p.n_pages) {
                const uint at = ((uint(page) * p.n_kv_heads + kv_head) << p.page_shift | (key & slot_mask)) * C4 + c;
                k = kv_unpack(k_cache[at]);
                if (with_v) v = kv_unpack(v_cache[at]);
                ok = true;
            }
        }
        if (c == 0u) key_ok[j] = ok ? 1u : 0u;
        UNROLL for (uint e = 0u; e < 4u; e++) kv_sh[j * SK + 4u * c + e] = float16_t(k[e]);
        if (with_v) UNROLL for (uint e = 0u; e < 4u; e++) kv_sh[(BC + j) * SK + 4u * c + e] = float16_t(v[e]);
    }
}

void main()
{
    const uint lid = gl_LocalInvocationID.x;
    const uint t0 = gl_WorkGroupID.x * BR, h = gl_WorkGroupID.y, kv_head = h / p.group;
    const uint r0 = SUBGROUP_ID * CM_M; // the subgroup's strip of rows

    for (uint r = lid, guard = 0u; r < BR; r += WG) {
        LOOP_GUARD(guard, BR);
        const uint t = t0 + r;
        int seq = -1;
        uint last = 0u;
        if (t < p.n_tokens) {
            const ivec2 sp = token_slot(tokens[t]);
            if (sp.x >= 0 && uint(sp.x) < p.n_seqs && sp.y >= 0 &&
                (uint(sp.y) >> p.page_shift) < p.max_pages_per_seq) {
                seq = sp.x;
                last = min(uint(sp.y), p.max_context - 1u);
            }
        }
        row_seq[r] = seq;
        row_last[r] = last;
        row_max[r] = NO_SCORE;
        row_sum[r] = 0.0;
    }
    for (uint i = lid, guard = 0u; i < BR * C4; i += WG) {
        LOOP_GUARD(guard, BR * C4);
        const uint r = i / C4, c = i % C4, t = t0 + r;
        const vec4 v = t < p.n_tokens ? q4[(t * p.n_heads + h) * C4 + c] * p.scale_log2 : vec4(0.0);
        UNROLL for (uint e = 0u; e < 4u; e++) q_sh[r * SK + 4u * c + e] = float16_t(v[e]);
    }
    barrier();
    UNROLL for (uint i = 0u; i < FD; i++) LOAD_Q(i, r0 * SK + i * CM_K);
    UNROLL for (uint j = 0u; j < FO; j++) O_ZERO(j);
    barrier(); // Q is in registers before the first K tile overwrites its staging

    // Each distinct sequence among the rows, in increasing order: every invocation reads the same shared
    // row_seq, so the loop and its barriers are uniform.
    int done = -1;
    for (uint round = 0u, guard = 0u; round < BR; round++) {
        LOOP_GUARD(guard, BR);
        int cur = int(p.n_seqs);
        for (uint r = 0u; r < BR; r++)
            if (row_seq[r] > done && row_seq[r] < cur) cur = row_seq[r];
        if (cur == int(p.n_seqs)) break;
        uint keys = 0u;
        for (uint r = 0u; r < BR; r++)
            if (row_seq[r] == cur) keys = max(keys, row_last[r] + 1u);
        done = cur;
        const uint pages = uint(cur) * p.max_pages_per_seq;

        for (uint pass = 0u; pass < 2u; pass++) {
            for (uint kb = 0u, guard2 = 0u; kb < keys; kb += BC) {
                LOOP_GUARD(guard2, p.max_context);
                load_tile(pages, kb, keys, kv_head, pass == 1u);
                barrier();
                UNROLL for (uint j = 0u; j < FS; j++) {
                    S_ZERO(j);
                    UNROLL for (uint kd = 0u; kd < FD; kd++) S_MULADD(j, kd, j * CM_N * SK + kd * CM_K);
                    S_STORE(j, r0 * SS + j * CM_N);
                }
                barrier();
                for (uint r = lid, guard3 = 0u; r < BR; r += WG) {
                    LOOP_GUARD(guard3, BR);
                    const bool mine = row_seq[r] == cur;
                    const uint last = row_last[r];
                    const float m = row_max[r];
                    if (pass == 0u) {
                        float most = m;
                        UNROLL for (uint j = 0u; j < BC; j++)
                            if (mine && kb + j <= last && key_ok[j] != 0u) most = max(most, s_sh[r * SS + j]);
                        row_max[r] = most;
                    } else {
                        float sum = row_sum[r];
                        UNROLL for (uint j = 0u; j < BC; j++) {
                            float16_t pr = float16_t(0.0);
                            if (mine && kb + j <= last && key_ok[j] != 0u) {
                                pr = float16_t(exp2(s_sh[r * SS + j] - m));
                                sum += float(pr);
                            }
                            p_sh[r * SP + j] = pr;
                        }
                        row_sum[r] = sum;
                    }
                }
                barrier();
                if (pass == 1u) {
                    UNROLL for (uint kk = 0u; kk < FP; kk++) {
                        FRAG_A a;
                        P_LOAD(a, r0 * SP + kk * CM_K);
                        UNROLL for (uint j = 0u; j < FO; j++) O_MULADD(j, a, (BC + kk * CM_K) * SK + j * CM_N);
                    }
                }
                barrier(); // the tiles and P are read before the next tile overwrites them
            }
        }
    }

    // Each output accumulator through the subgroup's rows of s_sh (CM_N <= BC columns), then out, divided by
    // the row's sum: consecutive invocations write consecutive elements of a row.
    UNROLL for (uint j = 0u; j < FO; j++) {
        O_STORE(j, r0 * SS);
        barrier();
        for (uint i = lid, guard = 0u; i < BR * CM_N; i += WG) {
            LOOP_GUARD(guard, BR * CM_N);
            const uint r = i / CM_N, c = i % CM_N, t = t0 + r;
            const float sum = row_sum[r];
            if (t < p.n_tokens) out_[(t * p.n_heads + h) * D + j * CM_N + c] = sum > 0.0 ? s_sh[r * SS + c] / sum : 0.0;
        }
        barrier();
    }
}
