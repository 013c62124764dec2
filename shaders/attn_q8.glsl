// The attention output of one (token, head) row also quantized to 8-bit blocks of 32 (q8.glsl), for the integer
// mat-vec of the output projection: token t is column t of that layout, the head's elements are its blocks
// h * HD4 / 8 ...  (head_dim a multiple of 32).  The includer declares HD4, the push constant p.n_heads and
// binding 6 or as it chooses (Q8_BINDING), runs attn_q8_stage(c, o) for each chunk c (4 elements) of the row it
// writes, then attn_q8_store(row) in uniform control flow.  The same bits as quantize_q8.comp makes of out.
#ifndef VKLLM_ATTN_Q8_GLSL
#define VKLLM_ATTN_Q8_GLSL
#include "q8.glsl"

layout(std430, binding = Q8_BINDING) writeonly buffer Q8 { uint q8[]; }; // [n_tokens][Q8_COL_WORDS(4 HD4 n_heads)]
shared vec4 q8_staged[HD4];
shared float q8_chunk_max[HD4];
shared int q8_chunk_sum[HD4];

void attn_q8_stage(uint c, vec4 o)
{
    q8_staged[c] = o;
    q8_chunk_max[c] = max(max(abs(o.x), abs(o.y)), max(abs(o.z), abs(o.w)));
}

// Chunk c is word c % 8 of the head's block c / 8: each invocation quantizes its chunks with the block's largest
// magnitude, then one per block writes its scale and level sums.
void attn_q8_store(uint row)
{
    barrier();
    const uint t = row / p.n_heads, h = row % p.n_heads, cols = 4u * HD4 * p.n_heads;
    const uint qbase = t * Q8_COL_WORDS(cols), level_words = Q8_LEVEL_WORDS(cols), head_blocks = HD4 / 8u;
    for (uint c = gl_LocalInvocationID.x, guard = 0u; c < HD4; c += gl_WorkGroupSize.x) {
        LOOP_GUARD(guard, HD4);
        const uint blk = c / 8u;
        float amax = 0.0;
        [[unroll]] for (uint i = 0u; i < 8u; i++) amax = max(amax, q8_chunk_max[8u * blk + i]);
        int sum;
        q8[qbase + 8u * (h * head_blocks + blk) + c % 8u] = q8_word(q8_staged[c], amax, sum);
        q8_chunk_sum[c] = sum;
    }
    barrier();
    for (uint blk = gl_LocalInvocationID.x, guard = 0u; blk < head_blocks; blk += gl_WorkGroupSize.x) {
        LOOP_GUARD(guard, head_blocks);
        float amax = 0.0;
        int lower = 0, upper = 0;
        [[unroll]] for (uint i = 0u; i < 8u; i++) amax = max(amax, q8_chunk_max[8u * blk + i]);
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            lower += q8_chunk_sum[8u * blk + i];
            upper += q8_chunk_sum[8u * blk + 4u + i];
        }
        const uint b = h * head_blocks + blk;
        q8[qbase + level_words + 2u * b] = floatBitsToUint(amax * Q8_INV_127);
        q8[qbase + level_words + 2u * b + 1u] = q8_sums_word(lower, upper);
    }
}
#endif
