// Workgroup-wide reductions for the shaders that give one row to one workgroup: every invocation passes its
// partial value and gets the total back.  Include after common.glsl (the shared arrays are sized by the
// workgroup size).  Callers keep these in uniform control flow: they contain barriers.
//   USE_SUBGROUP: subgroup arithmetic, then one value per subgroup through shared memory; when the workgroup
//                 is a single subgroup (lavapipe: 8 lanes) there is no barrier at all (ONE_SUBGROUP, below).
//   otherwise:    a shared-memory tree, for devices without subgroup arithmetic (or VKLLM_DISABLE_SUBGROUP=1).
#ifndef VKLLM_REDUCE_GLSL
#define VKLLM_REDUCE_GLSL

#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require
#endif

shared float reduce_scratch[gl_WorkGroupSize.x];

float reduce_combine(float a, float b, bool is_max) { return is_max ? max(a, b) : a + b; }

#ifdef USE_SUBGROUP
// Specialization constant 1, the host's word that the workgroup is one subgroup (ops_row_pipeline): the compiler
// then drops the shared-memory step and its barriers, which lavapipe pays for in every workgroup, taken or not.
layout(constant_id = 1) const bool ONE_SUBGROUP = false;

// Subgroups in the workgroup, the last one partial when the size does not divide.  Not gl_NumSubgroups:
// lavapipe (Mesa 22.3) rounds that down (24 invocations in subgroups of 16 report 1 subgroup, though
// gl_SubgroupID reaches 1), and a merge over it drops the partial subgroup's values.
uint workgroup_subgroups() { return (gl_WorkGroupSize.x + gl_SubgroupSize - 1u) / gl_SubgroupSize; }

float reduce_workgroup(float v, bool is_max)
{
    float s = is_max ? subgroupMax(v) : subgroupAdd(v);
    const uint n_subgroups = workgroup_subgroups();
    if (ONE_SUBGROUP || n_subgroups == 1u) return s;
    barrier(); // an earlier reduction's readers are done with the scratch
    if (subgroupElect()) reduce_scratch[gl_SubgroupID] = s;
    barrier();
    float total = reduce_scratch[0];
    for (uint i = 1, guard = 0u; i < n_subgroups; i++) {
        LOOP_GUARD(guard, gl_WorkGroupSize.x);
        total = reduce_combine(total, reduce_scratch[i], is_max);
    }
    return total;
}
#else
float reduce_workgroup(float v, bool is_max)
{
    uint t = gl_LocalInvocationID.x;
    uint n = gl_WorkGroupSize.x;
    barrier(); // an earlier reduction's readers are done with the scratch
    reduce_scratch[t] = v;
    barrier();
    // Halving strides from the largest power of two below n, so any workgroup size works.
    for (uint s = n > 1 ? 1u << findMSB(n - 1) : 0; s > 0; s >>= 1) {
        if (t < s && t + s < n) reduce_scratch[t] = reduce_combine(reduce_scratch[t], reduce_scratch[t + s], is_max);
        barrier();
    }
    return reduce_scratch[0];
}
#endif

float workgroup_sum(float v) { return reduce_workgroup(v, false); }
float workgroup_max(float v) { return reduce_workgroup(v, true); }

#endif
