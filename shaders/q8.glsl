// The layout of x quantized to 8-bit blocks of 32 (written by quantize_q8.comp and by the RMSNorm's _q8 variants,
// rms_norm.comp; read by matvec.comp INT_DOT; src/ops/matmul/matmul.c sizes it the same way): per column of cols
// elements, 8 words of levels per block, then a pair of words (d, level sums) per block, the column padded to
// whole uvec4s.  Also the arithmetic every writer shares, so that they agree bit for bit with each other and
// with the C mirror of the tests (th_q8_quantize).  Includers enable GL_EXT_control_flow_attributes.
#ifndef VKLLM_Q8_GLSL
#define VKLLM_Q8_GLSL

#define Q8_LEVEL_WORDS(cols) (8u * ((cols) / 32u))
#define Q8_COL_WORDS(cols) ((10u * ((cols) / 32u) + 3u) & ~3u)
// fl(1/127) as C's 1.0f / 127.0f rounds it (not left to the compiler's constant folding).
#define Q8_INV_127 uintBitsToFloat(0x3c010204u)

// round(127 * |v| / amax), ties away from zero, with amax = ma * 2^(ea - 150) (ma the 24-bit significand,
// ea the biased exponent, at least 1) and 0 <= |v| <= amax.  The quotient of the significands scaled by
// 2^-s: for s > 8 it is below 127 * 2^24 / 2^32 < 0.5.
uint q8_level(float v, uint ma, uint ea)
{
    uint u = floatBitsToUint(abs(v));
    uint e = max(u >> 23, 1u), m = (u & 0x7fffffu) | (u >= 0x800000u ? 0x800000u : 0u);
    uint s = ea - e;
    if (s > 8u) return 0u;
    uint num = 127u * m, den = ma << s; // < 2^31 and < 2^32
    uint q = num / den, r = num - q * den;
    return q + (r >= den - r ? 1u : 0u);
}

// The levels of v (four consecutive elements of a block whose largest magnitude is amax) as one word of four
// int8 in element order, and their sum.
uint q8_word(vec4 v, float amax, out int sum)
{
    const uint ua = floatBitsToUint(amax);
    const uint ea = max(ua >> 23, 1u), ma = (ua & 0x7fffffu) | (ua >= 0x800000u ? 0x800000u : 0u);
    uint word = 0u;
    sum = 0;
    [[unroll]] for (uint e = 0u; e < 4u; e++) {
        int q = ma == 0u ? 0 : int(q8_level(v[e], ma, ea));
        q = v[e] < 0.0 ? -q : q;
        sum += q;
        word |= uint(q & 255) << (8u * e);
    }
    return word;
}

// The block's second word: the sums of the levels of elements 0..15 and 16..31, int16 each, low half first.
uint q8_sums_word(int lower, int upper) { return uint(lower & 0xffff) | (uint(upper) << 16); }

#endif
