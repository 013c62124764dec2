#version 450
// Mat-vec for decoding: y[c][row] = sum_k W[row][k] * x[c][k] for NCOL columns of x at once, so the weights
// are read once for all of them (workgroup z picks further blocks of NCOL columns: on CPU-like devices this
// also serves batches, see matmul_min_n).  W is a repacked weight matrix (dequant.glsl, one TYPE_* define).
//
// Work split (specialization constants from src/tuning/tuning.c):
//   - SPLIT invocations form an "invocation group" that owns ROWS rows; each takes every SPLIT-th weight
//     group of those rows and keeps ROWS x NCOL partial sums in registers.
//   - CPU-like devices (lavapipe) use SPLIT = 1 and ROWS = 16: the chunk of x is loaded once (the address is
//     the same in every lane, so one scalar load) and reused across the rows; no barrier in the loop.
//   - GPUs use SPLIT of about a subgroup (coalesced uvec4 loads of consecutive groups), and reduce at the end:
//     SUBGROUP: subgroupAdd where SPLIT is the subgroup size; shuffle-xor butterflies inside each run of
//     SPLIT lanes where it is smaller (several row groups per subgroup); subgroupAdd, then shared memory
//     across subgroups where it spans several.  Otherwise shared memory only.
//   - A column's sums do not depend on NCOL or on the other columns (the same operations in the same order;
//     explicit fma and `precise` per-group values leave the compiler nothing to contract differently), so a
//     column computed alone or among 8 gives the same bits (speculative decoding verifies in one pass).
// INT_DOT, the integer path (quantized types): x comes quantized to 8-bit blocks of 32 (quantize_q8.comp,
// q8.glsl); per group, the integer dot products of the weight levels (dequant.glsl levels()) with x's levels
// over each 16 weights, then one float expression per group (group_dot()).  INT_DOT_EXT takes the dot
// products of 4 int8 pairs from SPV_KHR_integer_dot_product (OpSDot), else from plain integer arithmetic.
// FP16: the 8-weight dot products run in f16 (levels and x rounded to f16), sums in f32.  Only for types whose
// levels are centred (no HAS_MIN): an f16 dot of levels 0..15, cancelled afterwards against m * sum(x), kept
// the f16 rounding of the large dot in a small result (Q4_1 1x32: nmse 0.014 on lavapipe, 0.0045 on an H200).
// TEXEL_LOADS: weights and x read as texels (uniform texel buffers), which lavapipe gathers with vector
// addressing where a storage-buffer load at a per-lane address is a scalar loop over the lanes.  With X_SHUFFLE
// the 8 lanes of the workgroup share the loads of x: every lane needs the same 8 values of each column per
// step, which lavapipe cannot see (it gathers them lane by lane, once per lane and column), so lane l fetches
// texel l of the step's 2 x NCOL texels and the others take it by subgroupShuffle with a constant lane.
// Fused epilogues (rows come in pairs (2i, 2i+1), which one invocation group always holds, ROWS being even):
//   STORE_SWIGLU: W stacks gate and up rows alternately; y[c][i] = silu(gate_i) * up_i, y_stride = rows / 2.
//   STORE_QKV: W stacks Q, K and V; pairs go through qkv_store.glsl (bias, RoPE, Q out, paged KV cache).
#extension GL_EXT_control_flow_attributes : require
#if defined(FP16)
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif
#if defined(SUBGROUP)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#if defined(INT_DOT_EXT)
#extension GL_EXT_spirv_intrinsics : require
#endif
#if defined(TEXEL_LOADS)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"
#include "dequant.glsl"
#if defined(FP16) && defined(HAS_MIN)
#error "matvec.comp: FP16 only for types with centred levels (see above)"
#endif
#if defined(INT_DOT) && (defined(FP16) || defined(TEXEL_LOADS))
#error "matvec.comp: INT_DOT computes in integers from storage buffers"
#endif

layout(constant_id = 1) const uint ROWS = 8;  // rows per invocation group
layout(constant_id = 2) const uint SPLIT = 1; // invocations per invocation group (power of two)
layout(constant_id = 3) const uint NCOL = 1;  // columns of x per dispatch (1..OPS_MATVEC_MAX_COLS)
layout(constant_id = 4) const bool X_ALIGNED = true; // cols % 4 == 0: x's rows are whole vec4s (only the float
                                                     // types allow other cols, and cols % 8 == 4)
// TEXEL_LOADS: lanes 0..7 of the workgroup are in one subgroup (the host's condition), so they share x's loads
layout(constant_id = 5) const bool X_SHUFFLE = false;

#if defined(INT_DOT)
#include "q8.glsl"
layout(std430, binding = 2) readonly buffer XQ4 { uvec4 xq4[]; }; // [n][Q8_COL_WORDS(cols)] words, q8.glsl
layout(std430, binding = 2) readonly buffer XQ2 { uvec2 xq2[]; };
#elif defined(TEXEL_LOADS)
// [n][cols] through a uniform texel buffer: the host views it as RGBA32F when X_ALIGNED, else as R32F.
layout(binding = 2) uniform samplerBuffer x_texels;
#define X_AT(i) texelFetch(x_texels, int(i)).x
#define X4_AT(i) texelFetch(x_texels, int(i))
#else
layout(std430, binding = 2) readonly buffer X { float x[]; };    // [n][cols]
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; };  // the same floats, 4 by 4
#define X_AT(i) x[i]
#define X4_AT(i) x4[i]
#endif
#if defined(STORE_QKV)
#define QKV_BINDING 3
#include "qkv_store.glsl"
#else
layout(std430, binding = 3) writeonly buffer Y { float y[]; };  // [n][y_stride]
#endif

layout(push_constant) uniform Push {
    uint rows;     // rows of this chunk of W
    uint cols;     // elements per column of x
    uint groups;   // repacked groups per row
    uint col0;     // first column of x (and y) of this dispatch; workgroup z takes NCOL more each
    uint y_stride; // elements between columns of y (rows of the whole matrix)
    uint y_row0;   // row of y of this chunk's first row
#if defined(STORE_QKV)
    QkvParams qkv;
#endif
} p;

#if defined(STORE_QKV) || defined(STORE_SWIGLU)
#define PAIRED_STORE 1
// Rows `row` (even, of this chunk) and row + 1 of column col.
void store_pair(uint col, uint row, float a, float b)
{
#if defined(STORE_QKV)
    qkv_store_pair(p.qkv, col, p.y_row0 + row, a, b);
#else
    y[col * (p.y_stride / 2u) + (p.y_row0 + row) / 2u] = a / (1.0 + exp(-a)) * b;
#endif
}
#else
void store_one(uint col, uint row, float v) { y[col * p.y_stride + p.y_row0 + row] = v; }
#endif

const uint INV_GROUPS = gl_WorkGroupSize.x / SPLIT; // invocation groups per workgroup
shared float partial[gl_WorkGroupSize.x * ROWS * NCOL];

#if !defined(INT_DOT)
#if defined(FP16)
#define XVEC f16vec4
#else
#define XVEC vec4
#endif

// Elements k..k+7 of column col of x.  The loop counters make every address here differ per lane as far as
// lavapipe knows, so each load is a gather of one value per lane: two aligned vec4 loads cost 4x fewer
// gathers than eight floats (measured 1.6x faster for Q4_0 with 8 columns).
void load_x8(uint col, uint k, out vec4 l, out vec4 h)
{
    const uint i = col * p.cols + k;
#if defined(PADDED_ROWS)
    // The last group of a row may run past cols (zero weights), and odd cols misalign the vec4s.
    if (!X_ALIGNED) {
        float v[8];
        [[unroll]] for (uint e = 0; e < 8u; e++) v[e] = k + e < p.cols ? X_AT(i + e) : 0.0;
        l = vec4(v[0], v[1], v[2], v[3]);
        h = vec4(v[4], v[5], v[6], v[7]);
        return;
    }
#endif
    l = X4_AT(i / 4u);
#if defined(PADDED_ROWS)
    // cols % 8 == 4: the last group's second half lies past the row (zero weights there): zeros, as above, and
    // no read past the row (the last column's would leave x)
    if (k + 4u >= p.cols) {
        h = vec4(0.0);
        return;
    }
#endif
    h = X4_AT(i / 4u + 1u);
}
#endif

float acc[ROWS][NCOL]; // this invocation's partial sums

#if defined(TEXEL_LOADS)
const uint X_ROUNDS = (2u * NCOL + 7u) / 8u; // fetches per lane for the 2 x NCOL texels of a step (X_SHUFFLE)
#endif

#if defined(INT_DOT)
#if defined(INT_DOT_EXT)
// OpSDot with PackedVectorFormat4x8Bit: the sum of the products of the four int8 pairs of a and b.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot_4x8(uint a, uint b, spirv_literal int packed_vector_format);
int dot4(uint a, uint b) { return sdot_4x8(a, b, 0); }
#else
int dot4(uint a, uint b)
{
    ivec4 u = ivec4(uvec4(a << 24, a << 16, a << 8, a)) >> 24, v = ivec4(uvec4(b << 24, b << 16, b << 8, b)) >> 24;
    return u.x * v.x + u.y * v.y + u.z * v.z + u.w * v.w;
}
#endif

const uint XB = GROUP / 32u; // x blocks per weight group
const uint UNITS = GROUP / 16u;

// The groups g of rows base[r] + g times the NCOL columns of quantized x from col0.
void int_step(uint base[ROWS], uint g, uint col0)
{
    Group grp[ROWS];
    uint lv[ROWS][GROUP / 4u];
    [[unroll]] for (uint r = 0; r < ROWS; r++) {
        grp[r] = load_group(base[r] + g);
        levels(grp[r], lv[r]);
    }
    const uint col_words = Q8_COL_WORDS(p.cols), level_words = Q8_LEVEL_WORDS(p.cols);
    [[unroll]] for (uint c = 0; c < NCOL; c++) {
        const uint cw = (col0 + c) * col_words;
        uvec4 xw[UNITS]; // unit u: words 4u..4u+3 of the group's stretch of x
        int xs[UNITS];
        float dx[XB];
        [[unroll]] for (uint b = 0; b < XB; b++) {
            const uint blk = g * XB + b;
            xw[2u * b] = xq4[cw / 4u + 2u * blk];
            xw[2u * b + 1u] = xq4[cw / 4u + 2u * blk + 1u];
            const uvec2 ds = xq2[(cw + level_words) / 2u + blk];
            dx[b] = uintBitsToFloat(ds.x);
            xs[2u * b] = int(ds.y << 16) >> 16;
            xs[2u * b + 1u] = int(ds.y) >> 16;
        }
        [[unroll]] for (uint r = 0; r < ROWS; r++) {
            int s[UNITS];
            [[unroll]] for (uint u = 0; u < UNITS; u++)
                s[u] = dot4(lv[r][4u * u], xw[u].x) + dot4(lv[r][4u * u + 1u], xw[u].y) +
                       dot4(lv[r][4u * u + 2u], xw[u].z) + dot4(lv[r][4u * u + 3u], xw[u].w);
            acc[r][c] += group_dot(grp[r], s, xs, dx);
        }
    }
}
#endif

// Stores the sums of rows first..first + ROWS - 1 (those below p.rows) for the NCOL columns from col0.
void store_block(uint first, uint col0)
{
#if defined(STORE_QKV)
    // What depends only on the row, or only on the token, once: the stores of a row's NCOL tokens share its RoPE
    // frequency, the pairs of a token its cache slot.
    QkvRow rw[ROWS / 2u];
    [[unroll]] for (uint r = 0; r < ROWS; r += 2u) rw[r / 2u] = qkv_row(p.qkv, p.y_row0 + first + r);
    [[unroll]] for (uint c = 0; c < NCOL; c++) {
        const QkvToken tk = qkv_token(p.qkv, col0 + c);
        [[unroll]] for (uint r = 0; r < ROWS; r += 2u)
            if (first + r < p.rows)
                qkv_store_pair_at(p.qkv, tk, rw[r / 2u], col0 + c, p.y_row0 + first + r, acc[r][c], acc[r + 1u][c]);
    }
    return;
#endif
    [[unroll]] for (uint c = 0; c < NCOL; c++)
#if defined(PAIRED_STORE)
        [[unroll]] for (uint r = 0; r < ROWS; r += 2u)
            if (first + r < p.rows) store_pair(col0 + c, first + r, acc[r][c], acc[r + 1u][c]);
#else
        [[unroll]] for (uint r = 0; r < ROWS; r++)
            if (first + r < p.rows) store_one(col0 + c, first + r, acc[r][c]);
#endif
}

// Sum over the parts of element o of `partial` (shared-memory reduction).
float reduced(uint o, uint parts)
{
    float sum = 0.0;
    for (uint i = 0, guard = 0u; i < parts; i++) {
        LOOP_GUARD(guard, SPLIT);
        sum += partial[o * parts + i];
    }
    return sum;
}

void main()
{
    const uint lid = gl_LocalInvocationID.x;
    const uint sub = lid % SPLIT;
    const uint first_row = (linear_group() * INV_GROUPS + lid / SPLIT) * ROWS;
    const uint col0 = p.col0 + gl_WorkGroupID.z * NCOL;

    uint base[ROWS]; // first group of each row; rows past the end read the last row and are not written
    [[unroll]] for (uint r = 0; r < ROWS; r++) base[r] = min(first_row + r, p.rows - 1u) * p.groups;

    [[unroll]] for (uint r = 0; r < ROWS; r++)
        [[unroll]] for (uint c = 0; c < NCOL; c++) acc[r][c] = 0.0;

#if defined(INT_DOT)
    for (uint g = sub, guard = 0u; g < p.groups; g += SPLIT) {
        LOOP_GUARD(guard, p.groups);
        int_step(base, g, col0);
    }
#else
    for (uint g = sub, guard = 0u; g < p.groups; g += SPLIT) {
        LOOP_GUARD(guard, p.groups);
        Group grp[ROWS];
        [[unroll]] for (uint r = 0; r < ROWS; r++) grp[r] = load_group(base[r] + g);
        // Unrolled so that the chunk's word of the group is a constant index (measured on lavapipe: Q4_0
        // n = 1 1.3x, F16 with 8 columns 1.4x faster, at a longer LLVM compile).
        [[unroll]] for (uint j = 0; j < CHUNKS; j++) {
            const uint k = g * GROUP + 8u * j;
            XVEC xl[NCOL], xh[NCOL];
#if defined(TEXEL_LOADS)
            if (X_SHUFFLE && X_ALIGNED) { // texel t = 2c + half holds x[col0 + c][k + 4 half ..]
                const uint lane = gl_SubgroupInvocationID % 8u;
                vec4 fetched[X_ROUNDS];
                [[unroll]] for (uint r = 0; r < X_ROUNDS; r++) {
                    const uint t = min(8u * r + lane, 2u * NCOL - 1u);
#if defined(PADDED_ROWS)
                    // past the row (cols % 8 == 4, the last group): zeros, read from the texel before
                    const bool past = t % 2u == 1u && k + 4u >= p.cols;
                    fetched[r] = X4_AT(((col0 + t / 2u) * p.cols + k) / 4u + (past ? 0u : t % 2u));
                    if (past) fetched[r] = vec4(0.0);
#else
                    fetched[r] = X4_AT(((col0 + t / 2u) * p.cols + k) / 4u + t % 2u);
#endif
                }
                [[unroll]] for (uint c = 0; c < NCOL; c++) {
                    xl[c] = subgroupShuffle(fetched[(2u * c) / 8u], (2u * c) % 8u);
                    xh[c] = subgroupShuffle(fetched[(2u * c + 1u) / 8u], (2u * c + 1u) % 8u);
                }
            } else
#endif
            [[unroll]] for (uint c = 0; c < NCOL; c++) {
                vec4 l, h;
                load_x8(col0 + c, k, l, h);
                xl[c] = XVEC(l);
                xh[c] = XVEC(h);
            }
            [[unroll]] for (uint r = 0; r < ROWS; r++) {
                vec4 lo, hi;
                float s, m;
                chunk(grp[r], j, lo, hi, s, m);
#if !defined(FP16)
                // The weights scaled once, then one fma per weight and column: on lavapipe (lanes = rows)
                // this is 8 fmas per column where dot products and the scale took twice the instructions.
                lo = fma(lo, vec4(s), vec4(m));
                hi = fma(hi, vec4(s), vec4(m));
                [[unroll]] for (uint c = 0; c < NCOL; c++) {
                    float a = acc[r][c];
                    a = fma(lo.x, xl[c].x, a);
                    a = fma(lo.y, xl[c].y, a);
                    a = fma(lo.z, xl[c].z, a);
                    a = fma(lo.w, xl[c].w, a);
                    a = fma(hi.x, xh[c].x, a);
                    a = fma(hi.y, xh[c].y, a);
                    a = fma(hi.z, xh[c].z, a);
                    acc[r][c] = fma(hi.w, xh[c].w, a);
                }
#else
                XVEC ql = XVEC(lo), qh = XVEC(hi);
                [[unroll]] for (uint c = 0; c < NCOL; c++)
                    acc[r][c] = fma(s, float(dot(ql, xl[c]) + dot(qh, xh[c])), acc[r][c]);
#endif
            }
        }
    }
#endif

    if (SPLIT == 1u) {
        store_block(first_row, col0);
        return;
    }

    // Reduce the SPLIT partial sums of each (row, column) of the invocation group.
#if defined(SUBGROUP)
    if (SPLIT < gl_SubgroupSize) { // row groups of SPLIT lanes inside a subgroup: every lane gets the sum
        [[unroll]] for (uint r = 0; r < ROWS; r++)
            [[unroll]] for (uint c = 0; c < NCOL; c++)
                for (uint o = SPLIT / 2u; o > 0u; o /= 2u) acc[r][c] += subgroupShuffleXor(acc[r][c], o);
        if (sub == 0u) store_block(first_row, col0);
        return;
    }
    [[unroll]] for (uint r = 0; r < ROWS; r++)
        [[unroll]] for (uint c = 0; c < NCOL; c++) acc[r][c] = subgroupAdd(acc[r][c]);
    if (SPLIT == gl_SubgroupSize) {
        if (gl_SubgroupInvocationID == 0u) store_block(first_row, col0);
        return;
    }
    // SPLIT spans several subgroups (the host makes SPLIT a multiple of the subgroup size).
    const uint parts = SPLIT / gl_SubgroupSize;
    const uint part = sub / gl_SubgroupSize;
    const bool writer = gl_SubgroupInvocationID == 0u;
#else
    const uint parts = SPLIT;
    const uint part = sub;
    const bool writer = true;
#endif
    // partial[((group * ROWS + r) * NCOL + c) * parts + part]
    if (writer)
        [[unroll]] for (uint r = 0; r < ROWS; r++)
            [[unroll]] for (uint c = 0; c < NCOL; c++)
                partial[(((lid / SPLIT) * ROWS + r) * NCOL + c) * parts + part] = acc[r][c];
    barrier();
#if defined(PAIRED_STORE)
    // One invocation per pair of rows: element o = (group * ROWS + r) * NCOL + c with r even, partner o + NCOL.
    for (uint q = lid; q < INV_GROUPS * ROWS / 2u * NCOL; q += gl_WorkGroupSize.x) {
        uint c = q % NCOL, o = (q / NCOL) * 2u * NCOL + c;
        uint row = linear_group() * INV_GROUPS * ROWS + 2u * (q / NCOL);
        if (row < p.rows) store_pair(col0 + c, row, reduced(o, parts), reduced(o + NCOL, parts));
    }
#else
    for (uint o = lid; o < INV_GROUPS * ROWS * NCOL; o += gl_WorkGroupSize.x) {
        uint c = o % NCOL;
        uint row = linear_group() * INV_GROUPS * ROWS + o / NCOL; // (group * ROWS + r)
        if (row < p.rows) store_one(col0 + c, row, reduced(o, parts));
    }
#endif
}
