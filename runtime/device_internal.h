/* The device struct, shared by the runtime's own files only, and the parts of device.c that the device's
 * creation (device_create.c) calls.
 *
 * The runtime's files call one way, down this list (each one's internal entry points in its own header):
 *   error.c, log.c              messages and the stage log
 *   device.c (+ queue.c)        instance, capabilities, device choice, logical device; submits and fence waits
 *   memory.c                    the sub-allocator and one-shot transfers (memory.h)
 *   pipeline.c                  pipelines and the pipeline cache (pipeline.h)
 *   shader_checks.c             the shader-check build's debug buffer (shader_checks.h)
 *   device_create.c             vkr_device_create / vkr_device_destroy: opens the device, then each part above
 *   commands.c                  recorded sequences, over all of them
 * This header holds data only, and device.c's functions. */
#ifndef VKLLM_RUNTIME_DEVICE_INTERNAL_H
#define VKLLM_RUNTIME_DEVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "device.h"
#include "fault.h"
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
    bool borrowed;                /* instance, device and queue are the host's (vkr_host_device): never destroyed */
    void (*queue_lock)(void *user); /* borrowed queue: the host's lock around every submission */
    void (*queue_unlock)(void *user);
    void *queue_lock_user;
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
    uint32_t cpu_threads;         /* vkr_device_options.cpu_threads the device was opened with */
    uint32_t cpu_workers;         /* threads a CPU device computes on (vkr_device_cpu_workers) */
    double spin_wait_s;           /* a fence wait polls this long before it sleeps (queue.c) */
    atomic_bool computing;        /* a polling device with work submitted and not yet waited for (queue.c) */
    _Atomic uint64_t submits;     /* vkQueueSubmit calls made, transfers and sequences alike */
    uint32_t pipelines_built;     /* pipelines compiled since creation, and the seconds they took */
    double pipeline_build_seconds;
    vkr_caps caps;
    atomic_uint validation_errors;
    vkr_faults faults;            /* VKLLM_FAIL_INJECT (fault.h), read at creation */
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

/* device.c: instance, physical device and logical device of a calloc'd, mutex-initialized dev (reads VKLLM_DEVICE,
 * VKLLM_VALIDATION, VKLLM_DISABLE_*, VKLLM_PROFILE, VKLLM_MAX_ALLOCATION); vkr_device_close undoes it (also after a
 * failed open) and frees the profile table. */
vkllm_status vkr_device_open(vkr_device *dev, const vkr_device_options *options);
void vkr_device_close(vkr_device *dev);
/* volk keeps one device's function pointers in globals: vkr_device_set_live names the device whose pointers a
 * listing or a failed creation puts back (vkr_device_restore_live). */
void vkr_device_set_live(vkr_device *dev);
/* device.c: the capabilities of pd as vkr_device_open reads them, less the disabled features; false if the device
 * cannot run vkllm.  khr_validated: see read_coopmat. */
bool vkr_read_device_caps(VkPhysicalDevice pd, uint32_t disable, bool khr_validated, vkr_caps *caps);
/* device.c: the options' VKR_DISABLE_* bits with those of the VKLLM_DISABLE_* variables. */
uint32_t vkr_disabled_features(const vkr_device_options *options);
/* device_host.c: vkr_device_open for options->host (the host's instance, device and queue). */
vkllm_status vkr_device_open_host(vkr_device *dev, const vkr_device_options *options);
void vkr_device_restore_live(void);
void vkr_profile_add(vkr_device *dev, const char *label, double ms);
/* Adds a profiled sequence's dispatches and barriers to the next vkr_device_print_profile's totals. */
void vkr_profile_count(vkr_device *dev, uint32_t dispatches, uint32_t barriers);

#endif
