#version 450
// Cooperative-matrix mat-mul for prompts (tensor cores): y[c][row] = sum_k W[row][k] * x[c][k], the product of
// matmul.comp, as C = A B with A = W (rows x k) and B = x^T (k x n), f16 inputs and f32 sums.
//
// A workgroup computes a BM x BN tile of C (rows m0.., columns n0..), stepping through k by BK:
//   - the BM x BK slice of W is dequantized to f16 into shared memory, row-major with a row stride of SA
//     halves; consecutive invocations decode consecutive 8-weight chunks of a row (coalesced loads);
//   - the BN x BK slice of x is converted to f16 beside it, one column of x per row (so B is column-major);
//   - the workgroup is NSG subgroups of SG invocations in a SG_M x SG_N grid; each owns a WM x WN sub-tile as
//     FM x FN accumulators of CM_M x CM_N (the device's cooperative-matrix size) and per CM_K of k loads FM
//     fragments of A and, one at a time, FN of B;
//   - BUFS = 2 double-buffers the shared tiles: the next step's global loads are issued before this step's
//     math and land in the other buffer after it, with one barrier per step (BUFS = 1: two barriers);
//   - the accumulators leave through shared memory, one CM_M x CM_N stage per subgroup, which the whole
//     workgroup writes out with bounds checks: rows and n need not be multiples of the tile.
// Row padding: SA = BK + 8 halves keeps every row start 16-byte aligned (cooperative-matrix loads need the
// pointer and stride aligned to 16 bytes or to a row) and moves consecutive rows 4 banks apart, so the 16-byte
// row pieces of a fragment load hit different banks.
// f16 holds the dequantized weights of every type routed here (not F32/BF16) and x within +-65504.
//
// Variants: COOPMAT_NV uses GL_NV_cooperative_matrix; the KHR variant is that binary rewritten at build time
// (tools/spirv_coopmat.h), which is why every matrix is sized by the spec constants CM_M, CM_N and CM_K (A is
// CM_M x CM_K, B CM_K x CM_N, the accumulator CM_M x CM_N) and every load/store layout is a literal.
// COOPMAT_EMULATE replaces the matrix type and its load / mul-add / store with plain GLSL of the same meaning,
// so that devices without cooperative matrices (lavapipe) test the tiling, indexing, bounds and barriers.
#extension GL_EXT_control_flow_attributes : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#if !defined(COOPMAT_EMULATE)
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
#include "common.glsl"
#include "dequant.glsl"

layout(constant_id = 1) const uint BM = 128;      // rows of W per workgroup tile
layout(constant_id = 2) const uint BN = 128;      // columns of x per tile
layout(constant_id = 3) const uint BK = 16;       // k per step: a multiple of 8 and of CM_K
layout(constant_id = 4) const uint SG = 32;       // subgroup size (pinned by the host for the real variants)
layout(constant_id = 5) const uint SG_M = 2;      // subgroups along the rows; the others along the columns
layout(constant_id = 6) const uint BUFS = 2;      // shared tile buffers, 1 or 2
layout(constant_id = 7) const bool X_VEC4 = false; // cols % 4 == 0: x read as vec4s
// The cooperative-matrix size; ids 8..10 are what cmake/shaders.cmake tells the KHR rewriter.
layout(constant_id = 8) const uint CM_M = 16;
layout(constant_id = 9) const uint CM_N = 16;
layout(constant_id = 10) const uint CM_K = 16;

layout(std430, binding = 2) readonly buffer X { float x[]; };   // [n][cols]
layout(std430, binding = 2) readonly buffer X4 { vec4 x4[]; }; // the same floats, 4 by 4
layout(std430, binding = 3) writeonly buffer Y { float y[]; };  // [n][y_stride]

layout(push_constant) uniform Push {
    uint rows;     // rows of this chunk of W
    uint cols;     // elements per column of x
    uint groups;   // repacked groups per row
    uint n;        // columns of x
    uint y_stride; // elements between columns of y
    uint y_row0;   // row of y of this chunk's first row
} p;

const uint WG = gl_WorkGroupSize.x;
const uint NSG = WG / SG;                 // subgroups per workgroup
const uint SG_N = NSG / SG_M;
const uint WM = BM / SG_M, WN = BN / SG_N; // sub-tile of one subgroup
const uint FM = WM / CM_M, FN = WN / CM_N; // its accumulators
const uint SA = BK + 8u;                  // row stride of the shared tiles, in halves
const uint A_SIZE = BM * SA, B_SIZE = BN * SA;

shared float16_t tile_a[BUFS * A_SIZE];       // [buffer][row of W][k]
shared float16_t tile_b[BUFS * B_SIZE];       // [buffer][column of x][k]
shared float stage[NSG * CM_M * CM_N];        // [subgroup][column][row]: accumulators on their way out

#if defined(COOPMAT_EMULATE)
// A loaded fragment records where it was read from (element offset, stride, column-major), and the mul-add
// reads the shared tile through it: the same values, as no tile is written between a step's loads and its
// mul-adds (they sit between the same two barriers).  An accumulator is spread over the SG invocations of a
// subgroup (here: consecutive local invocation indices) as real ones are: invocation `lane` holds elements
// lane, lane + SG, ... in row-major order.
const uint CM_ELEMS = CM_M * CM_N / SG;
float acc[FM * FN * CM_ELEMS];
#define SUBGROUP_ID (gl_LocalInvocationIndex / SG)
#define FRAG_A uvec3
#define FRAG_B uvec3
#define LOAD_A(f, off, stride, col_major) f = uvec3(off, stride, col_major ? 1u : 0u)
#define LOAD_B(f, off, stride, col_major) f = uvec3(off, stride, col_major ? 1u : 0u)
#define ACC_DECL
#define ACC_ZERO(i) emu_zero(i)
#define MUL_ADD(i, a, b) emu_mul_add(i, a, b)
#define STORE_ACC(i, off, stride, col_major) emu_store(i, off, stride, col_major)

uint emu_at(uvec3 f, uint r, uint c) { return f.x + (f.z != 0u ? c * f.y + r : r * f.y + c); }

void emu_zero(uint i)
{
    for (uint e = 0u; e < CM_ELEMS; e++) acc[i * CM_ELEMS + e] = 0.0;
}

void emu_mul_add(uint i, uvec3 a, uvec3 b)
{
    const uint lane = gl_LocalInvocationIndex % SG;
    for (uint e = 0u; e < CM_ELEMS; e++) {
        const uint el = lane + e * SG, m = el / CM_N, n = el % CM_N;
        float sum = acc[i * CM_ELEMS + e];
        for (uint k = 0u; k < CM_K; k++) sum = fma(float(tile_a[emu_at(a, m, k)]), float(tile_b[emu_at(b, k, n)]), sum);
        acc[i * CM_ELEMS + e] = sum;
    }
}

void emu_store(uint i, uint off, uint stride, bool col_major)
{
    const uint lane = gl_LocalInvocationIndex % SG;
    for (uint e = 0u; e < CM_ELEMS; e++) {
        const uint el = lane + e * SG;
        stage[emu_at(uvec3(off, stride, col_major ? 1u : 0u), el / CM_N, el % CM_N)] = acc[i * CM_ELEMS + e];
    }
}
#else
#define SUBGROUP_ID gl_SubgroupID
#define FRAG_A fcoopmatNV<16, gl_ScopeSubgroup, CM_M, CM_K>
#define FRAG_B fcoopmatNV<16, gl_ScopeSubgroup, CM_K, CM_N>
#define ACC_T fcoopmatNV<32, gl_ScopeSubgroup, CM_M, CM_N>
#define LOAD_A(f, off, stride, col_major) coopMatLoadNV(f, tile_a, off, stride, col_major)
#define LOAD_B(f, off, stride, col_major) coopMatLoadNV(f, tile_b, off, stride, col_major)
#define ACC_DECL ACC_T acc[FM * FN]
#define ACC_ZERO(i) acc[i] = ACC_T(0.0)
#define MUL_ADD(i, a, b) acc[i] = coopMatMulAddNV(a, b, acc[i])
#define STORE_ACC(i, off, stride, col_major) coopMatStoreNV(acc[i], stage, off, stride, col_major)
#endif

// One step's global loads, held in registers while the previous step's math runs.
const uint KC = BK / 8u;                          // 8-weight chunks per row per step
const uint A_CHUNKS = BM * KC, A_PER = (A_CHUNKS + WG - 1u) / WG;
const uint XQ = BK / 4u;                          // quads of x per column per step
const uint X_QUADS = BN * XQ, X_PER = (X_QUADS + WG - 1u) / WG;
Group w_reg[A_PER];
vec4 x_reg[X_PER];
uint m0, n0;

// The weight chunks and x quads of the step at k0 into registers (out-of-range ones left unread).
void load_step(uint k0)
{
    const uint lid = gl_LocalInvocationID.x, kpad = p.groups * GROUP;
    [[unroll]] for (uint i = 0u; i < A_PER; i++) {
        const uint c = lid + i * WG, row = m0 + c / KC, k = k0 + 8u * (c % KC);
        if (c < A_CHUNKS && row < p.rows && k < kpad) w_reg[i] = load_group(row * p.groups + k / GROUP);
    }
    [[unroll]] for (uint i = 0u; i < X_PER; i++) {
        const uint q = lid + i * WG, col = n0 + q / XQ, k = k0 + 4u * (q % XQ);
        vec4 v = vec4(0.0);
        if (q < X_QUADS && col < p.n) {
            if (X_VEC4) {
                if (k < p.cols) v = x4[(col * p.cols + k) / 4u];
            } else {
                [[unroll]] for (uint e = 0u; e < 4u; e++)
                    if (k + e < p.cols) v[e] = x[col * p.cols + k + e];
            }
        }
        x_reg[i] = v;
    }
}

// Decodes the registers of the step at k0 into shared buffer buf (zeros outside W and x).
void store_step(uint k0, uint buf)
{
    const uint lid = gl_LocalInvocationID.x, kpad = p.groups * GROUP;
    [[unroll]] for (uint i = 0u; i < A_PER; i++) {
        const uint c = lid + i * WG, r = c / KC, kc = c % KC, k = k0 + 8u * kc;
        if (c >= A_CHUNKS) break;
        vec4 lo = vec4(0.0), hi = vec4(0.0);
        if (m0 + r < p.rows && k < kpad) {
            float s, m;
            chunk(w_reg[i], (k % GROUP) / 8u, lo, hi, s, m);
            lo = lo * s + m;
            hi = hi * s + m;
        }
        const uint base = buf * A_SIZE + r * SA + 8u * kc;
        [[unroll]] for (uint e = 0u; e < 4u; e++) {
            tile_a[base + e] = float16_t(lo[e]);
            tile_a[base + 4u + e] = float16_t(hi[e]);
        }
    }
    [[unroll]] for (uint i = 0u; i < X_PER; i++) {
        const uint q = lid + i * WG;
        if (q >= X_QUADS) break;
        const uint base = buf * B_SIZE + (q / XQ) * SA + 4u * (q % XQ);
        [[unroll]] for (uint e = 0u; e < 4u; e++) tile_b[base + e] = float16_t(x_reg[i][e]);
    }
}

void main()
{
    const uint lid = gl_LocalInvocationID.x;
    m0 = gl_WorkGroupID.x * BM;
    n0 = gl_WorkGroupID.y * BN;
    const uint sg = SUBGROUP_ID, sm = sg % SG_M, sn = sg / SG_M;
    const uint steps = (p.groups * GROUP + BK - 1u) / BK;

    ACC_DECL;
    [[unroll]] for (uint i = 0u; i < FM * FN; i++) ACC_ZERO(i);

    load_step(0u);
    store_step(0u, 0u);
    barrier();
    for (uint s = 0u, guard = 0u; s < steps; s++) {
        LOOP_GUARD(guard, steps);
        const uint cur = BUFS == 2u ? (s & 1u) : 0u;
        const bool more = s + 1u < steps; // uniform: every invocation sees the same steps
        if (more) load_step((s + 1u) * BK);
        [[unroll]] for (uint kk = 0u; kk < BK; kk += CM_K) {
            FRAG_A a[FM];
            [[unroll]] for (uint i = 0u; i < FM; i++)
                LOAD_A(a[i], cur * A_SIZE + (sm * WM + i * CM_M) * SA + kk, SA, false);
            [[unroll]] for (uint j = 0u; j < FN; j++) {
                FRAG_B b;
                LOAD_B(b, cur * B_SIZE + (sn * WN + j * CM_N) * SA + kk, SA, true);
                [[unroll]] for (uint i = 0u; i < FM; i++) MUL_ADD(i * FN + j, a[i], b);
            }
        }
        // One buffer: everyone must be done reading it before it is overwritten.  Two: the other buffer was
        // last read in the previous step, which the barrier at its end closed.
        if (BUFS == 1u) barrier();
        if (more) store_step((s + 1u) * BK, BUFS == 2u ? cur ^ 1u : 0u);
        barrier();
    }

    // Accumulator (i, j) of every subgroup through its stage, column-major, then out by the whole workgroup:
    // consecutive invocations write consecutive rows of a column of y.
    [[unroll]] for (uint i = 0u; i < FM; i++)
        [[unroll]] for (uint j = 0u; j < FN; j++) {
            STORE_ACC(i * FN + j, sg * CM_M * CM_N, CM_M, true);
            barrier();
            for (uint e = lid; e < NSG * CM_M * CM_N; e += WG) {
                const uint owner = e / (CM_M * CM_N), w = e % (CM_M * CM_N);
                const uint row = m0 + (owner % SG_M) * WM + i * CM_M + w % CM_M;
                const uint col = n0 + (owner / SG_M) * WN + j * CM_N + w / CM_M;
                if (row < p.rows && col < p.n) y[col * p.y_stride + p.y_row0 + row] = stage[e];
            }
            barrier();
        }
}
