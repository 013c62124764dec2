// The rotation of one RoPE pair, shared by rope.comp and the fused Q/K/V store (qkv_store.glsl) so that both
// give the same bits.
#ifndef VKLLM_ROPE_GLSL
#define VKLLM_ROPE_GLSL

// 2*pi split so that k * TWO_PI_HI is exact for |k| < 2^16 (TWO_PI_HI has 8 significant bits).
const float TWO_PI_HI = 6.28125;
const float TWO_PI_LO = 1.9353071795864769e-3;

// Pair j (< n_rot / 2) of a head at position pos: (x0, x1) rotated by theta = pos * base^(-2j/n_rot) * scale.
// llama.cpp's angle is pos * theta_scale^j * freq_scale with theta_scale = base^(-2/n_rot), taken here as one
// pow (no error accumulating over j).  The angle is then reduced to [-pi, pi] exactly (Cody-Waite), where GPU
// sin/cos are specified, so large positions cost only the rounding of theta itself.
float rope_inv_freq(uint j, uint n_rot, float freq_base) { return pow(freq_base, -2.0 * float(j) / float(n_rot)); }

// The rotation with pair j's rope_inv_freq given (a caller storing many tokens' pairs computes it once per pair).
vec2 rope_rotate_freq(float x0, float x1, int pos, float inv_freq, float freq_scale)
{
    precise float theta = float(pos) * inv_freq * freq_scale;
    float k = round(theta * 0.15915494309189535);
    precise float r = (theta - k * TWO_PI_HI) - k * TWO_PI_LO;
    float c = cos(r), s = sin(r);
    return vec2(x0 * c - x1 * s, x0 * s + x1 * c);
}

vec2 rope_rotate(float x0, float x1, int pos, uint j, uint n_rot, float freq_base, float freq_scale)
{
    return rope_rotate_freq(x0, x1, pos, rope_inv_freq(j, n_rot, freq_base), freq_scale);
}

#endif
