// The quantized KV cache (src/ops/kv_cache.h): ggml's Q8_0 and Q4_0 blocks of 32 values cut along each token's K
// (or V) row of n_kv_heads * head_dim values, stored per token slot as one record of uints:
//   the blocks' quants in order (Q8_0: 32 int8 per block, 8 uints; Q4_0: ggml's 16 bytes, value j in the low
//   nibble of byte j and value j + 16 in the high one, 4 uints), then the blocks' f16 scales two per uint (low
//   half first; an odd last block leaves the high half 0).
// Records are aligned uints, so neither 8- nor 16-bit storage is needed, and one invocation that owns a pair of
// blocks owns whole uints: no two invocations write parts of one word.
#ifndef VKLLM_KV_BLOCKS_GLSL
#define VKLLM_KV_BLOCKS_GLSL

// Uints of one token's record for a row of `row` values (a multiple of 32).
uint q8_record_words(uint row) { return row / 4u + (row / 32u + 1u) / 2u; }
uint q4_record_words(uint row) { return row / 8u + (row / 32u + 1u) / 2u; }
// Where the scales start in a record.
uint q8_scale_offset(uint row) { return row / 4u; }
uint q4_scale_offset(uint row) { return row / 8u; }

// Four values e..e+3 (e a multiple of 4) of a Q8_0 row: their quant word w and the block's scale d.
vec4 q8_ints4(uint w)
{
    return vec4(ivec4(bitfieldExtract(int(w), 0, 8), bitfieldExtract(int(w), 8, 8), bitfieldExtract(int(w), 16, 8),
                      bitfieldExtract(int(w), 24, 8)));
}
vec4 q8_dequant4(uint w, float d) { return q8_ints4(w) * d; }
// A Q4_0 word j of a block (bytes 4j..4j+3): values 4j..4j+3 in its low nibbles, 16+4j.. in its high ones, as
// levels -8..7.
vec4 q4_lo4(uint w) { return vec4((uvec4(w) >> uvec4(0u, 8u, 16u, 24u)) & 0xFu) - 8.0; }
vec4 q4_hi4(uint w) { return vec4((uvec4(w) >> uvec4(4u, 12u, 20u, 28u)) & 0xFu) - 8.0; }
// Word of values e..e+3 in a Q4_0 record: block e / 32, byte (e % 16) of it; the nibble is high for e % 32 >= 16.
uint q4_word_index(uint e) { return (e / 32u) * 4u + (e % 16u) / 4u; }
vec4 q4_dequant4(uint w, uint e, float d)
{
    uint s = (e % 32u) >= 16u ? 4u : 0u;
    uvec4 n = (uvec4(w) >> (uvec4(0u, 8u, 16u, 24u) + s)) & 0xFu;
    return (vec4(n) - 8.0) * d;
}
// Scale of block b from a record's scale words.
float block_scale(uint scale_word, uint b) { return unpackHalf2x16(scale_word)[b & 1u]; }

// ggml's quantize_row_q8_0_ref on 32 values: d = amax / 127, q = round(x / d) (half away from zero).
float q8_scale_of(float v[32])
{
    float amax = 0.0;
    for (uint j = 0u; j < 32u; j++) amax = max(amax, abs(v[j]));
    return amax / 127.0;
}
uint q8_pack4(float v[32], uint j, float id)
{
    uint w = 0u;
    for (uint k = 0u; k < 4u; k++) {
        precise float x = v[j + k] * id;
        int q = int(sign(x) * floor(abs(x) + 0.5));
        w |= uint(q & 0xff) << (8u * k);
    }
    return w;
}
// ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8, q = min(15, int(x / d + 8.5)).
float q4_scale_of(float v[32])
{
    float amax = 0.0, mx = 0.0;
    for (uint j = 0u; j < 32u; j++)
        if (amax < abs(v[j])) {
            amax = abs(v[j]);
            mx = v[j];
        }
    return mx / -8.0;
}
uint q4_pack4(float v[32], uint j, float id) // bytes j..j+3 (j < 16): values j.. low, j+16.. high
{
    uint w = 0u;
    for (uint k = 0u; k < 4u; k++) {
        // precise: x * id rounded before + 8.5, as the CPU does (a fused multiply-add could move a value
        // across a level and the bytes would differ from ggml's).
        precise float x0 = v[j + k] * id, x1 = v[j + k + 16u] * id;
        precise float y0 = x0 + 8.5, y1 = x1 + 8.5;
        uint lo = uint(min(15, int(y0)));
        uint hi = uint(min(15, int(y1)));
        w |= (lo | (hi << 4)) << (8u * k);
    }
    return w;
}

// ROTATE_K: keys (and queries, so that q.k is unchanged) go through an orthonormal Walsh-Hadamard transform in
// segments of r = gcd(head_dim, 32) values before the keys are quantized: a segment never crosses a head, and the
// transform spreads one large value over the segment, so the block's scale follows the typical value rather than
// the outlier.  v[0..n) in place, n a multiple of r; r a power of two up to 32.
void hadamard_segments(inout float v[32], uint n, uint r)
{
    for (uint h = 1u; h < 32u; h *= 2u) {
        if (h >= r) break;
        for (uint i = 0u; i < 32u; i++) {
            if (i >= n) break;
            if ((i & h) == 0u) {
                float a = v[i], b = v[i + h];
                v[i] = a + b;
                v[i + h] = a - b;
            }
        }
    }
    // 1 / sqrt(r) as a power of two and, for odd log2(r), one more factor of 1/sqrt(2): the same two roundings
    // as the C reference (tests/harness/ref_attention.c), where inversesqrt would differ in the last bit.
    const uint lg = findLSB(r);
    const float s = 1.0 / float(1u << (lg / 2u));
    for (uint i = 0u; i < 32u; i++) {
        if (i >= n) break;
        v[i] *= s;
        if ((lg & 1u) != 0u) v[i] *= 0.70710678118654752;
    }
}

#endif
