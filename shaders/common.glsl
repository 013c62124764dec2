// Shared helpers of vkllm's compute shaders.
//
// LOOP GUARDS -- every loop whose trip count is not a compile-time constant carries one:
//
//     for (uint c = lid, guard = 0u; c < p.cols; c += gl_WorkGroupSize.x) {
//         LOOP_GUARD(guard, p.cols);   // the first statement of the body
//         ...
//     }
//
//   - `guard` is the loop's own uint counter, starting at 0: declared in the for's init beside a uint loop
//     variable as above, else just before the loop (uint guard = 0u;).  Nested loops each have their own.
//   - The second argument is the most iterations the loop can take when the code is right, from the loop's
//     own bounds (push or specialization constants); a generous bound will do (p.cols for a loop striding
//     over p.cols).  In a loop with barrier() it must be the same for the whole workgroup, as loop bounds
//     there already are, so that all invocations leave together.
//   - Why: lavapipe, where every test runs, stops any loop after 65,535 iterations without a word, so an
//     endless or over-long loop passes every test there and hangs a real GPU.
//   - What it does: nothing in normal builds.  In the shader-check build (cmake -DVKLLM_SHADER_CHECKS=ON;
//     CI tests with it) a loop that runs past its bound, or past LOOP_GUARD_MAX iterations (below lavapipe's
//     cut) whatever its bound, records this shader and the line in a debug buffer and breaks out; the runtime
//     (runtime/shader_checks.h) fails the submission's wait with an error naming the shader and line.
//   - [[unroll]] loops over compile-time constants need no guard.
#ifndef VKLLM_COMMON_GLSL
#define VKLLM_COMMON_GLSL

// Workgroup size X is specialization constant 0 in every shader.  It is declared here, before any function
// uses gl_WorkGroupSize: glslang takes the value in force where a function is compiled, so a later
// declaration would leave these helpers computing with the default size 1.
layout(local_size_x_id = 0) in;

#if defined(VKLLM_SHADER_CHECKS)
// The pipeline's number (runtime/pipeline.c), so the runtime can name the shader whose guard fired.
layout(constant_id = 200) const uint SHADER_CHECK_ID = 0u;
// Set 1, binding 0 of every pipeline in this build (runtime/shader_checks.c reads and clears it).
layout(std430, set = 1, binding = 0) buffer ShaderChecks {
    uint fired;  // 0 until a guard fires
    uint shader; // SHADER_CHECK_ID of the first guard that fired
    uint line;   // its __LINE__ (of the .comp or of the included .glsl it is in)
    uint limit;  // the bound it passed
} shader_checks;

// Every vkllm loop stays well below lavapipe's silent cut at 65,535 iterations per invocation.
const uint LOOP_GUARD_MAX = 65000u;

bool loop_guard_trips(uint iterations, uint limit, uint line)
{
    const uint bound = min(limit, LOOP_GUARD_MAX);
    if (iterations <= bound) return false;
    if (atomicCompSwap(shader_checks.fired, 0u, 1u) == 0u) {
        shader_checks.shader = SHADER_CHECK_ID;
        shader_checks.line = line;
        shader_checks.limit = bound;
    }
    return true;
}
#define LOOP_GUARD(counter, limit) if (loop_guard_trips(++(counter), (limit), __LINE__)) break
#else
#define LOOP_GUARD(counter, limit)
#endif

// Linear workgroup index when a dispatch spreads its groups over x and y (vkr_groups_1d).
uint linear_group()
{
    return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}

uint linear_invocation()
{
    return linear_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
}

// tokens[t] = {seq, pos} of a batch row.  A node of a tree verification pass (Medusa) sits at cache position pos
// but is rotated at its depth: seq carries pos minus its RoPE position in bits 16..30 (src/model/decode.c,
// context_decode_tree; 0 for every other row).  token_slot strips it, token_rope_pos applies it.
ivec2 token_slot(ivec2 sp) { return ivec2(sp.x < 0 ? sp.x : (sp.x & 0xffff), sp.y); }
int token_rope_pos(ivec2 sp) { return sp.x < 0 ? sp.y : sp.y - (sp.x >> 16); }

#endif
