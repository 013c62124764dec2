#version 450
// RMSNorm fused with its weight, one row per workgroup:
//   out[r][c] = x[r][c] / sqrt(mean_c(x[r][c]^2) + eps) * w[c]
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push { uint rows; uint cols; float eps; } p;
void main()
{
    uint row = linear_group();
    if (row >= p.rows) return; // the whole workgroup leaves together: barriers stay in uniform control flow
    uint base = row * p.cols;
    float squares = 0.0;
    for (uint c = gl_LocalInvocationID.x; c < p.cols; c += gl_WorkGroupSize.x) {
        float v = x[base + c];
        squares += v * v;
    }
    float scale = inversesqrt(workgroup_sum(squares) / float(p.cols) + p.eps);
    for (uint c = gl_LocalInvocationID.x; c < p.cols; c += gl_WorkGroupSize.x)
        result[base + c] = x[base + c] * scale * w[c];
}
