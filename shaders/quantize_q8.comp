#version 450
// x F32 [n][cols] (cols a multiple of 32) -> 8-bit blocks of 32 for the mat-vec's integer path (matvec.comp
// INT_DOT), one invocation per block.  Layout (q8.glsl): column c takes Q8_COL_WORDS(cols) words from word
// c * Q8_COL_WORDS; block b's levels are words 8b..8b+7 (four int8 per word, in element order), and after all
// the column's levels, word pair b holds the block's scale d (f32 bits) and the sums of its levels 0..15 and
// 16..31 (int16 each, low half first).
//
// d = amax * fl(1/127) and level = round(127 * x / amax), ties away from zero, computed exactly in integers
// (q8.glsl, shared with the RMSNorm that writes this form itself, rms_norm.comp QUANTIZE_Q8):
// every device (whatever its division precision) and the C reference (tests/harness) agree bit for bit, and
// x = d * level to within d / 2 (plus amax's rounding).
//
// SUBGROUP (quantize_q8_sg): 8 invocations per block, one word (4 elements) each, the block's amax and level
// sums through shuffles among those 8 lanes (the host pins a subgroup size that is a multiple of 8 and makes
// the workgroup whole subgroups).  On a GPU a block per invocation is a chain of 8 loads and 32 integer
// divisions on few lanes: for one token's 4096 elements, 128 invocations wait on it, where 1024 each take
// one load and 4 divisions.  The same arithmetic per element, so both variants give the same bits.
#extension GL_EXT_control_flow_attributes : require
#if defined(SUBGROUP)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"
#include "q8.glsl"

layout(std430, binding = 0) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer Q4 { uvec4 q4[]; };
layout(std430, binding = 1) writeonly buffer Q2 { uvec2 q2[]; };
layout(std430, binding = 1) writeonly buffer Q1 { uint q1[]; };

layout(push_constant) uniform Push {
    uint blocks; // n * cols / 32
    uint cols;
} p;

#if defined(SUBGROUP)
// Lanes lane ^ 1, ^ 2, ^ 4 of the same block (8 consecutive invocations, aligned in the subgroup).
float block_max(float v)
{
    v = max(v, subgroupShuffleXor(v, 1u));
    v = max(v, subgroupShuffleXor(v, 2u));
    return max(v, subgroupShuffleXor(v, 4u));
}

void main()
{
    const uint i = linear_invocation(), block = i / 8u, lane = i % 8u;
    // Every lane takes part in the shuffles; those past the last block load zeros and store nothing.
    const bool live = block < p.blocks;
    const uint nb = p.cols / 32u, c = live ? block / nb : 0u, b = live ? block % nb : 0u;
    const vec4 v = live ? x4[(c * p.cols + 32u * b) / 4u + lane] : vec4(0.0);
    const float amax = block_max(max(max(abs(v.x), abs(v.y)), max(abs(v.z), abs(v.w))));
    int sum;
    const uint word = q8_word(v, amax, sum);
    sum += subgroupShuffleXor(sum, 1u); // lanes 0..3: levels 0..15; lanes 4..7: levels 16..31
    sum += subgroupShuffleXor(sum, 2u);
    const int upper = subgroupShuffleXor(sum, 4u);
    if (!live) return;
    const uint base = c * Q8_COL_WORDS(p.cols);
    q1[base + 8u * b + lane] = word;
    if (lane == 0u)
        q2[(base + Q8_LEVEL_WORDS(p.cols)) / 2u + b] =
            uvec2(floatBitsToUint(amax * Q8_INV_127), q8_sums_word(sum, upper));
}
#else
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
    uint words[8];
    int sums[2] = int[2](0, 0);
    [[unroll]] for (uint w = 0; w < 8u; w++) {
        int sum;
        words[w] = q8_word(v[w], amax, sum);
        sums[w / 4u] += sum;
    }
    const uint base = c * Q8_COL_WORDS(p.cols);
    q4[base / 4u + 2u * b] = uvec4(words[0], words[1], words[2], words[3]);
    q4[base / 4u + 2u * b + 1u] = uvec4(words[4], words[5], words[6], words[7]);
    q2[(base + Q8_LEVEL_WORDS(p.cols)) / 2u + b] =
        uvec2(floatBitsToUint(amax * Q8_INV_127), q8_sums_word(sums[0], sums[1]));
}
#endif
