#version 450
// Row softmax with a scale and an optional causal mask, one row per workgroup:
//   out[r][c] = exp(x[r][c]*scale - m) / sum_c' exp(x[r][c']*scale - m)   for visible c, 0 for masked c,
// where m is the row's largest visible x*scale (so exp never overflows) and, with causal set, row r sees the
// columns c <= r + pos_offset.
#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push { uint rows; uint cols; float scale; uint causal; uint pos_offset; } p;
void main()
{
    uint row = linear_group();
    if (row >= p.rows) return; // the whole workgroup leaves together: barriers stay in uniform control flow
    uint base = row * p.cols;
    // Visible columns: row + pos_offset + 1, capped at cols, written so that nothing overflows.
    uint visible = p.cols;
    uint last = p.cols - 1;
    if (p.causal != 0 && p.pos_offset < last && row < last - p.pos_offset) visible = row + p.pos_offset + 1;

    float m = -1.0 / 0.0;
    for (uint c = gl_LocalInvocationID.x, guard = 0u; c < visible; c += gl_WorkGroupSize.x) {
        LOOP_GUARD(guard, p.cols);
        m = max(m, x[base + c] * p.scale);
    }
    m = workgroup_max(m);
    float sum = 0.0;
    for (uint c = gl_LocalInvocationID.x, guard = 0u; c < visible; c += gl_WorkGroupSize.x) {
        LOOP_GUARD(guard, p.cols);
        sum += exp(x[base + c] * p.scale - m);
    }
    float inv = 1.0 / workgroup_sum(sum);
    for (uint c = gl_LocalInvocationID.x, guard = 0u; c < p.cols; c += gl_WorkGroupSize.x) {
        LOOP_GUARD(guard, p.cols);
        result[base + c] = c < visible ? exp(x[base + c] * p.scale - m) * inv : 0.0;
    }
}
