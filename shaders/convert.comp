#version 450
// F32 <-> F16 on n elements, halves packed two to a 32-bit word (no 16-bit storage needed).  One invocation
// per word, writing whole words, so an odd n needs no shared-word race: the last word's upper half is 0.
#include "common.glsl"
#include "half.glsl"
layout(std430, binding = 0) readonly buffer Src { uint src[]; };
layout(std430, binding = 1) writeonly buffer Dst { uint dst[]; };
layout(push_constant) uniform Push { uint n; } p;
void main()
{
    uint w = linear_invocation();
    uint n_words = p.n / 2 + (p.n & 1u);
    if (w >= n_words) return;
    bool has_upper = 2 * w + 1 < p.n;
#if defined(TO_F16)
    uint lo = f32_bits_to_f16(src[2 * w]);
    uint hi = has_upper ? f32_bits_to_f16(src[2 * w + 1]) : 0u;
    dst[w] = lo | (hi << 16);
#elif defined(TO_F32)
    // Float results travel as bits, so no store can quieten or flush them.
    uint word = src[w];
    dst[2 * w] = f16_bits_to_f32(word & 0xffffu);
    if (has_upper) dst[2 * w + 1] = f16_bits_to_f32(word >> 16);
#endif
}
