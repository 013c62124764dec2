#version 450
// Index of the largest value of each row, the first one on ties (like a CPU loop with '>'); NaN-free input.
// One row per workgroup: each invocation scans a strided part of the row, then the workgroup reduces
// (value, index) pairs: subgroup max and min-index-among-the-max, or a shared-memory tree.
#include "common.glsl"
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
#endif
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { int result[]; };
layout(push_constant) uniform Push { uint rows; uint cols; } p;

const uint NONE = 0xffffffffu; // no index yet: loses every comparison

shared float best_value[gl_WorkGroupSize.x];
shared uint best_index[gl_WorkGroupSize.x];

// Whether (v, i) beats (bv, bi): larger value, or the same value at a smaller index.
bool beats(float v, uint i, float bv, uint bi) { return v > bv || (v == bv && i < bi); }

void main()
{
    uint row = linear_group();
    if (row >= p.rows) return; // the whole workgroup leaves together: barriers stay in uniform control flow
    uint t = gl_LocalInvocationID.x;
    uint base = row * p.cols;
    // Columns grow along the scan, so '>' keeps the first of equal values; the first column read is taken
    // whatever its value, so a row of -inf still gives index 0.
    float v = -1.0 / 0.0;
    uint idx = NONE;
    for (uint c = t, guard = 0u; c < p.cols; c += gl_WorkGroupSize.x) {
        LOOP_GUARD(guard, p.cols);
        float xc = x[base + c];
        if (idx == NONE || xc > v) {
            v = xc;
            idx = c;
        }
    }
#ifdef USE_SUBGROUP
    float m = subgroupMax(v);
    idx = subgroupMin(v == m ? idx : NONE);
    v = m;
    // Subgroups in the workgroup (not gl_NumSubgroups, which lavapipe rounds down: see reduce.glsl).
    const uint n_subgroups = (gl_WorkGroupSize.x + gl_SubgroupSize - 1u) / gl_SubgroupSize;
    if (n_subgroups > 1u) {
        if (subgroupElect()) {
            best_value[gl_SubgroupID] = v;
            best_index[gl_SubgroupID] = idx;
        }
        barrier();
        if (t == 0)
            for (uint s = 1, guard = 0u; s < n_subgroups; s++) {
                LOOP_GUARD(guard, gl_WorkGroupSize.x);
                if (beats(best_value[s], best_index[s], v, idx)) {
                    v = best_value[s];
                    idx = best_index[s];
                }
            }
    }
#else
    uint n = gl_WorkGroupSize.x;
    best_value[t] = v;
    best_index[t] = idx;
    barrier();
    for (uint s = n > 1 ? 1u << findMSB(n - 1) : 0; s > 0; s >>= 1) {
        if (t < s && t + s < n && beats(best_value[t + s], best_index[t + s], best_value[t], best_index[t])) {
            best_value[t] = best_value[t + s];
            best_index[t] = best_index[t + s];
        }
        barrier();
    }
    idx = best_index[0];
#endif
    if (t == 0) result[row] = int(idx);
}
