#version 450
// Test-only (tests/runtime/test_runtime.c): every invocation steps a linear congruential generator p.n times and
// writes the result, so a dispatch runs as long as a test needs (a fence wait that must time out), and in
// the shader-check build the loop's guard fires when p.n passes p.guard_limit or LOOP_GUARD_MAX.
#include "common.glsl"
layout(std430, binding = 0) writeonly buffer Out { uint result[]; };
layout(push_constant) uniform Push { uint n; uint guard_limit; } p;
void main()
{
    uint x = linear_invocation();
    for (uint i = 0u, guard = 0u; i < p.n; i++) {
        LOOP_GUARD(guard, p.guard_limit);
        x = x * 1664525u + 1013904223u;
    }
    result[linear_invocation()] = x;
}
