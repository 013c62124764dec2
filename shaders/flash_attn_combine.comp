#version 450
// Second pass of split flash attention: merges the partial records of the splits that hold keys of each
// (token, head) row.  One workgroup per row; invocations over chunks of 4 output elements.  Splits past
// the token's context were never written and are not read.
// QUANTIZE_Q8: the output also quantized to 8-bit blocks of 32 (q8.glsl; token t is column t of that layout,
//   the head's elements blocks h * head_dim / 32 ...; head_dim a multiple of 32), for the integer mat-vec of
//   the output projection, which then skips its own quantize_q8 dispatch: the same bits as quantize_q8.comp
//   makes of out.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(constant_id = 1) const uint HD4 = 16;   // head_dim / 4

// [n_tokens][n_heads][n_splits][1 + HD4]: (max, sum, 0, 0), then the unnormalized accumulator
layout(std430, binding = 0) readonly buffer Scratch { vec4 scratch[]; };
layout(std430, binding = 1) readonly buffer Tokens { ivec2 tokens[]; };   // {seq, pos}
layout(std430, binding = 2) writeonly buffer Out { vec4 out4[]; };       // [n_tokens][n_heads][HD4]

layout(push_constant) uniform Push {
    uint n_tokens, n_heads, n_seqs, max_positions;   // max_positions = max_pages_per_seq * page_size
    uint n_splits, split_len;
} p;
#if defined(QUANTIZE_Q8)
#define Q8_BINDING 3
#include "attn_q8.glsl"
#endif

const float NO_SCORE = -3.0e38;

void main()
{
    uint row = linear_group();
    if (row >= p.n_tokens * p.n_heads) return;
    ivec2 sp = token_slot(tokens[row / p.n_heads]);
    bool valid = sp.x >= 0 && uint(sp.x) < p.n_seqs && sp.y >= 0 && uint(sp.y) < p.max_positions;
    uint context = valid ? min(uint(sp.y) + 1u, p.n_splits * p.split_len) : 0u;
    uint used = (context + p.split_len - 1u) / p.split_len;
    uint first = row * p.n_splits * (HD4 + 1u);

    float row_max = NO_SCORE;
    for (uint s = 0, guard = 0u; s < used; s++) {
        LOOP_GUARD(guard, p.n_splits);
        row_max = max(row_max, scratch[first + s * (HD4 + 1u)].x);
    }
    float row_sum = 0.0;
    for (uint s = 0, guard = 0u; s < used; s++) {
        LOOP_GUARD(guard, p.n_splits);
        vec4 m = scratch[first + s * (HD4 + 1u)];
        row_sum += m.y * exp2(m.x - row_max);
    }
    for (uint c = gl_LocalInvocationID.x; c < HD4; c += gl_WorkGroupSize.x) {
        vec4 a = vec4(0.0);
        for (uint s = 0, guard = 0u; s < used; s++) {
            LOOP_GUARD(guard, p.n_splits);
            uint r = first + s * (HD4 + 1u);
            a += scratch[r + 1u + c] * exp2(scratch[r].x - row_max);
        }
        const vec4 o = row_sum > 0.0 ? a / row_sum : vec4(0.0);
        out4[row * HD4 + c] = o;
#if defined(QUANTIZE_Q8)
        attn_q8_stage(c, o);
#endif
    }
#if defined(QUANTIZE_Q8)
    attn_q8_store(row);
#endif
}
