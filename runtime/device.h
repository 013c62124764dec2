/* Vulkan devices: instance (through volk), capability discovery, device choice, logical device.
 * Knows nothing of models. */
#ifndef VKLLM_RUNTIME_DEVICE_H
#define VKLLM_RUNTIME_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <volk.h>

#include "error.h"
#include "fault.h"

typedef enum vkr_vendor {
    VKR_VENDOR_UNKNOWN = 0,
    VKR_VENDOR_NVIDIA,
    VKR_VENDOR_AMD,
    VKR_VENDOR_INTEL,
    VKR_VENDOR_APPLE,
    VKR_VENDOR_ARM,
    VKR_VENDOR_QUALCOMM,
    VKR_VENDOR_MESA_CPU, /* lavapipe / llvmpipe and other software rasterizers */
    VKR_VENDOR_COUNT
} vkr_vendor;

#define VKR_MAX_HEAPS 16

/* Cooperative matrices (tensor cores, matrix cores): which kind the prompt mat-mul uses. */
typedef enum vkr_coopmat {
    VKR_COOPMAT_NONE = 0,
    VKR_COOPMAT_KHR,      /* VK_KHR_cooperative_matrix */
    VKR_COOPMAT_NV,       /* VK_NV_cooperative_matrix */
    VKR_COOPMAT_EMULATED, /* plain GLSL with the same tiling (VKLLM_COOPMAT=emulate; tests): no matrix hardware */
} vkr_coopmat;

/* Everything vkllm needs to know about a physical device, read once. */
typedef struct vkr_caps {
    char name[256];
    char driver_name[256];
    char driver_info[256];
    uint32_t vendor_id, device_id, driver_version, api_version;
    vkr_vendor vendor;
    VkPhysicalDeviceType type;

    uint32_t subgroup_size;         /* default subgroup size of compute shaders */
    uint32_t min_subgroup_size;     /* with subgroup size control; else == subgroup_size */
    uint32_t max_subgroup_size;
    bool subgroup_size_control;     /* requiredSubgroupSize usable in compute */
    bool full_subgroups;            /* computeFullSubgroups: pipelines may require every subgroup full */
    bool subgroup_compute;          /* subgroup ops available in compute shaders */
    VkSubgroupFeatureFlags subgroup_ops; /* basic, arithmetic, shuffle, ... */
    bool subgroup_arithmetic;       /* subgroupAdd & co. usable in compute (and not disabled) */
    bool subgroup_shuffle;          /* subgroupShuffleXor & co. usable in compute (and not disabled) */

    bool fp16_arith;                /* shaderFloat16 */
    bool storage16;                 /* storageBuffer16BitAccess */
    bool storage8;                  /* storageBuffer8BitAccess */
    bool int8_arith;                /* shaderInt8 */
    bool int_dot;                   /* shaderIntegerDotProduct */
    bool int_dot_accelerated;       /* 4x8-bit packed signed dot product is accelerated */
    bool int_dot_mixed_accelerated; /* 4x8-bit packed mixed-signedness dot product is accelerated */

    uint64_t max_storage_buffer_range;
    uint64_t max_memory_allocation; /* maxMemoryAllocationSize: the largest single vkAllocateMemory */
    bool max_memory_allocation_lowered; /* by VKLLM_MAX_ALLOCATION */
    uint64_t max_device_bytes;      /* VKLLM_MAX_DEVICE_MB: device-local memory vkllm may hold in all, as if the
                                       heap were that small (0: no cap); device-local heaps are reported capped */
    uint64_t min_storage_offset_alignment;
    uint32_t max_texel_buffer_elements; /* texels one uniform texel buffer view may span */
    uint64_t min_texel_offset_alignment; /* of a texel buffer view's offset */
    bool texel_rgba32;              /* R32G32B32A32 UINT and SFLOAT usable as uniform texel buffers */
    uint32_t max_shared_memory;
    uint32_t max_storage_buffers;   /* maxPerStageDescriptorStorageBuffers */
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_size[3];
    uint32_t max_workgroup_count[3];
    uint32_t max_push_constants;
    uint32_t max_workgroup_subgroups; /* maxComputeWorkgroupSubgroups (with size control; else 0: unknown) */

    /* Cooperative matrices, f16 x f16 + f32 -> f32 at subgroup scope.  A kind counts where the device has the
     * extension, its cooperativeMatrix feature, such a size, shaderFloat16, vulkanMemoryModel (the shaders use
     * the Vulkan memory model) and subgroup basic ops in compute. */
    vkr_coopmat coopmat;            /* the kind in use: KHR, else NV, else none (VKLLM_COOPMAT, _DISABLE_COOPMAT) */
    uint32_t coopmat_m, coopmat_n, coopmat_k; /* its size (M x K times K x N) */
    bool coopmat_khr, coopmat_nv;   /* which kinds the device has */
    uint32_t coopmat_khr_size[3], coopmat_nv_size[3]; /* their sizes: 16x16x16 where listed, else the first */
    bool coopmat_khr_unvalidated;   /* the device lists VK_KHR_cooperative_matrix, but the validation layer in
                                       use predates it (1.3.255) and would reject its structures and SPIR-V:
                                       KHR is left out (coopmat_khr false); run without validation to use it */

    uint32_t heap_count;
    uint64_t heap_size[VKR_MAX_HEAPS];
    bool heap_device_local[VKR_MAX_HEAPS];
    uint64_t device_local_bytes;    /* sum of device-local heaps */
    bool uma;                       /* integrated GPU or CPU: device memory is the host's (by device type) */

    bool timestamps;                /* compute queue supports timestamps */
    float timestamp_period_ns;
    uint32_t queue_family;          /* the compute queue family used */
} vkr_caps;

typedef struct vkr_device vkr_device;

/* Features a caller can turn off, so that the fallback runs as if the device lacked them (tests, bisecting a
 * driver bug).  The values are the public VKLLM_FEATURE_* bits (include/vkllm.h). */
enum {
    VKR_DISABLE_F16 = 1u << 0,       /* shaderFloat16 arithmetic */
    VKR_DISABLE_STORAGE16 = 1u << 1, /* 16-bit storage */
    VKR_DISABLE_STORAGE8 = 1u << 2,  /* 8-bit storage */
    VKR_DISABLE_SUBGROUP = 1u << 3,  /* subgroup operations */
    VKR_DISABLE_INT_DOT = 1u << 4,   /* integer dot product */
    VKR_DISABLE_TEXEL = 1u << 5,     /* RGBA32 uniform texel buffers */
    VKR_DISABLE_COOPMAT = 1u << 6,   /* cooperative matrices */
    VKR_DISABLE_ALL = (1u << 7) - 1,
};

/* What to open.  Each field left at its default defers to the environment, so the CLI and tests keep their
 * variables: device NULL or "" reads VKLLM_DEVICE; validation < 0 reads VKLLM_VALIDATION; the VKLLM_DISABLE_*
 * variables add their bits to disable. */
/* A device the embedder created and owns (vkllm_host_device): the runtime creates only its own objects on it
 * (pools, buffers, pipelines, fences, semaphores) and destroys none of the host's.  What the host enabled is read
 * from enabled_features (the pNext chain of its VkDeviceCreateInfo) and enabled_extensions: a feature left off
 * turns the matching fallback on, a feature without fallback (timelineSemaphore) fails the creation naming it. */
typedef struct vkr_host_device {
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    uint32_t queue_family;
    VkQueue queue;
    PFN_vkGetInstanceProcAddr get_instance_proc_addr;
    uint32_t api_version;                 /* VkApplicationInfo.apiVersion of the instance */
    const void *enabled_features;         /* VkPhysicalDeviceFeatures2 / VkPhysicalDeviceVulkan1xFeatures chain */
    const char *const *enabled_extensions;
    uint32_t n_enabled_extensions;
    void (*queue_lock)(void *user);       /* around every use of queue; NULL: a process-wide mutex of the runtime */
    void (*queue_unlock)(void *user);
    void *queue_lock_user;
} vkr_host_device;

typedef struct vkr_device_options {
    const char *device; /* index ("1") or a case-insensitive name substring ("llvmpipe"); NULL: best by type */
    int validation;     /* > 0: the Khronos validation layer on (its errors counted), 0: off, < 0: the variable */
    uint32_t disable;   /* VKR_DISABLE_* bits */
    const vkr_host_device *host; /* non-NULL: run on the host's device (device and validation are ignored) */
    /* Threads a CPU device (lavapipe) computes on: 1: the thread that submits, no worker threads; n > 1: n worker
     * threads; 0: as the environment has it (lavapipe: LP_NUM_THREADS, else one worker per core).  Vulkan has no
     * way to say this: LP_NUM_THREADS is set in the process environment while the instance is created and its
     * devices enumerated (where lavapipe reads it), then restored.  Harmless for other devices. */
    uint32_t cpu_threads;
} vkr_device_options;

#define VKR_DEVICE_OPTIONS_DEFAULT \
    ((vkr_device_options){.device = NULL, .validation = -1, .disable = 0, .host = NULL, .cpu_threads = 0})

/* Lists every physical device with Vulkan 1.2 and a compute queue; *chosen is the index vkr_device_create
 * would pick for these options (NULL: the defaults), UINT32_MAX if options name no device.  The caller frees
 * *caps with free(). */
vkllm_status vkr_list_devices(const vkr_device_options *options, vkr_caps **caps, uint32_t *count, uint32_t *chosen);

/* Creates the device chosen by VKLLM_DEVICE (index or name substring) or else discrete > integrated >
 * virtual > CPU.  Environment: VKLLM_VALIDATION=1 enables the Khronos validation layer (its errors are
 * counted), VKLLM_VALIDATION=sync the same plus its synchronization validation (hazards count as errors);
 * VKLLM_DISABLE_F16, VKLLM_DISABLE_STORAGE16, VKLLM_DISABLE_STORAGE8, VKLLM_DISABLE_SUBGROUP, VKLLM_DISABLE_INT_DOT, VKLLM_DISABLE_TEXEL (texel_rgba32), VKLLM_DISABLE_COOPMAT force the fallbacks as if
 * the device lacked the feature; VKLLM_COOPMAT=khr|nv|emulate picks that cooperative-matrix kind (failing if the
 * device lacks it); VKLLM_PROFILE=1 collects GPU timestamps per dispatch; VKLLM_FENCE_TIMEOUT_MS bounds every fence wait;
 * VKLLM_MAX_ALLOCATION (bytes, K/M/G suffixes) lowers maxMemoryAllocationSize; VKLLM_FAIL_INJECT makes chosen
 * allocations, submissions or fence waits fail (fault.h). */
vkllm_status vkr_device_create(vkr_device **out);
/* The same with options (NULL: the defaults, i.e. vkr_device_create). */
vkllm_status vkr_device_create_with(const vkr_device_options *options, vkr_device **out);
void vkr_device_destroy(vkr_device *dev);

const vkr_caps *vkr_device_caps(const vkr_device *dev);
/* Whether the device reads `format` through uniform texel buffers (VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT
 * in its buffer features). */
bool vkr_uniform_texel_format(const vkr_device *dev, VkFormat format);
/* Validation-layer errors reported since creation (0 without VKLLM_VALIDATION). */
uint32_t vkr_device_validation_errors(const vkr_device *dev);
/* Validation-layer errors of every device of the process so far, including those reported while a device is
 * destroyed: the object tracker names each Vulkan object still alive at vkDestroyDevice / vkDestroyInstance, so
 * a count unchanged across a create-fail-destroy cycle shows that the failure path leaked nothing. */
uint32_t vkr_validation_errors_total(void);
/* The n-th call of this kind from now fails as VKLLM_FAIL_INJECT describes (fault.h); 0 disarms. */
void vkr_device_inject_fault(vkr_device *dev, vkr_fault_kind kind, uint64_t n);
/* Calls of this kind (memory allocations, queue submissions, fence waits) made since the device's creation. */
uint64_t vkr_device_fault_calls(const vkr_device *dev, vkr_fault_kind kind);
bool vkr_device_profiling(const vkr_device *dev);
/* Prints op, count and total GPU time per label collected under VKLLM_PROFILE=1; clears the table. */
void vkr_device_print_profile(vkr_device *dev, FILE *out);

/* Queue submissions made on the device so far, one-shot transfers and sequences alike (loading a model costs a
 * number proportional to its tensors, not to its rows). */
uint64_t vkr_submit_count(const vkr_device *dev);
/* Threads a CPU device (lavapipe) computes on: 1 without worker threads, else its workers; 0 for a GPU. */
uint32_t vkr_device_cpu_workers(const vkr_device *dev);
/* Seconds a fence wait polls before it sleeps: lavapipe without worker threads (cpu_threads 1) only, else 0. */
double vkr_fence_spin_seconds(const vkr_device *dev);
/* Devices that poll (above) with work submitted and not yet waited for, in the whole process: a wait polls only while
 * its own device is the only one (queue.c). */
uint32_t vkr_polling_devices_computing(void);
/* How long one fence wait may take before it fails with an error naming the work it waited for.  The device
 * starts with VKLLM_FENCE_TIMEOUT_MS, else 60 s (600 s on CPU devices such as lavapipe); 0 restores that. */
void vkr_set_fence_timeout(vkr_device *dev, uint64_t milliseconds);

/* "discrete GPU", "integrated GPU", "virtual GPU", "CPU" or "other": a static string. */
const char *vkr_device_type_name(VkPhysicalDeviceType type);
void vkr_caps_print(const vkr_caps *caps, FILE *out);
const char *vkr_vendor_name(vkr_vendor vendor);
const char *vkr_coopmat_name(vkr_coopmat kind); /* "none", "KHR", "NV", "emulated" */
const char *vkr_result_name(VkResult result);

/* Fails with the Vulkan call and VkResult named in the message. */
#define VKR_CHECK(call)                                                                            \
    do {                                                                                           \
        VkResult vkr_check_result_ = (call);                                                       \
        if (vkr_check_result_ != VK_SUCCESS) return vkr_fail_vk(vkr_check_result_, #call, __FILE__, __LINE__); \
    } while (0)
vkllm_status vkr_fail_vk(VkResult result, const char *call, const char *file, int line);

#endif
