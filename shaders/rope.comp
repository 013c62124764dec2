#version 450
// Rotary position embedding, one invocation per pair of a head's dims, x and out [n_tokens][n_heads][head_dim]:
//   ROPE_NEOX unset (llama.cpp mode 0, "normal"): pair j rotates (x[2j], x[2j+1]);
//   ROPE_NEOX set   (mode 2, NeoX):                 pair j rotates (x[j], x[j + n_rot/2]);
// by theta = pos[token] * base^(-2j/n_rot) * freq_scale, for j < n_rot/2; dims from n_rot on are copied.
#include "common.glsl"
#include "rope.glsl"
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Pos { int pos[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push {
    uint n_pairs;   // n_tokens * n_heads * head_dim / 2
    uint n_heads;
    uint head_dim;
    uint n_rot;
    float freq_base;
    float freq_scale;
} p;

void main()
{
    uint g = linear_invocation();
    if (g >= p.n_pairs) return;
    uint half_dim = p.head_dim / 2;
    uint row = g / half_dim; // (token, head)
    uint j = g - row * half_dim;
    uint base = row * p.head_dim;
    if (2 * j >= p.n_rot) {
        result[base + 2 * j] = x[base + 2 * j];
        result[base + 2 * j + 1] = x[base + 2 * j + 1];
        return;
    }
#ifdef ROPE_NEOX
    uint i0 = base + j, i1 = base + j + p.n_rot / 2;
#else
    uint i0 = base + 2 * j, i1 = base + 2 * j + 1;
#endif
    vec2 v = rope_rotate(x[i0], x[i1], pos[row / p.n_heads], j, p.n_rot, p.freq_base, p.freq_scale);
    result[i0] = v.x;
    result[i1] = v.y;
}
