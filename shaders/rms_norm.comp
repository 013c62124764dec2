#version 450
// RMSNorm fused with its weight, one row per workgroup:
//   out[r][c] = x[r][c] / sqrt(mean_c(x[r][c]^2) + eps) * w[c]
// ADD_RESIDUAL: the residual add before it in the same pass (one dispatch less per norm):
//   x[r][c] += add[r][c], then the norm of the sum.
// QUANTIZE_Q8: also out quantized to 8-bit blocks of 32 (q8.glsl; row r is column r of that layout), for the
//   mat-vec's integer path, which then skips its own quantize_q8 dispatch: the same bits as quantize_q8.comp
//   makes of out (the same float outputs, the same q8.glsl arithmetic).  The host runs it where the workgroup is
//   a multiple of 8 invocations and cols of 32: a step of UNROLL * wg outputs is then whole blocks, staged in
//   shared memory and quantized 8 invocations per block, one word (4 outputs) each.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"
#include "reduce.glsl"
#if defined(QUANTIZE_Q8)
#include "q8.glsl"
#endif
#if defined(ADD_RESIDUAL)
layout(std430, binding = 0) restrict buffer X { float x[]; };
layout(std430, binding = 3) restrict readonly buffer Add { float add[]; };
#else
layout(std430, binding = 0) restrict readonly buffer X { float x[]; };
#endif
layout(std430, binding = 1) restrict readonly buffer W { float w[]; };
layout(std430, binding = 2) restrict writeonly buffer Out { float result[]; };
#if defined(QUANTIZE_Q8)
layout(std430, binding = 4) restrict writeonly buffer Q8 { uint q8[]; }; // [rows][Q8_COL_WORDS(cols)]
#endif
layout(push_constant) uniform Push { uint rows; uint cols; float eps; } p;

// VEC4 (the host's choice where cols % 4 == 0 and the ranges start on 16 bytes): each invocation takes every WG-th
// vec4 of the row, a load or store per 4 values where the loops below make one per value (on lavapipe every
// storage-buffer access at a per-lane address is a loop over the lanes).  Another order of the sum of squares than
// the scalar loop's, the same for any number of rows; QUANTIZE_Q8 sums the same way (the same bits as the plain
// variant and quantize_q8.comp).
layout(constant_id = 2) const bool VEC4 = false;
#if defined(ADD_RESIDUAL)
layout(std430, binding = 0) buffer X4 { vec4 x4[]; };
layout(std430, binding = 3) readonly buffer Add4 { vec4 add4[]; };
#else
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
#endif
layout(std430, binding = 1) readonly buffer W4 { vec4 w4[]; };
layout(std430, binding = 2) writeonly buffer Out4 { vec4 result4[]; };

// This invocation's part of the row's sum of squares (after the residual add, stored back), vec4 by vec4.
float squares_vec4(uint row)
{
    const uint n4 = p.cols / 4u, base4 = row * n4, lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    float squares = 0.0;
    for (uint c = lid, guard = 0u; c < n4; c += wg) {
        LOOP_GUARD(guard, n4);
#if defined(ADD_RESIDUAL)
        const vec4 v = x4[base4 + c] + add4[base4 + c];
        x4[base4 + c] = v; // read back by this same invocation: no barrier needed
#else
        const vec4 v = x4[base4 + c];
#endif
        squares += dot(v, v);
    }
    return squares;
}

#if !defined(QUANTIZE_Q8)
void store_vec4(uint row, float scale)
{
    const uint n4 = p.cols / 4u, base4 = row * n4, lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    for (uint c = lid, guard = 0u; c < n4; c += wg) {
        LOOP_GUARD(guard, n4);
        result4[base4 + c] = x4[base4 + c] * scale * w4[c];
    }
}
#endif

// Each pass takes UNROLL elements per invocation at a time, all loads before any store: a row is one
// workgroup, so on a GPU (one token: one workgroup on one multiprocessor) the pass is bound by memory latency,
// and a loop of one load and one store per step waits a full round trip per element (the store to x may
// alias the next load as far as the compiler knows).  `restrict`: no binding aliases another.
const uint UNROLL = 4u;

#if defined(QUANTIZE_Q8)
// A step's UNROLL * wg outputs, one float of padding after every 32 (a block): the 8 invocations of a block read
// words 4 floats apart, and the blocks of one 32-wide subgroup then start in 4 different banks.
shared float q8_stage[UNROLL * gl_WorkGroupSize.x / 32u * 33u];
shared float q8_max[gl_WorkGroupSize.x]; // the largest magnitude of each invocation's word
shared int q8_sum[gl_WorkGroupSize.x];   // the sum of its levels
uint staged(uint i) { return i + i / 32u; }

// The second pass of the norm (out = x * scale * w) with every output also quantized.  Each invocation computes
// and stores the outputs the plain variant's invocation does (elements lid + k wg, the same expression: the same
// bits), stages them; then invocation lid takes word lid % 8 of block lid / 8 of the step.  Three barriers per
// step, in uniform control flow: every invocation runs the same steps (s0 does not depend on lid).
void store_quantized(uint row, uint base, float scale)
{
    const uint lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    const uint qbase = row * Q8_COL_WORDS(p.cols), level_words = Q8_LEVEL_WORDS(p.cols);
    const uint blk = lid / 8u, word = lid % 8u; // in the step
    for (uint s0 = 0u, guard = 0u; s0 < p.cols; s0 += UNROLL * wg) {
        LOOP_GUARD(guard, p.cols);
        float v[UNROLL], g[UNROLL];
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
            const uint c = s0 + u * wg + lid;
            // VEC4 reads x through the view it wrote it with (the sum's pass)
            v[u] = c < p.cols ? (VEC4 ? x4[(base + c) / 4u][(base + c) % 4u] : x[base + c]) : 0.0;
            g[u] = c < p.cols ? (VEC4 ? w4[c / 4u][c % 4u] : w[c]) : 0.0;
        }
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
            const uint c = s0 + u * wg + lid;
            const float o = v[u] * scale * g[u];
            if (c < p.cols) result[base + c] = o;
            q8_stage[staged(u * wg + lid)] = o; // past cols: whole blocks past it, never stored
        }
        barrier(); // the step's outputs are staged
        vec4 mine;
        [[unroll]] for (uint e = 0; e < 4u; e++) mine[e] = q8_stage[staged(32u * blk + 4u * word + e)];
        q8_max[lid] = max(max(abs(mine.x), abs(mine.y)), max(abs(mine.z), abs(mine.w)));
        barrier(); // every word's largest magnitude is in q8_max
        float amax = q8_max[8u * blk];
        [[unroll]] for (uint i = 1u; i < 8u; i++) amax = max(amax, q8_max[8u * blk + i]);
        int sum;
        const uint levels = q8_word(mine, amax, sum);
        q8_sum[lid] = sum;
        const uint b = s0 / 32u + blk; // block of the row (wg % 8 == 0: a step is whole blocks)
        const bool live = 32u * b < p.cols;
        if (live) q8[qbase + 8u * b + word] = levels;
        barrier(); // every word's level sum is in q8_sum
        if (live && word == 0u) {
            const int lower = q8_sum[lid] + q8_sum[lid + 1u] + q8_sum[lid + 2u] + q8_sum[lid + 3u];
            const int upper = q8_sum[lid + 4u] + q8_sum[lid + 5u] + q8_sum[lid + 6u] + q8_sum[lid + 7u];
            q8[qbase + level_words + 2u * b] = floatBitsToUint(amax * Q8_INV_127);
            q8[qbase + level_words + 2u * b + 1u] = q8_sums_word(lower, upper);
        }
        // The next step writes q8_stage before its first barrier: this step read it before its second.  It
        // writes q8_max and q8_sum after its first and second: this step read them before its third / before
        // reaching the next step's first.
    }
}
#endif

void main()
{
    uint row = linear_group();
    if (row >= p.rows) return; // the whole workgroup leaves together: barriers stay in uniform control flow
    const uint base = row * p.cols, lid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;
    float squares = 0.0;
    if (VEC4) squares = squares_vec4(row);
    else for (uint c0 = lid, guard = 0u; c0 < p.cols; c0 += UNROLL * wg) {
        LOOP_GUARD(guard, p.cols);
        float v[UNROLL];
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
            const uint c = c0 + u * wg;
#if defined(ADD_RESIDUAL)
            v[u] = c < p.cols ? x[base + c] + add[base + c] : 0.0;
#else
            v[u] = c < p.cols ? x[base + c] : 0.0;
#endif
        }
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
#if defined(ADD_RESIDUAL)
            const uint c = c0 + u * wg;
            if (c < p.cols) x[base + c] = v[u]; // read back below by this same invocation: no barrier needed
#endif
            squares += v[u] * v[u];
        }
    }
    float scale = inversesqrt(workgroup_sum(squares) / float(p.cols) + p.eps);
#if defined(QUANTIZE_Q8)
#if defined(ADD_RESIDUAL)
    if (VEC4) { // the sums were stored vec4 by vec4; the quantized store reads them value by value, across invocations
        memoryBarrierBuffer();
        barrier();
    }
#endif
    store_quantized(row, base, scale);
#else
    if (VEC4) {
        store_vec4(row, scale);
        return;
    }
    for (uint c0 = lid, guard = 0u; c0 < p.cols; c0 += UNROLL * wg) {
        LOOP_GUARD(guard, p.cols);
        float v[UNROLL], g[UNROLL];
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
            const uint c = c0 + u * wg;
            v[u] = c < p.cols ? x[base + c] : 0.0;
            g[u] = c < p.cols ? w[c] : 0.0;
        }
        [[unroll]] for (uint u = 0; u < UNROLL; u++) {
            const uint c = c0 + u * wg;
            if (c < p.cols) result[base + c] = v[u] * scale * g[u];
        }
    }
#endif
}
