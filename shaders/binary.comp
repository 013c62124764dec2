#version 450
// out[i] = a[i] OP b[i % b_len]   (OP_ADD or OP_MUL)
#include "common.glsl"
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push { uint n; uint b_len; } p;
void main()
{
    uint i = linear_invocation();
    if (i >= p.n) return;
#if defined(OP_ADD)
    result[i] = a[i] + b[i % p.b_len];
#elif defined(OP_MUL)
    result[i] = a[i] * b[i % p.b_len];
#endif
}
