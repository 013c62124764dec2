#version 450
// Tiled mat-mul for prompts: y[c][row] = sum_k W[row][k] * x[c][k] for n columns.  Each workgroup computes
// a BM x BN tile of y, stepping through k by BK: the BM x BK slice of W is dequantized into shared memory
// (each invocation decodes whole 8-weight chunks), the BN x BK slice of x is copied next to it, and each
// invocation accumulates TM x TN outputs in registers.  FP16 keeps the tiles in f16 (half the shared
// memory and loads); sums stay in f32.
#extension GL_EXT_control_flow_attributes : require
#if defined(FP16)
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#define TILE float16_t
#else
#define TILE float
#endif
#include "common.glsl"
#include "dequant.glsl"

layout(constant_id = 1) const uint BM = 16; // rows of W per tile
layout(constant_id = 2) const uint BN = 16; // columns of x per tile
layout(constant_id = 3) const uint BK = 16; // k per step, multiple of 8
layout(constant_id = 4) const uint TM = 2;  // rows per invocation, BM / TM * BN / TN = workgroup size
layout(constant_id = 5) const uint TN = 2;  // columns per invocation

layout(std430, binding = 2) readonly buffer X { float x[]; };   // [n][cols]
layout(std430, binding = 3) writeonly buffer Y { float y[]; };  // [n][y_stride]

layout(push_constant) uniform Push {
    uint rows;     // rows of this chunk of W
    uint cols;     // elements per column of x
    uint groups;   // repacked groups per row
    uint n;        // columns of x
    uint y_stride; // elements between columns of y
    uint y_row0;   // row of y of this chunk's first row
} p;

// k-major, so that the inner loop reads consecutive addresses across invocations.
shared TILE tile_w[BK * BM];
shared TILE tile_x[BK * BN];

const uint TR = BM / TM; // invocations along rows
const uint TC = BN / TN;

void main()
{
    const uint lid = gl_LocalInvocationID.x;
    const uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
    const uint tr = lid % TR, tc = lid / TR;
    const uint kpad = p.groups * GROUP; // row length in the repacked layout

    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;

    for (uint k0 = 0, guard = 0u; k0 < kpad; k0 += BK) {
        LOOP_GUARD(guard, kpad); // the same bound in every invocation: the barriers below stay uniform
        for (uint i = lid; i < BM * (BK / 8u); i += gl_WorkGroupSize.x) {
            const uint r = i / (BK / 8u), kc = i % (BK / 8u);
            const uint row = m0 + r, k = k0 + 8u * kc;
            vec4 lo = vec4(0.0), hi = vec4(0.0);
            if (row < p.rows && k < kpad) {
                float s, m;
                chunk(load_group(row * p.groups + k / GROUP), (k % GROUP) / 8u, lo, hi, s, m);
                lo = lo * s + m;
                hi = hi * s + m;
            }
            [[unroll]] for (uint e = 0; e < 4u; e++) {
                tile_w[(8u * kc + e) * BM + r] = TILE(lo[e]);
                tile_w[(8u * kc + 4u + e) * BM + r] = TILE(hi[e]);
            }
        }
        for (uint i = lid; i < BN * BK; i += gl_WorkGroupSize.x) {
            const uint c = i / BK, kk = i % BK;
            const uint col = n0 + c, k = k0 + kk;
            tile_x[kk * BN + c] = TILE(col < p.n && k < p.cols ? x[col * p.cols + k] : 0.0);
        }
        barrier();
        for (uint kk = 0; kk < BK; kk++) {
            float a[TM], b[TN];
            [[unroll]] for (uint i = 0; i < TM; i++) a[i] = float(tile_w[kk * BM + tr + i * TR]);
            [[unroll]] for (uint j = 0; j < TN; j++) b[j] = float(tile_x[kk * BN + tc + j * TC]);
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier();
    }

    [[unroll]] for (uint j = 0; j < TN; j++) {
        const uint col = n0 + tc + j * TC;
        if (col >= p.n) continue;
        [[unroll]] for (uint i = 0; i < TM; i++) {
            const uint row = m0 + tr + i * TR;
            if (row < p.rows) y[col * p.y_stride + p.y_row0 + row] = acc[i][j];
        }
    }
}
