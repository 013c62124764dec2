#version 450
// out[i] = a[i] * scale
#include "common.glsl"
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push { uint n; float scale; } p;
void main()
{
    uint i = linear_invocation();
    if (i < p.n) result[i] = a[i] * p.scale;
}
