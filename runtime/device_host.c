/* Opening a device the host created (vkr_host_device): volk loads from the host's vkGetInstanceProcAddr, the
 * capabilities are read as for a device of the runtime's own, then narrowed to the features the host enabled
 * (read from the pNext chain it gave vkCreateDevice and its extension list).  The runtime creates its command
 * pool on the host's device and destroys nothing of the host's (vkr_device_close, vkr_device_destroy). */
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"

/* VK_KHR_cooperative_matrix's feature structure (headers 1.3.255; device.c declares it where they lack it). */
#define HOST_COOPMAT_KHR_FEATURES ((VkStructureType)1000506000)
#define HOST_COOPMAT_KHR_EXTENSION "VK_KHR_cooperative_matrix"

/* What the host turned on, from its VkDeviceCreateInfo's pNext chain. */
typedef struct host_features {
    bool f16, int8, storage16, storage8, timeline, memory_model;
    bool size_control, full_subgroups, int_dot;
    bool coopmat_khr, coopmat_nv;
} host_features;

static bool extension_enabled(const vkr_host_device *h, const char *name)
{
    for (uint32_t i = 0; i < h->n_enabled_extensions; i++)
        if (h->enabled_extensions[i] && strcmp(h->enabled_extensions[i], name) == 0) return true;
    return false;
}

/* Each structure's fields of interest, by sType; structures vkllm does not read are skipped. */
static void read_chain(const void *chain, host_features *f)
{
    memset(f, 0, sizeof *f);
    for (const VkBaseInStructure *s = chain; s; s = s->pNext) {
        switch ((int)s->sType) {
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES: {
            const VkPhysicalDeviceVulkan11Features *v = (const void *)s;
            f->storage16 |= v->storageBuffer16BitAccess;
            break;
        }
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES: {
            const VkPhysicalDeviceVulkan12Features *v = (const void *)s;
            f->storage8 |= v->storageBuffer8BitAccess;
            f->f16 |= v->shaderFloat16;
            f->int8 |= v->shaderInt8;
            f->timeline |= v->timelineSemaphore;
            f->memory_model |= v->vulkanMemoryModel;
            break;
        }
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES: {
            const VkPhysicalDeviceVulkan13Features *v = (const void *)s;
            f->size_control |= v->subgroupSizeControl;
            f->full_subgroups |= v->computeFullSubgroups;
            f->int_dot |= v->shaderIntegerDotProduct;
            break;
        }
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES:
            f->storage16 |= ((const VkPhysicalDevice16BitStorageFeatures *)(const void *)s)->storageBuffer16BitAccess;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES:
            f->storage8 |= ((const VkPhysicalDevice8BitStorageFeatures *)(const void *)s)->storageBuffer8BitAccess;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES: {
            const VkPhysicalDeviceShaderFloat16Int8Features *v = (const void *)s;
            f->f16 |= v->shaderFloat16;
            f->int8 |= v->shaderInt8;
            break;
        }
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES:
            f->timeline |= ((const VkPhysicalDeviceTimelineSemaphoreFeatures *)(const void *)s)->timelineSemaphore;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES:
            f->memory_model |= ((const VkPhysicalDeviceVulkanMemoryModelFeatures *)(const void *)s)->vulkanMemoryModel;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES: {
            const VkPhysicalDeviceSubgroupSizeControlFeatures *v = (const void *)s;
            f->size_control |= v->subgroupSizeControl;
            f->full_subgroups |= v->computeFullSubgroups;
            break;
        }
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES:
            f->int_dot |= ((const VkPhysicalDeviceShaderIntegerDotProductFeatures *)(const void *)s)->shaderIntegerDotProduct;
            break;
        case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV:
            f->coopmat_nv |= ((const VkPhysicalDeviceCooperativeMatrixFeaturesNV *)(const void *)s)->cooperativeMatrix;
            break;
        case HOST_COOPMAT_KHR_FEATURES: /* {sType, pNext, cooperativeMatrix, ...} as the NV structure */
            f->coopmat_khr |= ((const VkPhysicalDeviceCooperativeMatrixFeaturesNV *)(const void *)s)->cooperativeMatrix;
            break;
        default:
            break;
        }
    }
}

/* Narrows caps to what the host enabled: optional features fall back, required ones fail naming the feature. */
static vkllm_status apply_host_features(const vkr_host_device *h, uint32_t api, vkr_caps *caps)
{
    host_features f;
    read_chain(h->enabled_features, &f);
    if (!f.timeline)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "host device '%s': the feature timelineSemaphore (Vulkan 1.2, "
                          "VkPhysicalDeviceVulkan12Features) is not enabled in vkllm_host_device.enabled_features: "
                          "vkllm signals decode tickets on a timeline semaphore; enable it in VkDeviceCreateInfo",
                          caps->name);
    bool v13 = api >= VK_API_VERSION_1_3;
    caps->fp16_arith = caps->fp16_arith && f.f16;
    caps->int8_arith = caps->int8_arith && f.int8;
    caps->storage16 = caps->storage16 && f.storage16;
    caps->storage8 = caps->storage8 && f.storage8;
    bool int_dot = f.int_dot && (v13 || extension_enabled(h, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME));
    if (!int_dot) caps->int_dot = caps->int_dot_accelerated = caps->int_dot_mixed_accelerated = false;
    bool size_control = f.size_control && (v13 || extension_enabled(h, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME));
    if (!size_control) {
        caps->subgroup_size_control = caps->full_subgroups = false;
        caps->min_subgroup_size = caps->max_subgroup_size = caps->subgroup_size;
        caps->max_workgroup_subgroups = 0;
    }
    caps->full_subgroups = caps->full_subgroups && f.full_subgroups;
    /* Cooperative matrices: the extension, its feature, the memory model and f16, all enabled by the host. */
    bool shaders_run = caps->fp16_arith && f.memory_model;
    caps->coopmat_khr = caps->coopmat_khr && shaders_run && f.coopmat_khr && extension_enabled(h, HOST_COOPMAT_KHR_EXTENSION);
    caps->coopmat_nv = caps->coopmat_nv && shaders_run && f.coopmat_nv &&
                       extension_enabled(h, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    const uint32_t *size = NULL;
    if (caps->coopmat == VKR_COOPMAT_KHR || caps->coopmat == VKR_COOPMAT_NV) {
        caps->coopmat = caps->coopmat_khr ? VKR_COOPMAT_KHR : caps->coopmat_nv ? VKR_COOPMAT_NV : VKR_COOPMAT_NONE;
        size = caps->coopmat == VKR_COOPMAT_KHR ? caps->coopmat_khr_size
               : caps->coopmat == VKR_COOPMAT_NV ? caps->coopmat_nv_size : NULL;
    }
    if (caps->coopmat == VKR_COOPMAT_EMULATED && !caps->fp16_arith) caps->coopmat = VKR_COOPMAT_NONE;
    if (size) caps->coopmat_m = size[0], caps->coopmat_n = size[1], caps->coopmat_k = size[2];
    if (caps->coopmat == VKR_COOPMAT_NONE) caps->coopmat_m = caps->coopmat_n = caps->coopmat_k = 0;
    return VKLLM_OK;
}

vkllm_status vkr_device_open_host(vkr_device *dev, const vkr_device_options *options)
{
    const vkr_host_device *h = options->host;
    if (!h->instance || !h->physical || !h->device || !h->queue || !h->get_instance_proc_addr)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_host_device: instance %p, physical device %p, device %p, "
                          "queue %p and get_instance_proc_addr %s must all be set", (void *)h->instance,
                          (void *)h->physical, (void *)h->device, (void *)h->queue,
                          h->get_instance_proc_addr ? "(set)" : "(NULL)");
    if (!h->queue_lock != !h->queue_unlock)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_host_device: queue_lock and queue_unlock must be both "
                          "set or both NULL");
    if (h->api_version < VK_API_VERSION_1_2)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "vkllm_host_device: api_version %u.%u (the instance's "
                          "VkApplicationInfo.apiVersion) is below the Vulkan 1.2 vkllm needs",
                          VK_API_VERSION_MAJOR(h->api_version), VK_API_VERSION_MINOR(h->api_version));
    volkInitializeCustom(h->get_instance_proc_addr);
    volkLoadInstanceOnly(h->instance);
    /* Only an enabled KHR extension is probed: an older validation layer in the host's instance rejects it. */
    bool khr = extension_enabled(h, HOST_COOPMAT_KHR_EXTENSION);
    if (!vkr_read_device_caps(h->physical, vkr_disabled_features(options), khr, &dev->caps))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "vkllm_host_device: the physical device is below Vulkan 1.2 or has "
                          "no compute queue");
    uint32_t count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(h->physical, &count, NULL);
    VkQueueFamilyProperties *families = calloc(count ? count : 1, sizeof *families);
    if (!families) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "queue family list");
    vkGetPhysicalDeviceQueueFamilyProperties(h->physical, &count, families);
    bool compute = h->queue_family < count && (families[h->queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT);
    bool timestamps = h->queue_family < count && families[h->queue_family].timestampValidBits > 0;
    free(families);
    if (!compute)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "vkllm_host_device: queue family %u of '%s' %s", h->queue_family,
                          dev->caps.name, h->queue_family < count ? "has no compute capability (VK_QUEUE_COMPUTE_BIT)"
                                                                   : "does not exist");
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(h->physical, &props);
    dev->caps.queue_family = h->queue_family;
    dev->caps.timestamps = timestamps && props.limits.timestampComputeAndGraphics;
    uint32_t api = h->api_version < dev->caps.api_version ? h->api_version : dev->caps.api_version;
    VKLLM_TRY(apply_host_features(h, api, &dev->caps));

    dev->instance = h->instance;
    dev->physical = h->physical;
    dev->device = h->device;
    dev->queue = h->queue;
    dev->borrowed = true;
    dev->queue_lock = h->queue_lock;
    dev->queue_unlock = h->queue_unlock;
    dev->queue_lock_user = h->queue_lock_user;
    volkLoadDevice(h->device);
    VkCommandPoolCreateInfo pool = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT | VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
        .queueFamilyIndex = dev->caps.queue_family,
    };
    VKR_CHECK(vkCreateCommandPool(dev->device, &pool, NULL, &dev->command_pool));
    const char *profile = getenv("VKLLM_PROFILE");
    dev->profiling = profile && *profile && strcmp(profile, "0") != 0 && dev->caps.timestamps;
    return VKLLM_OK;
}
