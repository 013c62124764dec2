// Shared helpers of vkllm's compute shaders.
#ifndef VKLLM_COMMON_GLSL
#define VKLLM_COMMON_GLSL

// Workgroup size X is specialization constant 0 in every shader.  It is declared here, before any function
// uses gl_WorkGroupSize: glslang takes the value in force where a function is compiled, so a later
// declaration would leave these helpers computing with the default size 1.
layout(local_size_x_id = 0) in;

// Linear workgroup index when a dispatch spreads its groups over x and y (vkr_groups_1d).
uint linear_group()
{
    return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}

uint linear_invocation()
{
    return linear_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
}

#endif
