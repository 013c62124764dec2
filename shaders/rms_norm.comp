#version 450
// RMSNorm fused with its weight, one row per workgroup:
//   out[r][c] = x[r][c] / sqrt(mean_c(x[r][c]^2) + eps) * w[c]
// ADD_RESIDUAL: the residual add before it in the same pass (one dispatch less per norm):
//   x[r][c] += add[r][c], then the norm of the sum.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "reduce.glsl"
#if defined(ADD_RESIDUAL)
layout(std430, binding = 0) restrict buffer X { float x[]; };
layout(std430, binding = 3) restrict readonly buffer Add { float add[]; };
#else
layout(std430, binding = 0) restrict readonly buffer X { float x[]; };
#endif
layout(std430, binding = 1) restrict readonly buffer W { float w[]; };
layout(std430, binding = 2) restrict writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push { uint rows; uint cols; float eps; } p;

// Each pass takes UNROLL elements per invocation at a time, all loads before any store: a row is one
// workgroup, so on a GPU (one token: one workgroup on one multiprocessor) the pass is bound by memory latency,
// and a loop of one load and one store per step waits a full round trip per element (the store to x may
// alias the next load as far as the compiler knows).  `restrict`: no binding aliases another.
const uint UNROLL = 4u;

void main()
{
    uint row = linear_group();
    if (row >= p.rows) return; // the whole workgroup leaves together: barriers stay in uniform control flow
    const uint base = row * p.cols, lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    float squares = 0.0;
    for (uint c0 = lid, guard = 0u; c0 < p.cols; c0 += UNROLL * wg) {
        LOOP_GUARD(guard, p.cols);
        float v[UNROLL];
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
            const uint c = c0 + u * wg;
#if defined(ADD_RESIDUAL)
            v[u] = c < p.cols ? x[base + c] + add[base + c] : 0.0;
#else
            v[u] = c < p.cols ? x[base + c] : 0.0;
#endif
        }
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
#if defined(ADD_RESIDUAL)
            const uint c = c0 + u * wg;
            if (c < p.cols) x[base + c] = v[u]; // read back below by this same invocation: no barrier needed
#endif
            squares += v[u] * v[u];
        }
    }
    float scale = inversesqrt(workgroup_sum(squares) / float(p.cols) + p.eps);
    for (uint c0 = lid, guard = 0u; c0 < p.cols; c0 += UNROLL * wg) {
        LOOP_GUARD(guard, p.cols);
        float v[UNROLL], g[UNROLL];
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
            const uint c = c0 + u * wg;
            v[u] = c < p.cols ? x[base + c] : 0.0;
            g[u] = c < p.cols ? w[c] : 0.0;
        }
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
            const uint c = c0 + u * wg;
            if (c < p.cols) result[base + c] = v[u] * scale * g[u];
        }
    }
}
