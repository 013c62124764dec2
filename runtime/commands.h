/* Sequences: dispatches recorded once into a command buffer, with the barriers they need, and replayed
 * with one queue submission and a fence wait each time.
 *
 *   vkr_sequence_begin(seq);
 *   vkr_sequence_dispatch(seq, pipeline, bindings, &push, groups, "rms_norm");
 *   ...
 *   vkr_sequence_end(seq);
 *   vkr_sequence_run(seq);          // submit + wait; may be called again to replay
 *
 * Barriers: a dispatch or copy that touches bytes an earlier command of the same sequence wrote (or writes
 * bytes an earlier one read) gets a compute/transfer memory barrier before it; independent commands run
 * without one.  Bindings are writable unless the pipeline's readonly_mask says otherwise. */
#ifndef VKLLM_RUNTIME_COMMANDS_H
#define VKLLM_RUNTIME_COMMANDS_H

#include "memory.h"
#include "pipeline.h"

typedef struct vkr_sequence vkr_sequence;

vkllm_status vkr_sequence_create(vkr_device *dev, vkr_sequence **out);
void vkr_sequence_destroy(vkr_sequence *seq);

/* Starts recording, discarding what was recorded before. */
vkllm_status vkr_sequence_begin(vkr_sequence *seq);
/* bindings[i] is bound at binding i; each range must be <= maxStorageBufferRange and its offset a multiple
 * of minStorageBufferOffsetAlignment -- or, for a texel binding (the pipeline's texel_format), whole texels,
 * at most maxTexelBufferElements, offset a multiple of minTexelBufferOffsetAlignment: the sequence creates
 * a VkBufferView for it, kept until the next vkr_sequence_begin or vkr_sequence_destroy.
 * groups = workgroup counts (x, y, z), each within the device limit. */
vkllm_status vkr_sequence_dispatch(vkr_sequence *seq, const vkr_pipeline *pipeline, const vkr_range *bindings,
                                   const void *push, const uint32_t groups[3], const char *label);
/* Whether r may be bound as a texel binding viewed in `format` (the rule above), for callers that fall back to
 * a storage-buffer variant where it may not. */
bool vkr_texel_range_fits(const vkr_device *dev, const vkr_range *r, VkFormat format);
vkllm_status vkr_sequence_copy(vkr_sequence *seq, vkr_range src, vkr_range dst);
vkllm_status vkr_sequence_end(vkr_sequence *seq);

/* Names the sequence in errors (a wait that times out) and the stage log, e.g. "decode 1 token". */
void vkr_sequence_set_label(vkr_sequence *seq, const char *label);
vkllm_status vkr_sequence_submit(vkr_sequence *seq);
/* Waits at most the device's fence timeout (vkr_set_fence_timeout); on a timeout the sequence stays in flight
 * and the error names it, its first dispatch and how long ago it was submitted. */
vkllm_status vkr_sequence_wait(vkr_sequence *seq);
vkllm_status vkr_sequence_run(vkr_sequence *seq);
/* Submits like vkr_sequence_submit and also signals the timeline semaphore to value (VK_NULL_HANDLE: none). */
vkllm_status vkr_sequence_submit_signal(vkr_sequence *seq, VkSemaphore timeline, uint64_t value);
/* Without blocking: *done once the submitted work has finished (then as vkr_sequence_wait: profile, shader checks);
 * a sequence not in flight is done. */
vkllm_status vkr_sequence_poll(vkr_sequence *seq, bool *done);
/* A barrier before the next command against every earlier command on the queue (compute and transfer writes):
 * a sequence that continues another one's work in a later submission starts with it. */
vkllm_status vkr_sequence_barrier(vkr_sequence *seq);
/* Timed sequences (set before vkr_sequence_begin) write a GPU timestamp at their start and end; after a
 * completed run, vkr_sequence_gpu_us gives the time between them (false if the device has no timestamps). */
void vkr_sequence_set_timed(vkr_sequence *seq, bool timed);
bool vkr_sequence_gpu_us(vkr_sequence *seq, double *us);

/* Timeline semaphores (Vulkan 1.2 timelineSemaphore), starting at 0. */
vkllm_status vkr_timeline_create(vkr_device *dev, VkSemaphore *out);
void vkr_timeline_destroy(vkr_device *dev, VkSemaphore timeline);
uint32_t vkr_sequence_dispatch_count(const vkr_sequence *seq);
/* Pipeline barriers recorded since the last begin: only where a dispatch reads or writes bytes an earlier
 * one since the previous barrier wrote (or writes bytes it read). */
uint32_t vkr_sequence_barrier_count(const vkr_sequence *seq);

/* Spreads n workgroups over x and y within maxComputeWorkGroupCount; shaders recover the linear index as
 * gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x and must skip indices >= n. */
void vkr_groups_1d(const vkr_device *dev, uint32_t n, uint32_t groups[3]);
static inline uint32_t vkr_div_up(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

#endif
