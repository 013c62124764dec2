/* The device struct, shared by the runtime's own files only. */
#ifndef VKLLM_RUNTIME_DEVICE_INTERNAL_H
#define VKLLM_RUNTIME_DEVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "device.h"
#include "memory.h"

typedef struct vkr_pipeline vkr_pipeline;
typedef struct vkr_block vkr_block;

typedef struct vkr_profile_entry {
    char label[48];
    uint64_t count;
    double total_ms;
} vkr_profile_entry;

struct vkr_device {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger; /* only with validation */
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    VkCommandPool command_pool;   /* for one-shot transfers; guarded by lock */
    pthread_mutex_t lock;         /* queue submission, one-shot pool, allocator, pipeline table */
    /* One-shot transfers (memory.c) reuse one command buffer and one fence, reset between uses; pending when
     * a wait on them failed, so the next transfer waits again before touching either. */
    VkCommandBuffer transfer_cmd;
    VkFence transfer_fence;
    bool transfer_pending;
    double transfer_submitted_at;
    uint64_t fence_timeout_ns;    /* per fence wait (vkr_set_fence_timeout) */
    uint64_t fence_timeout_default_ns; /* VKLLM_FENCE_TIMEOUT_MS or the default for the device type (queue.c) */
    _Atomic uint64_t submits;     /* vkQueueSubmit calls made, transfers and sequences alike */
    uint32_t pipelines_built;     /* pipelines compiled since creation, and the seconds they took */
    double pipeline_build_seconds;
    vkr_caps caps;
    atomic_uint validation_errors;
    bool profiling;

    vkr_pipeline **pipelines;     /* every pipeline created so far (cached by shader + spec constants) */
    uint32_t pipeline_count, pipeline_capacity;
    VkPipelineCache pipeline_cache;
    char *pipeline_cache_path;

    uint32_t memory_type[VKR_MEMORY_KIND_COUNT]; /* chosen memory type index per kind */
    vkr_block *blocks[VKR_MEMORY_KIND_COUNT];    /* sub-allocated blocks per kind (linked) */
    uint64_t bytes_allocated[VKR_MEMORY_KIND_COUNT]; /* VkDeviceMemory currently held */
    uint64_t peak_device_bytes;

    vkr_buffer staging;           /* host-visible bounce buffer for uploads and read-backs */

    /* The shader-check build's debug buffer, bound at set 1 of every pipeline (shader_checks.c). */
    vkr_buffer checks_buffer;
    VkDescriptorSetLayout checks_layout;
    VkDescriptorPool checks_pool;
    VkDescriptorSet checks_set;

    vkr_profile_entry *profile;
    uint32_t profile_count, profile_capacity;
    uint64_t profile_dispatches, profile_barriers; /* of the sequences profiled since the last print */
};

void vkr_pipelines_destroy(vkr_device *dev);
/* Queue submission and fence waits (queue.c): every submit is counted, every wait has a timeout and names
 * what it waited for ("what") in its error. */
/* The caller holds dev->lock (the queue must be externally synchronized). */
vkllm_status vkr_queue_submit(vkr_device *dev, VkCommandBuffer cmd, VkFence fence, const char *what);
/* submitted_at: vkllm_log_clock() at the submission, for the elapsed time an error reports. */
vkllm_status vkr_fence_wait(vkr_device *dev, VkFence fence, double submitted_at, const char *what);
vkllm_status vkr_queue_init(vkr_device *dev); /* reads VKLLM_FENCE_TIMEOUT_MS */
void vkr_memory_destroy(vkr_device *dev);
vkllm_status vkr_memory_init(vkr_device *dev);
/* The memory type buffers of `kind` are allocated from (memory.c), -1 if none fits. */
int vkr_memory_type_for(const VkPhysicalDeviceMemoryProperties *mem, vkr_memory_kind kind, bool uma);
vkllm_status vkr_pipeline_cache_open(vkr_device *dev);
void vkr_profile_add(vkr_device *dev, const char *label, double ms);
/* Adds a profiled sequence's dispatches and barriers to the next vkr_device_print_profile's totals. */
void vkr_profile_count(vkr_device *dev, uint32_t dispatches, uint32_t barriers);

#endif
