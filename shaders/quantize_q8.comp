#version 450
// x F32 [n][cols] (cols a multiple of 32) -> 8-bit blocks of 32 for the mat-vec's integer path (matvec.comp
// INT_DOT), one invocation per block.  Layout (q8.glsl): column c takes Q8_COL_WORDS(cols) words from word
// c * Q8_COL_WORDS; block b's levels are words 8b..8b+7 (four int8 per word, in element order), and after all
// the column's levels, word pair b holds the block's scale d (f32 bits) and the sums of its levels 0..15 and
// 16..31 (int16 each, low half first).
//
// d = amax * fl(1/127) and level = round(127 * x / amax), ties away from zero, computed exactly in integers:
// every device (whatever its division precision) and the C reference (tests/harness) agree bit for bit, and
// x = d * level to within d / 2 (plus amax's rounding).
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "q8.glsl"

layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer Q4 { uvec4 q4[]; };
layout(std430, binding = 1) writeonly buffer Q2 { uvec2 q2[]; };

layout(push_constant) uniform Push {
    uint blocks; // n * cols / 32
    uint cols;
} p;

// round(127 * |v| / amax), ties away from zero, with amax = ma * 2^(ea - 150) (ma the 24-bit significand,
// ea the biased exponent, at least 1) and 0 <= |v| <= amax.  The quotient of the significands scaled by
// 2^-s: for s > 8 it is below 127 * 2^24 / 2^32 < 0.5.
uint level(float v, uint ma, uint ea)
{
    uint u = floatBitsToUint(abs(v));
    uint e = max(u >> 23, 1u), m = (u & 0x7fffffu) | (u >= 0x800000u ? 0x800000u : 0u);
    uint s = ea - e;
    if (s > 8u) return 0u;
    uint num = 127u * m, den = ma << s; // < 2^31 and < 2^32
    uint q = num / den, r = num - q * den;
    return q + (r >= den - r ? 1u : 0u);
}

void main()
{
    const uint i = linear_invocation();
    if (i >= p.blocks) return;
    const uint nb = p.cols / 32u, c = i / nb, b = i % nb;
    vec4 v[8];
    float amax = 0.0;
    [[unroll]] for (uint w = 0; w < 8u; w++) {
        v[w] = x4[(c * p.cols + 32u * b) / 4u + w];
        amax = max(amax, max(max(abs(v[w].x), abs(v[w].y)), max(abs(v[w].z), abs(v[w].w))));
    }
    const uint ua = floatBitsToUint(amax);
    const uint ea = max(ua >> 23, 1u), ma = (ua & 0x7fffffu) | (ua >= 0x800000u ? 0x800000u : 0u);
    uint words[8];
    int sums[2] = int[2](0, 0);
    [[unroll]] for (uint w = 0; w < 8u; w++) {
        uint word = 0u;
        [[unroll]] for (uint e = 0; e < 4u; e++) {
            int q = ma == 0u ? 0 : int(level(v[w][e], ma, ea));
            q = v[w][e] < 0.0 ? -q : q;
            sums[w / 4u] += q;
            word |= uint(q & 255) << (8u * e);
        }
        words[w] = word;
    }
    const uint base = c * Q8_COL_WORDS(p.cols);
    q4[base / 4u + 2u * b] = uvec4(words[0], words[1], words[2], words[3]);
    q4[base / 4u + 2u * b + 1u] = uvec4(words[4], words[5], words[6], words[7]);
    q2[(base + Q8_LEVEL_WORDS(p.cols)) / 2u + b] =
        uvec2(floatBitsToUint(amax * Q8_INV_127), uint(sums[0] & 0xffff) | (uint(sums[1]) << 16));
}
