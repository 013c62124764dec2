/* The shader-check build (-DVKLLM_SHADER_CHECKS=ON): every loop of every shader carries a guard
 * (LOOP_GUARD in shaders/common.glsl) that, past the loop's bound, records the shader and line in a small
 * debug buffer and breaks out of the loop.  The runtime binds that buffer to every pipeline at set 1,
 * binding 0, tells each pipeline its number (specialization constant VKR_SHADER_CHECK_ID_CONSTANT), and reads
 * the buffer after every sequence wait, failing it with an error that names the shader.  lavapipe, where
 * every test runs, stops any loop at 65,535 iterations without a word, so without the guards an endless
 * loop passes every test and hangs a real GPU.  In other builds these functions do nothing. */
#ifndef VKLLM_RUNTIME_SHADER_CHECKS_H
#define VKLLM_RUNTIME_SHADER_CHECKS_H

#include <stdbool.h>

#include <volk.h>

#include "error.h"

typedef struct vkr_device vkr_device;

/* constant_id of SHADER_CHECK_ID in shaders/common.glsl: above any op's own constants (0..VKR_MAX_SPEC-1). */
#define VKR_SHADER_CHECK_ID_CONSTANT 200u

#if defined(VKLLM_SHADER_CHECKS)
#define VKR_SHADER_CHECKS 1
#else
#define VKR_SHADER_CHECKS 0
#endif

/* Whether this build has the guards. */
static inline bool vkr_shader_checks_enabled(void) { return VKR_SHADER_CHECKS; }

vkllm_status vkr_shader_checks_init(vkr_device *dev);
void vkr_shader_checks_destroy(vkr_device *dev);
/* The set layout pipelines append as set 1 (VK_NULL_HANDLE without checks). */
VkDescriptorSetLayout vkr_shader_checks_layout(const vkr_device *dev);
/* Binds the debug buffer at set 1 for the pipeline layout `layout`. */
void vkr_shader_checks_bind(const vkr_device *dev, VkCommandBuffer cmd, VkPipelineLayout layout);
/* After a wait: fails if a guard fired, naming the shader, its line, the bound and `what` (the sequence), and
 * clears the buffer for the next submission. */
vkllm_status vkr_shader_checks_collect(vkr_device *dev, const char *what);

#endif
