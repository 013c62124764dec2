#version 450
// RMSNorm fused with its weight, one row per workgroup:
//   out[r][c] = x[r][c] / sqrt(mean_c(x[r][c]^2) + eps) * w[c]
// ADD_RESIDUAL: the residual add before it in the same pass (one dispatch less per norm):
//   x[r][c] += add[r][c], then the norm of the sum.
#include "common.glsl"
#include "reduce.glsl"
#if defined(ADD_RESIDUAL)
layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 3) readonly buffer Add { float add[]; };
#else
layout(std430, binding = 0) readonly buffer X { float x[]; };
#endif
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push { uint rows; uint cols; float eps; } p;
void main()
{
    uint row = linear_group();
    if (row >= p.rows) return; // the whole workgroup leaves together: barriers stay in uniform control flow
    uint base = row * p.cols;
    float squares = 0.0;
    for (uint c = gl_LocalInvocationID.x, guard = 0u; c < p.cols; c += gl_WorkGroupSize.x) {
        LOOP_GUARD(guard, p.cols);
#if defined(ADD_RESIDUAL)
        float v = x[base + c] + add[base + c];
        x[base + c] = v; // read back below by this same invocation: no barrier needed
#else
        float v = x[base + c];
#endif
        squares += v * v;
    }
    float scale = inversesqrt(workgroup_sum(squares) / float(p.cols) + p.eps);
    for (uint c = gl_LocalInvocationID.x, guard = 0u; c < p.cols; c += gl_WorkGroupSize.x) {
        LOOP_GUARD(guard, p.cols);
        result[base + c] = x[base + c] * scale * w[c];
    }
}
