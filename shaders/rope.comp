#version 450
// Rotary position embedding, one invocation per pair of a head's dims, x and out [n_tokens][n_heads][head_dim]:
//   ROPE_NEOX unset (llama.cpp mode 0, "normal"): pair j rotates (x[2j], x[2j+1]);
//   ROPE_NEOX set   (mode 2, NeoX):                 pair j rotates (x[j], x[j + n_rot/2]);
// by theta = pos[token] * base^(-2j/n_rot) * freq_scale, for j < n_rot/2; dims from n_rot on are copied.
#include "common.glsl"
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

// 2*pi split so that k * TWO_PI_HI is exact for |k| < 2^16 (TWO_PI_HI has 8 significant bits).
const float TWO_PI_HI = 6.28125;
const float TWO_PI_LO = 1.9353071795864769e-3;

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
    // llama.cpp's angle: pos * theta_scale^j * freq_scale with theta_scale = base^(-2/n_rot), taken here as one
    // pow (no error accumulating over j).  The angle is then reduced to [-pi, pi] exactly (Cody-Waite), where
    // GPU sin/cos are specified, so large positions cost only the rounding of theta itself.
    float inv_freq = pow(p.freq_base, -2.0 * float(j) / float(p.n_rot));
    precise float theta = float(pos[row / p.n_heads]) * inv_freq * p.freq_scale;
    float k = round(theta * 0.15915494309189535);
    precise float r = (theta - k * TWO_PI_HI) - k * TWO_PI_LO;
    float c = cos(r), s = sin(r);
    float x0 = x[i0], x1 = x[i1];
    result[i0] = x0 * c - x1 * s;
    result[i1] = x0 * s + x1 * c;
}
