/* Instance creation through volk, capability discovery, device choice and logical device creation. */
#include "device_internal.h"
#include "log.h"
#include "queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>

static const char validation_layer[] = "VK_LAYER_KHRONOS_validation";

/* VK_KHR_cooperative_matrix arrived in the Vulkan headers 1.3.255; Debian 12 has 1.3.239, so its types are
 * declared here (as the registry defines them) where the headers lack them. */
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_cooperative_matrix 1
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
#define VK_COMPONENT_TYPE_FLOAT16_KHR 0
#define VK_COMPONENT_TYPE_FLOAT32_KHR 1
#define VK_SCOPE_SUBGROUP_KHR 3
typedef struct VkCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    uint32_t AType, BType, CType, ResultType; /* VkComponentTypeKHR */
    VkBool32 saturatingAccumulation;
    uint32_t scope; /* VkScopeKHR */
} VkCooperativeMatrixPropertiesKHR;
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix;
    VkBool32 cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef VkResult(VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice physicalDevice, uint32_t *pPropertyCount, VkCooperativeMatrixPropertiesKHR *pProperties);
#endif

const char *vkr_result_name(VkResult result)
{
    switch (result) {
#define NAME(r) case r: return #r
        NAME(VK_SUCCESS); NAME(VK_NOT_READY); NAME(VK_TIMEOUT); NAME(VK_EVENT_SET); NAME(VK_EVENT_RESET);
        NAME(VK_INCOMPLETE); NAME(VK_ERROR_OUT_OF_HOST_MEMORY); NAME(VK_ERROR_OUT_OF_DEVICE_MEMORY);
        NAME(VK_ERROR_INITIALIZATION_FAILED); NAME(VK_ERROR_DEVICE_LOST); NAME(VK_ERROR_MEMORY_MAP_FAILED);
        NAME(VK_ERROR_LAYER_NOT_PRESENT); NAME(VK_ERROR_EXTENSION_NOT_PRESENT);
        NAME(VK_ERROR_FEATURE_NOT_PRESENT); NAME(VK_ERROR_INCOMPATIBLE_DRIVER);
        NAME(VK_ERROR_TOO_MANY_OBJECTS); NAME(VK_ERROR_FORMAT_NOT_SUPPORTED); NAME(VK_ERROR_FRAGMENTED_POOL);
        NAME(VK_ERROR_UNKNOWN); NAME(VK_ERROR_OUT_OF_POOL_MEMORY); NAME(VK_ERROR_INVALID_EXTERNAL_HANDLE);
        NAME(VK_ERROR_FRAGMENTATION); NAME(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS);
        NAME(VK_PIPELINE_COMPILE_REQUIRED);
#undef NAME
    default: return "VkResult(unknown)";
    }
}

vkllm_status vkr_fail_vk(VkResult result, const char *call, const char *file, int line)
{
    vkllm_status status = VKLLM_ERROR_VULKAN;
    if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY) status = VKLLM_ERROR_OUT_OF_DEVICE_MEMORY;
    if (result == VK_ERROR_OUT_OF_HOST_MEMORY) status = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    return vkllm_fail(status, "%s failed with %s (%d) at %s:%d", call, vkr_result_name(result), (int)result,
                      file, line);
}

const char *vkr_vendor_name(vkr_vendor vendor)
{
    static const char *const names[VKR_VENDOR_COUNT] = {
        "unknown", "NVIDIA", "AMD", "Intel", "Apple", "ARM", "Qualcomm", "Mesa CPU (lavapipe)",
    };
    return (unsigned)vendor < VKR_VENDOR_COUNT ? names[vendor] : "unknown";
}

const char *vkr_coopmat_name(vkr_coopmat kind)
{
    static const char *const names[] = {"none", "KHR", "NV", "emulated"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

static bool env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

/* A byte count with an optional binary suffix K, M or G ("64M"); false if s is not one. */
static bool parse_bytes(const char *s, uint64_t *out)
{
    /* Digits first: strtoull alone takes "-1" as the largest value and skips leading spaces. */
    if (*s < '0' || *s > '9') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno == ERANGE) return false;
    int shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (*end != '\0' || v > (UINT64_MAX >> shift)) return false;
    *out = (uint64_t)v << shift;
    return true;
}

/* VKLLM_MAX_DEVICE_MB: a decimal count of MiB, 1 to 2^30. */
static bool parse_mb(const char *text, int64_t *out)
{
    uint64_t v = 0;
    if (!vkr_parse_decimal(text, 1ull << 30, &v) || v < 1) return false;
    *out = (int64_t)v;
    return true;
}

/* The smallest VKLLM_MAX_ALLOCATION accepted: the staging buffer and every small buffer must still fit. */
#define MIN_ALLOCATION_OVERRIDE (64u << 10)

/* Every device's errors, also those reported while its device and instance are destroyed (leaked objects). */
static atomic_uint process_validation_errors;

static VKAPI_ATTR VkBool32 VKAPI_CALL on_debug_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                       VkDebugUtilsMessageTypeFlagsEXT types,
                                                       const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                       void *user)
{
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        atomic_uint *errors = user;
        atomic_fetch_add(errors, 1);
        atomic_fetch_add(&process_validation_errors, 1);
        fprintf(stderr, "vkllm: validation error: %s\n", data->pMessage);
    } else if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        fprintf(stderr, "vkllm: validation warning: %s\n", data->pMessage);
    }
    return VK_FALSE;
}

static bool layer_available(const char *name)
{
    uint32_t count = 0;
    if (vkEnumerateInstanceLayerProperties(&count, NULL) != VK_SUCCESS) return false;
    VkLayerProperties *layers = calloc(count ? count : 1, sizeof *layers);
    if (!layers) return false;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&count, layers) == VK_SUCCESS)
        for (uint32_t i = 0; i < count && !found; i++) found = strcmp(layers[i].layerName, name) == 0;
    free(layers);
    return found;
}

/* The Vulkan header version a layer was built for (its specVersion); 0 if it is not installed. */
static uint32_t layer_spec_version(const char *name)
{
    uint32_t count = 0, version = 0;
    if (vkEnumerateInstanceLayerProperties(&count, NULL) != VK_SUCCESS) return 0;
    VkLayerProperties *layers = calloc(count ? count : 1, sizeof *layers);
    if (!layers) return 0;
    if (vkEnumerateInstanceLayerProperties(&count, layers) == VK_SUCCESS)
        for (uint32_t i = 0; i < count; i++)
            if (strcmp(layers[i].layerName, name) == 0) version = layers[i].specVersion;
    free(layers);
    return version;
}

static bool instance_extension_available(const char *name)
{
    uint32_t count = 0;
    if (vkEnumerateInstanceExtensionProperties(NULL, &count, NULL) != VK_SUCCESS) return false;
    VkExtensionProperties *exts = calloc(count ? count : 1, sizeof *exts);
    if (!exts) return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(NULL, &count, exts) == VK_SUCCESS)
        for (uint32_t i = 0; i < count && !found; i++) found = strcmp(exts[i].extensionName, name) == 0;
    free(exts);
    return found;
}

static vkllm_status load_loader(void)
{
    VkResult r = volkInitialize();
    if (r != VK_SUCCESS)
        return vkllm_fail(VKLLM_ERROR_NO_DEVICE, "volkInitialize failed with %s: no Vulkan loader "
                          "(install libvulkan1 and a driver, e.g. mesa-vulkan-drivers)", vkr_result_name(r));
    return VKLLM_OK;
}

static bool layer_extension_available(const char *layer, const char *name)
{
    uint32_t count = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &count, NULL) != VK_SUCCESS) return false;
    VkExtensionProperties *exts = calloc(count ? count : 1, sizeof *exts);
    if (!exts) return false;
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(layer, &count, exts) == VK_SUCCESS)
        for (uint32_t i = 0; i < count && !found; i++) found = strcmp(exts[i].extensionName, name) == 0;
    free(exts);
    return found;
}

/* validation_errors non-NULL: enable the validation layer and count its errors there.  sync_validation adds the
 * layer's synchronization validation (VK_EXT_validation_features): hazards between commands (a read of what a
 * dispatch writes with no barrier between, a write over what another still reads) are reported as errors. */
static vkllm_status create_instance(atomic_uint *validation_errors, bool sync_validation, VkInstance *instance,
                                    VkDebugUtilsMessengerEXT *messenger)
{
    VKLLM_TRY(load_loader());
    uint32_t api = VK_API_VERSION_1_2;
    if (vkEnumerateInstanceVersion) {
        uint32_t available = 0;
        if (vkEnumerateInstanceVersion(&available) == VK_SUCCESS && available >= VK_API_VERSION_1_3)
            api = VK_API_VERSION_1_3;
    }
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vkllm",
        .pEngineName = "vkllm",
        .engineVersion = VK_MAKE_VERSION(0, 1, 0),
        .apiVersion = api,
    };
    const char *layers[1];
    const char *extensions[3];
    uint32_t n_layers = 0, n_extensions = 0;
    VkInstanceCreateFlags flags = 0;
    if (validation_errors) {
        if (!layer_available(validation_layer))
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "VKLLM_VALIDATION=1 but %s is not installed "
                              "(Debian: vulkan-validationlayers)", validation_layer);
        layers[n_layers++] = validation_layer;
        extensions[n_extensions++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
        if (sync_validation) {
            if (!layer_extension_available(validation_layer, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME))
                return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "VKLLM_VALIDATION=sync but %s lacks %s", validation_layer,
                                  VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
            extensions[n_extensions++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
        }
    }
    if (instance_extension_available(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        /* MoltenVK lists its devices only to instances that accept portability drivers. */
        extensions[n_extensions++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
    VkDebugUtilsMessengerCreateInfoEXT messenger_info = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_debug_message,
        .pUserData = validation_errors,
    };
    static const VkValidationFeatureEnableEXT sync_enable = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT features = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .pNext = &messenger_info,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = &sync_enable,
    };
    VkInstanceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = !validation_errors ? NULL : sync_validation ? (const void *)&features : (const void *)&messenger_info,
        .flags = flags,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_extensions,
        .ppEnabledExtensionNames = extensions,
    };
    VKR_CHECK(vkCreateInstance(&info, NULL, instance));
    volkLoadInstanceOnly(*instance);
    *messenger = VK_NULL_HANDLE;
    if (validation_errors) {
        VkResult r = vkCreateDebugUtilsMessengerEXT(*instance, &messenger_info, NULL, messenger);
        if (r != VK_SUCCESS) {
            vkDestroyInstance(*instance, NULL);
            return vkr_fail_vk(r, "vkCreateDebugUtilsMessengerEXT", __FILE__, __LINE__);
        }
    }
    return VKLLM_OK;
}

static bool device_extension_available(VkPhysicalDevice pd, const char *name)
{
    uint32_t count = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &count, NULL) != VK_SUCCESS) return false;
    VkExtensionProperties *exts = calloc(count ? count : 1, sizeof *exts);
    if (!exts) return false;
    bool found = false;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &count, exts) == VK_SUCCESS)
        for (uint32_t i = 0; i < count && !found; i++) found = strcmp(exts[i].extensionName, name) == 0;
    free(exts);
    return found;
}

static vkr_vendor vendor_of(uint32_t vendor_id, VkDriverId driver, VkPhysicalDeviceType type)
{
    if (type == VK_PHYSICAL_DEVICE_TYPE_CPU || driver == VK_DRIVER_ID_MESA_LLVMPIPE) return VKR_VENDOR_MESA_CPU;
    switch (vendor_id) {
    case 0x10de: return VKR_VENDOR_NVIDIA;
    case 0x1002: case 0x1022: return VKR_VENDOR_AMD;
    case 0x8086: return VKR_VENDOR_INTEL;
    case 0x106b: return VKR_VENDOR_APPLE;
    case 0x13b5: return VKR_VENDOR_ARM;
    case 0x5143: return VKR_VENDOR_QUALCOMM;
    default: return VKR_VENDOR_UNKNOWN;
    }
}

/* Which features of the device the runtime turns on (and the caps report). */
typedef struct device_features {
    bool size_control_ext, int_dot_ext; /* need the extension (device below Vulkan 1.3) */
    bool size_control, int_dot;
    bool full_subgroups; /* computeFullSubgroups */
} device_features;

static int queue_family_for_compute(VkPhysicalDevice pd, bool *timestamps)
{
    uint32_t count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &count, NULL);
    VkQueueFamilyProperties props[32];
    if (count > 32) count = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &count, props);
    int best = -1;
    for (uint32_t i = 0; i < count; i++) {
        if (!(props[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
        /* Prefer the universal queue: dedicated compute queues are sometimes slower to schedule. */
        if (best < 0 || (props[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) {
            best = (int)i;
            *timestamps = props[i].timestampValidBits > 0;
            if (props[i].queueFlags & VK_QUEUE_GRAPHICS_BIT) break;
        }
    }
    return best;
}

static bool uniform_texel(VkPhysicalDevice pd, VkFormat format)
{
    VkFormatProperties props;
    vkGetPhysicalDeviceFormatProperties(pd, format, &props);
    return (props.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0;
}

/* Reads caps, less the VKR_DISABLE_* features in disable; false if the device cannot run vkllm (below Vulkan 1.2
 * or no compute queue). */
static bool read_caps(VkPhysicalDevice pd, uint32_t disable, vkr_caps *caps, device_features *features)
{
    memset(caps, 0, sizeof *caps);
    memset(features, 0, sizeof *features);
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    if (base.apiVersion < VK_API_VERSION_1_2) return false;
    bool v13 = base.apiVersion >= VK_API_VERSION_1_3;
    bool has_size_control = v13 || device_extension_available(pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    bool has_int_dot = v13 || device_extension_available(pd, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);

    VkPhysicalDeviceShaderIntegerDotProductProperties dot_props = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties size_props = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES,
        .pNext = has_int_dot ? &dot_props : NULL};
    VkPhysicalDeviceVulkan12Properties p12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES,
                                              .pNext = has_size_control ? (void *)&size_props
                                                                        : (has_int_dot ? (void *)&dot_props : NULL)};
    VkPhysicalDeviceVulkan11Properties p11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES,
                                              .pNext = &p12};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &p11};
    vkGetPhysicalDeviceProperties2(pd, &props);

    VkPhysicalDeviceShaderIntegerDotProductFeatures dot_feat = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES};
    VkPhysicalDeviceSubgroupSizeControlFeatures size_feat = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES,
        .pNext = has_int_dot ? &dot_feat : NULL};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = has_size_control ? (void *)&size_feat
                                                                      : (has_int_dot ? (void *)&dot_feat : NULL)};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .pNext = &f12};
    VkPhysicalDeviceFeatures2 feats = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    vkGetPhysicalDeviceFeatures2(pd, &feats);

    bool timestamps = false;
    int family = queue_family_for_compute(pd, &timestamps);
    if (family < 0) return false;

    snprintf(caps->name, sizeof caps->name, "%s", base.deviceName);
    snprintf(caps->driver_name, sizeof caps->driver_name, "%s", p12.driverName);
    snprintf(caps->driver_info, sizeof caps->driver_info, "%s", p12.driverInfo);
    caps->vendor_id = base.vendorID;
    caps->device_id = base.deviceID;
    caps->driver_version = base.driverVersion;
    caps->api_version = base.apiVersion;
    caps->type = base.deviceType;
    caps->vendor = vendor_of(base.vendorID, p12.driverID, base.deviceType);

    caps->subgroup_size = p11.subgroupSize;
    caps->subgroup_compute = (p11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) != 0;
    caps->subgroup_ops = p11.subgroupSupportedOperations;
    caps->min_subgroup_size = caps->max_subgroup_size = p11.subgroupSize;
    if (has_size_control && size_feat.subgroupSizeControl &&
        (size_props.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT)) {
        caps->subgroup_size_control = true;
        caps->min_subgroup_size = size_props.minSubgroupSize;
        caps->max_subgroup_size = size_props.maxSubgroupSize;
        caps->max_workgroup_subgroups = size_props.maxComputeWorkgroupSubgroups;
        caps->full_subgroups = features->full_subgroups = size_feat.computeFullSubgroups;
        features->size_control = true;
        features->size_control_ext = !v13;
    }
    caps->fp16_arith = f12.shaderFloat16;
    caps->storage16 = f11.storageBuffer16BitAccess;
    caps->storage8 = f12.storageBuffer8BitAccess;
    caps->int8_arith = f12.shaderInt8;
    if (has_int_dot && dot_feat.shaderIntegerDotProduct) {
        caps->int_dot = true;
        caps->int_dot_accelerated = dot_props.integerDotProduct4x8BitPackedSignedAccelerated;
        caps->int_dot_mixed_accelerated = dot_props.integerDotProduct4x8BitPackedMixedSignednessAccelerated;
        features->int_dot = true;
        features->int_dot_ext = !v13;
    }
    if (disable & VKR_DISABLE_F16) caps->fp16_arith = false;
    if (disable & VKR_DISABLE_STORAGE16) caps->storage16 = false;
    if (disable & VKR_DISABLE_STORAGE8) caps->storage8 = false;
    if (disable & VKR_DISABLE_INT_DOT)
        caps->int_dot = caps->int_dot_accelerated = caps->int_dot_mixed_accelerated = false;
    if (disable & VKR_DISABLE_SUBGROUP) caps->subgroup_compute = false;
    caps->subgroup_arithmetic = caps->subgroup_compute && (caps->subgroup_ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    caps->subgroup_shuffle = caps->subgroup_compute && (caps->subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);

    const VkPhysicalDeviceLimits *lim = &base.limits;
    caps->max_storage_buffer_range = lim->maxStorageBufferRange;
    caps->max_memory_allocation = p11.maxMemoryAllocationSize;
    /* VKLLM_MAX_ALLOCATION lowers the limit (tests of the sub-allocator's small blocks and of chunked weights
     * on devices whose own limit is far above any test model); device_init rejects a malformed value. */
    uint64_t lower = 0;
    const char *max_allocation = getenv("VKLLM_MAX_ALLOCATION");
    if (max_allocation && parse_bytes(max_allocation, &lower) && lower >= MIN_ALLOCATION_OVERRIDE &&
        (lower < caps->max_memory_allocation || !caps->max_memory_allocation)) {
        caps->max_memory_allocation = lower;
        caps->max_memory_allocation_lowered = true;
    }
    caps->min_storage_offset_alignment = lim->minStorageBufferOffsetAlignment;
    caps->max_texel_buffer_elements = lim->maxTexelBufferElements;
    caps->min_texel_offset_alignment = lim->minTexelBufferOffsetAlignment;
    caps->texel_rgba32 = uniform_texel(pd, VK_FORMAT_R32G32B32A32_UINT) &&
                         uniform_texel(pd, VK_FORMAT_R32G32B32A32_SFLOAT) && !(disable & VKR_DISABLE_TEXEL);
    caps->max_shared_memory = lim->maxComputeSharedMemorySize;
    caps->max_storage_buffers = lim->maxPerStageDescriptorStorageBuffers;
    caps->max_workgroup_invocations = lim->maxComputeWorkGroupInvocations;
    memcpy(caps->max_workgroup_size, lim->maxComputeWorkGroupSize, sizeof caps->max_workgroup_size);
    memcpy(caps->max_workgroup_count, lim->maxComputeWorkGroupCount, sizeof caps->max_workgroup_count);
    caps->max_push_constants = lim->maxPushConstantsSize;

    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(pd, &mem);
    caps->heap_count = mem.memoryHeapCount < VKR_MAX_HEAPS ? mem.memoryHeapCount : VKR_MAX_HEAPS;
    for (uint32_t i = 0; i < caps->heap_count; i++) {
        caps->heap_size[i] = mem.memoryHeaps[i].size;
        caps->heap_device_local[i] = (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0;
        if (caps->heap_device_local[i]) caps->device_local_bytes += mem.memoryHeaps[i].size;
    }
    /* VKLLM_MAX_DEVICE_MB: a small GPU on a large one (what fits, long contexts); device_init rejects a malformed
     * value.  The heaps shrink too, so the sub-allocator's blocks scale down with it. */
    const char *max_device = getenv("VKLLM_MAX_DEVICE_MB");
    int64_t mb = 0;
    if (max_device && parse_mb(max_device, &mb)) {
        caps->max_device_bytes = (uint64_t)mb << 20;
        caps->device_local_bytes = 0;
        for (uint32_t i = 0; i < caps->heap_count; i++) {
            if (caps->heap_device_local[i] && caps->heap_size[i] > caps->max_device_bytes)
                caps->heap_size[i] = caps->max_device_bytes;
            if (caps->heap_device_local[i]) caps->device_local_bytes += caps->heap_size[i];
        }
    }
    /* UMA by the device's type: integrated GPUs and CPUs share the host's memory.  A memory type that is both
     * device-local and host-visible says nothing: discrete GPUs expose their whole VRAM that way through a
     * resizable BAR (NVIDIA's H200 does), and that memory is still across the PCIe bus from the host. */
    caps->uma = base.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
                base.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    caps->timestamps = timestamps && lim->timestampComputeAndGraphics;
    caps->timestamp_period_ns = lim->timestampPeriod;
    caps->queue_family = (uint32_t)family;
    return true;
}

static bool contains_ignoring_case(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    for (; *haystack; haystack++)
        if (strncasecmp(haystack, needle, n) == 0) return true;
    return n == 0;
}

static int type_rank(VkPhysicalDeviceType type)
{
    switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

/* The device the options name (VKLLM_DEVICE where they name none), NULL if neither does. */
static const char *wanted_device(const vkr_device_options *options)
{
    if (options->device && *options->device) return options->device;
    const char *env = getenv("VKLLM_DEVICE");
    return env && *env ? env : NULL;
}

/* The features turned off: the options' bits and those of the VKLLM_DISABLE_* variables. */
static uint32_t disabled_features(const vkr_device_options *options)
{
    static const struct { const char *variable; uint32_t bit; } vars[] = {
        {"VKLLM_DISABLE_F16", VKR_DISABLE_F16},           {"VKLLM_DISABLE_STORAGE16", VKR_DISABLE_STORAGE16},
        {"VKLLM_DISABLE_STORAGE8", VKR_DISABLE_STORAGE8}, {"VKLLM_DISABLE_SUBGROUP", VKR_DISABLE_SUBGROUP},
        {"VKLLM_DISABLE_INT_DOT", VKR_DISABLE_INT_DOT},   {"VKLLM_DISABLE_TEXEL", VKR_DISABLE_TEXEL},
        {"VKLLM_DISABLE_COOPMAT", VKR_DISABLE_COOPMAT},
    };
    uint32_t bits = options->disable;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (env_flag(vars[i].variable)) bits |= vars[i].bit;
    return bits;
}

/* Index into caps[] per the wanted device (an index or a name substring) or the type ranking; -1 if the wanted
 * device matches none. */
static int choose_device(const char *want, const vkr_caps *caps, uint32_t count)
{
    if (want) {
        char *end = NULL;
        long index = strtol(want, &end, 10);
        if (*end == '\0') return (index >= 0 && index < (long)count) ? (int)index : -1;
        for (uint32_t i = 0; i < count; i++)
            if (contains_ignoring_case(caps[i].name, want)) return (int)i;
        return -1;
    }
    int best = -1;
    for (uint32_t i = 0; i < count; i++)
        if (best < 0 || type_rank(caps[i].type) > type_rank(caps[best].type)) best = (int)i;
    return best;
}

/* The f16 x f16 + f32 -> f32 subgroup-scope size among a kind's listed sizes: 16x16x16 where listed (the
 * tuning rows' tiles are multiples of it), else the first (the specification asks drivers to list their
 * preferred sizes first). */
static void offer_size(bool *found, uint32_t size[3], uint32_t m, uint32_t n, uint32_t k)
{
    if (*found && !(m == 16 && n == 16 && k == 16)) return;
    if (*found && size[0] == 16 && size[1] == 16 && size[2] == 16) return;
    size[0] = m, size[1] = n, size[2] = k;
    *found = true;
}

static bool coopmat_khr_size(VkPhysicalDevice pd, PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get,
                             uint32_t size[3])
{
    uint32_t count = 0;
    if (!get || get(pd, &count, NULL) != VK_SUCCESS || count == 0) return false;
    VkCooperativeMatrixPropertiesKHR *props = calloc(count, sizeof *props);
    if (!props) return false;
    for (uint32_t i = 0; i < count; i++) props[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
    bool found = false;
    VkResult r = get(pd, &count, props);
    for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < count; i++) {
        const VkCooperativeMatrixPropertiesKHR *p = &props[i];
        if (p->AType == VK_COMPONENT_TYPE_FLOAT16_KHR && p->BType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
            p->CType == VK_COMPONENT_TYPE_FLOAT32_KHR && p->ResultType == VK_COMPONENT_TYPE_FLOAT32_KHR &&
            !p->saturatingAccumulation && p->scope == VK_SCOPE_SUBGROUP_KHR)
            offer_size(&found, size, p->MSize, p->NSize, p->KSize);
    }
    free(props);
    return found;
}

static bool coopmat_nv_size(VkPhysicalDevice pd, uint32_t size[3])
{
    uint32_t count = 0;
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get = vkGetPhysicalDeviceCooperativeMatrixPropertiesNV;
    if (!get || get(pd, &count, NULL) != VK_SUCCESS || count == 0) return false;
    VkCooperativeMatrixPropertiesNV *props = calloc(count, sizeof *props);
    if (!props) return false;
    for (uint32_t i = 0; i < count; i++) props[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    bool found = false;
    VkResult r = get(pd, &count, props);
    for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < count; i++) {
        const VkCooperativeMatrixPropertiesNV *p = &props[i];
        if (p->AType == VK_COMPONENT_TYPE_FLOAT16_NV && p->BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
            p->CType == VK_COMPONENT_TYPE_FLOAT32_NV && p->DType == VK_COMPONENT_TYPE_FLOAT32_NV &&
            p->scope == VK_SCOPE_SUBGROUP_NV)
            offer_size(&found, size, p->MSize, p->NSize, p->KSize);
    }
    free(props);
    return found;
}

/* The kind VKLLM_COOPMAT names: khr, nv, emulate (or emulated); VKR_COOPMAT_NONE for anything else. */
static vkr_coopmat coopmat_requested(const char *want)
{
    if (strcmp(want, "khr") == 0) return VKR_COOPMAT_KHR;
    if (strcmp(want, "nv") == 0) return VKR_COOPMAT_NV;
    if (strcmp(want, "emulate") == 0 || strcmp(want, "emulated") == 0) return VKR_COOPMAT_EMULATED;
    return VKR_COOPMAT_NONE;
}

/* Which cooperative-matrix kinds the device has (caps->coopmat_khr / _nv and their sizes) and which one to use.
 * khr_validated: false when the validation layer in use predates VK_KHR_cooperative_matrix; it would report the
 * extension's structures (even in a feature query) and SPIR-V as errors, so KHR is then not even probed. */
static void read_coopmat(VkPhysicalDevice pd, PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get_khr,
                         bool khr_validated, uint32_t disable, vkr_caps *caps)
{
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR khr = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV nv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    bool listed_khr = device_extension_available(pd, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
    bool has_khr = listed_khr && khr_validated;
    bool has_nv = device_extension_available(pd, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    void **tail = &f12.pNext;
    if (has_khr) *tail = &khr, tail = &khr.pNext;
    if (has_nv) *tail = &nv, tail = &nv.pNext;
    VkPhysicalDeviceFeatures2 feats = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12};
    vkGetPhysicalDeviceFeatures2(pd, &feats);
    /* The shaders need f16 (shaderFloat16, also off under VKLLM_DISABLE_F16), the Vulkan memory model (glslang
     * declares it with GL_KHR_memory_scope_semantics) and gl_SubgroupID. */
    bool shaders_run = caps->fp16_arith && f12.vulkanMemoryModel && caps->subgroup_compute &&
                       (caps->subgroup_ops & VK_SUBGROUP_FEATURE_BASIC_BIT);
    caps->coopmat_khr = shaders_run && has_khr && khr.cooperativeMatrix && coopmat_khr_size(pd, get_khr, caps->coopmat_khr_size);
    caps->coopmat_nv = shaders_run && has_nv && nv.cooperativeMatrix && coopmat_nv_size(pd, caps->coopmat_nv_size);
    caps->coopmat_khr_unvalidated = listed_khr && !khr_validated;

    const char *want = getenv("VKLLM_COOPMAT");
    const uint32_t *size = NULL;
    caps->coopmat = VKR_COOPMAT_NONE;
    if (disable & VKR_DISABLE_COOPMAT) {
        /* none */
    } else if (want && *want) { /* only the kind asked for; vkr_device_create reports it missing */
        static const uint32_t emulated[3] = {16, 16, 16}; /* any size works; the common one */
        vkr_coopmat kind = coopmat_requested(want);
        if (kind == VKR_COOPMAT_KHR && caps->coopmat_khr) caps->coopmat = kind, size = caps->coopmat_khr_size;
        if (kind == VKR_COOPMAT_NV && caps->coopmat_nv) caps->coopmat = kind, size = caps->coopmat_nv_size;
        if (kind == VKR_COOPMAT_EMULATED && caps->fp16_arith) caps->coopmat = kind, size = emulated;
    } else if (caps->coopmat_khr) {
        caps->coopmat = VKR_COOPMAT_KHR, size = caps->coopmat_khr_size;
    } else if (caps->coopmat_nv) {
        caps->coopmat = VKR_COOPMAT_NV, size = caps->coopmat_nv_size;
    }
    if (size) caps->coopmat_m = size[0], caps->coopmat_n = size[1], caps->coopmat_k = size[2];
}

/* VKLLM_COOPMAT named a kind: the chosen device must have it. */
static vkllm_status check_coopmat_request(const vkr_caps *caps, uint32_t disable)
{
    const char *want = getenv("VKLLM_COOPMAT");
    if (!want || !*want || (disable & VKR_DISABLE_COOPMAT)) return VKLLM_OK;
    vkr_coopmat kind = coopmat_requested(want);
    if (kind == VKR_COOPMAT_NONE)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "VKLLM_COOPMAT='%s': expected khr, nv or emulate", want);
    if (caps->coopmat != kind)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "VKLLM_COOPMAT=%s, but '%s' has no usable %s cooperative matrices "
                          "(the extension with its cooperativeMatrix feature and an f16 x f16 + f32 subgroup size, "
                          "shaderFloat16, vulkanMemoryModel, subgroup basic ops; see 'vkllm devices')%s",
                          want, caps->name, vkr_coopmat_name(kind),
                          kind == VKR_COOPMAT_KHR && caps->coopmat_khr_unvalidated
                              ? "; the validation layer in use predates VK_KHR_cooperative_matrix: run without VKLLM_VALIDATION"
                              : "");
    return VKLLM_OK;
}

/* Physical devices usable by vkllm, with their caps (and the features to enable).  khr_validated: see
 * read_coopmat. */
static vkllm_status enumerate(VkInstance instance, bool khr_validated, uint32_t disable, VkPhysicalDevice **pds,
                              vkr_caps **caps, device_features **features, uint32_t *count)
{
    /* Not in volk 1.3.239 (older than the extension): looked up by name. */
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get_khr =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vkGetInstanceProcAddr(
            instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    VKR_CHECK(vkEnumeratePhysicalDevices(instance, &n, NULL));
    *pds = calloc(n ? n : 1, sizeof **pds);
    *caps = calloc(n ? n : 1, sizeof **caps);
    *features = calloc(n ? n : 1, sizeof **features);
    if (!*pds || !*caps || !*features) {
        free(*pds), free(*caps), free(*features);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "listing %u Vulkan devices", n);
    }
    VkPhysicalDevice *all = calloc(n ? n : 1, sizeof *all);
    if (!all) {
        free(*pds), free(*caps), free(*features);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "listing %u Vulkan devices", n);
    }
    VkResult r = vkEnumeratePhysicalDevices(instance, &n, all);
    uint32_t usable = 0;
    for (uint32_t i = 0; r == VK_SUCCESS && i < n; i++)
        if (read_caps(all[i], disable, &(*caps)[usable], &(*features)[usable])) {
            read_coopmat(all[i], get_khr, khr_validated, disable, &(*caps)[usable]);
            (*pds)[usable++] = all[i];
        }
    free(all);
    if (r != VK_SUCCESS) {
        free(*pds), free(*caps), free(*features);
        return vkr_fail_vk(r, "vkEnumeratePhysicalDevices", __FILE__, __LINE__);
    }
    *count = usable;
    return VKLLM_OK;
}

/* volk keeps one instance's and one device's function pointers in globals.  A listing, or a creation that fails,
 * loads those of an instance it then destroys: put back the ones of the device created last, if still alive (an
 * instance without the debug extension has no vkDestroyDebugUtilsMessengerEXT, for one). */
static vkr_device *live_device;

static void volk_restore(void)
{
    if (!live_device) return;
    volkLoadInstanceOnly(live_device->instance);
    volkLoadDevice(live_device->device);
}

vkllm_status vkr_list_devices(const vkr_device_options *options, vkr_caps **caps_out, uint32_t *count,
                              uint32_t *chosen)
{
    vkr_device_options defaults = VKR_DEVICE_OPTIONS_DEFAULT;
    if (!options) options = &defaults;
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VKLLM_TRY(create_instance(NULL, false, &instance, &messenger));
    VkPhysicalDevice *pds;
    device_features *features;
    vkllm_status st = enumerate(instance, true, disabled_features(options), &pds, caps_out, &features, count);
    vkDestroyInstance(instance, NULL);
    volk_restore();
    if (st != VKLLM_OK) return st;
    free(pds);
    free(features);
    int c = choose_device(wanted_device(options), *caps_out, *count);
    *chosen = c < 0 ? UINT32_MAX : (uint32_t)c;
    return VKLLM_OK;
}

static vkllm_status create_logical_device(vkr_device *dev, const device_features *features)
{
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = dev->caps.queue_family,
        .queueCount = 1,
        .pQueuePriorities = &priority,
    };
    /* Enable what exists, regardless of VKLLM_DISABLE_*: those only steer which shader variants run. */
    VkPhysicalDeviceVulkan11Features s11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features s12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceFeatures2 supported = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s11};
    s11.pNext = &s12;
    vkGetPhysicalDeviceFeatures2(dev->physical, &supported);

    VkPhysicalDeviceShaderIntegerDotProductFeatures dot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
        .shaderIntegerDotProduct = VK_TRUE};
    VkPhysicalDeviceSubgroupSizeControlFeatures size = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES,
        .subgroupSizeControl = VK_TRUE, .computeFullSubgroups = features->full_subgroups};
    /* Only the kind in use: an older validation layer rejects the KHR structure it does not know. */
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR coopmat_khr = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR, .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV coopmat_nv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .storageBuffer8BitAccess = s12.storageBuffer8BitAccess,
        .uniformAndStorageBuffer8BitAccess = s12.uniformAndStorageBuffer8BitAccess,
        .shaderFloat16 = s12.shaderFloat16,
        .shaderInt8 = s12.shaderInt8,
        .vulkanMemoryModel = s12.vulkanMemoryModel, /* the cooperative-matrix shaders' memory model */
        /* With the memory model on, a Device-scoped atomic (the shader-check guards') needs this too. */
        .vulkanMemoryModelDeviceScope = s12.vulkanMemoryModelDeviceScope,
        .timelineSemaphore = s12.timelineSemaphore,
        .hostQueryReset = s12.hostQueryReset,
    };
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
        .pNext = &f12,
        .storageBuffer16BitAccess = s11.storageBuffer16BitAccess,
        .uniformAndStorageBuffer16BitAccess = s11.uniformAndStorageBuffer16BitAccess,
    };
    void **tail = &f12.pNext;
    const char *extensions[3];
    uint32_t n_ext = 0;
    if (features->size_control) {
        *tail = &size;
        tail = &size.pNext;
        if (features->size_control_ext) extensions[n_ext++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
    }
    if (features->int_dot) {
        *tail = &dot;
        tail = &dot.pNext;
        if (features->int_dot_ext) extensions[n_ext++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
    }
    if (dev->caps.coopmat == VKR_COOPMAT_KHR) {
        *tail = &coopmat_khr;
        tail = &coopmat_khr.pNext;
        extensions[n_ext++] = VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME;
    } else if (dev->caps.coopmat == VKR_COOPMAT_NV) {
        *tail = &coopmat_nv;
        tail = &coopmat_nv.pNext;
        extensions[n_ext++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    }
    VkPhysicalDeviceFeatures2 enabled = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
        .pNext = &f11,
        .features = {.shaderInt64 = supported.features.shaderInt64,
                     .shaderInt16 = supported.features.shaderInt16},
    };
    VkDeviceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &enabled,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &queue,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = extensions,
    };
    VKR_CHECK(vkCreateDevice(dev->physical, &info, NULL, &dev->device));
    volkLoadDevice(dev->device);
    vkGetDeviceQueue(dev->device, dev->caps.queue_family, 0, &dev->queue);
    VkCommandPoolCreateInfo pool = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT | VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
        .queueFamilyIndex = dev->caps.queue_family,
    };
    VKR_CHECK(vkCreateCommandPool(dev->device, &pool, NULL, &dev->command_pool));
    return VKLLM_OK;
}

bool vkr_read_device_caps(VkPhysicalDevice pd, uint32_t disable, bool khr_validated, vkr_caps *caps)
{
    device_features features;
    if (!read_caps(pd, disable, caps, &features)) return false;
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get_khr = NULL;
    if (khr_validated) /* not in volk 1.3.239: looked up by name (the instance is volk's current one) */
        get_khr = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vkGetInstanceProcAddr(
            volkGetLoadedInstance(), "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    read_coopmat(pd, get_khr, khr_validated, disable, caps);
    return true;
}

uint32_t vkr_disabled_features(const vkr_device_options *options) { return disabled_features(options); }

/* Held from cpu_threads_set to cpu_threads_restore: two loads at once would otherwise restore each other's value
 * (the second saving the first's) and leave LP_NUM_THREADS changed for good. */
static pthread_mutex_t cpu_threads_lock = PTHREAD_MUTEX_INITIALIZER;

/* LP_NUM_THREADS as it was before cpu_threads_set changed it. */
typedef struct cpu_threads_env {
    bool changed;
    char *old; /* NULL: it was not set */
} cpu_threads_env;

static vkllm_status cpu_threads_set(uint32_t threads, cpu_threads_env *saved)
{
    *saved = (cpu_threads_env){false, NULL};
    if (threads == 0) return VKLLM_OK;
    pthread_mutex_lock(&cpu_threads_lock);
    const char *old = getenv("LP_NUM_THREADS");
    char value[16];
    snprintf(value, sizeof value, "%u", threads == 1 ? 0u : threads); /* lavapipe's 0: no worker threads */
    if ((old && !(saved->old = strdup(old))) || setenv("LP_NUM_THREADS", value, 1) != 0) {
        free(saved->old);
        saved->old = NULL;
        pthread_mutex_unlock(&cpu_threads_lock);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "setting LP_NUM_THREADS for cpu_threads %u", threads);
    }
    saved->changed = true;
    vkllm_log(VKLLM_LOG_DEBUG, "device: LP_NUM_THREADS=%s while the instance is created (cpu_threads %u)", value,
              threads);
    return VKLLM_OK;
}

/* Threads lavapipe computes on for cpu_threads: 1 none but its queue's, n > 1 that many, 0 LP_NUM_THREADS as the
 * environment has it (its 0: none), else one per online CPU, lavapipe's default.  The variable is read under
 * cpu_threads_lock: another thread's load may be between cpu_threads_set and cpu_threads_restore. */
static uint32_t cpu_workers_of(uint32_t threads)
{
    if (threads) return threads;
    pthread_mutex_lock(&cpu_threads_lock);
    const char *env = getenv("LP_NUM_THREADS");
    uint64_t n = 0;
    const bool set = env && *env && vkr_parse_decimal(env, 1024, &n);
    pthread_mutex_unlock(&cpu_threads_lock);
    if (set) return n ? (uint32_t)n : 1;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (uint32_t)online : 1;
}

uint32_t vkr_device_cpu_workers(const vkr_device *dev)
{
    return dev->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU ? dev->cpu_workers : 0;
}

static void cpu_threads_restore(cpu_threads_env *saved)
{
    if (!saved->changed) return;
    if (saved->old) setenv("LP_NUM_THREADS", saved->old, 1);
    else unsetenv("LP_NUM_THREADS");
    free(saved->old);
    *saved = (cpu_threads_env){false, NULL};
    pthread_mutex_unlock(&cpu_threads_lock);
}

vkllm_status vkr_device_open(vkr_device *dev, const vkr_device_options *options)
{
    vkr_device_options defaults = VKR_DEVICE_OPTIONS_DEFAULT;
    if (!options) options = &defaults;
    /* A host's device (lavapipe under a game engine) computes on whatever threads its environment gave it. */
    dev->cpu_workers = cpu_workers_of(options->host ? 0 : options->cpu_threads);
    if (options->host) return vkr_device_open_host(dev, options);
    const char *max_allocation = getenv("VKLLM_MAX_ALLOCATION");
    uint64_t bytes = 0;
    if (max_allocation && *max_allocation && (!parse_bytes(max_allocation, &bytes) || bytes < MIN_ALLOCATION_OVERRIDE))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "VKLLM_MAX_ALLOCATION='%s' is not a byte count of at least %u "
                          "(digits with an optional K, M or G)", max_allocation, MIN_ALLOCATION_OVERRIDE);
    const char *max_device = getenv("VKLLM_MAX_DEVICE_MB");
    int64_t mb = 0;
    if (max_device && *max_device && !parse_mb(max_device, &mb))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "VKLLM_MAX_DEVICE_MB='%.40s' is not a count of MiB (decimal "
                          "digits, 1 to 1073741824)", max_device);
    bool validation = options->validation < 0 ? env_flag("VKLLM_VALIDATION") : options->validation > 0;
    /* VKLLM_VALIDATION=sync adds synchronization validation however validation was turned on. */
    const char *validation_env = getenv("VKLLM_VALIDATION");
    bool sync_validation = validation && validation_env && strcmp(validation_env, "sync") == 0;
    uint32_t disable = disabled_features(options);
    const char *want = wanted_device(options);
    cpu_threads_env saved;
    dev->cpu_threads = options->cpu_threads;
    VKLLM_TRY(cpu_threads_set(options->cpu_threads, &saved));
    vkllm_status opened = create_instance(validation ? &dev->validation_errors : NULL, sync_validation,
                                          &dev->instance, &dev->messenger);
    VkPhysicalDevice *pds = NULL;
    vkr_caps *caps = NULL;
    device_features *features = NULL;
    uint32_t count = 0;
    /* The layer checks structures and SPIR-V against its own headers: VK_KHR_cooperative_matrix is 1.3.255. */
    bool khr_validated = !validation || layer_spec_version(validation_layer) >= VK_MAKE_API_VERSION(0, 1, 3, 255);
    if (opened == VKLLM_OK) opened = enumerate(dev->instance, khr_validated, disable, &pds, &caps, &features, &count);
    cpu_threads_restore(&saved);
    VKLLM_TRY(opened);
    int chosen = choose_device(want, caps, count);
    vkllm_status st = VKLLM_OK;
    if (count == 0)
        st = vkllm_fail(VKLLM_ERROR_NO_DEVICE, "no Vulkan 1.2 device with a compute queue "
                        "(on a machine without a GPU, install mesa-vulkan-drivers for lavapipe)");
    else if (chosen < 0)
        st = vkllm_fail(VKLLM_ERROR_NO_DEVICE, "%s'%s' matches none of the %u Vulkan devices (see 'vkllm devices')",
                        options->device && *options->device ? "device " : "VKLLM_DEVICE=", want, count);
    if (st == VKLLM_OK) {
        dev->physical = pds[chosen];
        dev->caps = caps[chosen];
        st = check_coopmat_request(&dev->caps, disable);
        if (st == VKLLM_OK) st = create_logical_device(dev, &features[chosen]);
    }
    free(pds);
    free(caps);
    free(features);
    if (st != VKLLM_OK) return st;
    dev->profiling = env_flag("VKLLM_PROFILE") && dev->caps.timestamps;
    return VKLLM_OK;
}

void vkr_device_close(vkr_device *dev)
{
    if (dev == live_device) live_device = NULL;
    vkr_queue_computing_end(dev);
    if (dev->device) {
        if (dev->command_pool) vkDestroyCommandPool(dev->device, dev->command_pool, NULL);
        if (!dev->borrowed) vkDestroyDevice(dev->device, NULL);
    }
    if (dev->borrowed) { /* the host's instance and device: nothing of theirs is destroyed */
        free(dev->profile);
        return;
    }
    if (dev->messenger) vkDestroyDebugUtilsMessengerEXT(dev->instance, dev->messenger, NULL);
    if (dev->instance) vkDestroyInstance(dev->instance, NULL);
    free(dev->profile);
}

void vkr_device_set_live(vkr_device *dev) { live_device = dev; }

void vkr_device_restore_live(void) { volk_restore(); }

const vkr_caps *vkr_device_caps(const vkr_device *dev) { return &dev->caps; }

bool vkr_uniform_texel_format(const vkr_device *dev, VkFormat format) { return uniform_texel(dev->physical, format); }

uint32_t vkr_device_validation_errors(const vkr_device *dev)
{
    return atomic_load((atomic_uint *)&dev->validation_errors);
}

uint32_t vkr_validation_errors_total(void) { return atomic_load(&process_validation_errors); }

void vkr_device_inject_fault(vkr_device *dev, vkr_fault_kind kind, uint64_t n) { vkr_faults_arm(&dev->faults, kind, n); }

uint64_t vkr_device_fault_calls(const vkr_device *dev, vkr_fault_kind kind)
{
    return atomic_load((_Atomic uint64_t *)&dev->faults.calls[kind]);
}

bool vkr_device_profiling(const vkr_device *dev) { return dev->profiling; }

void vkr_profile_add(vkr_device *dev, const char *label, double ms)
{
    for (uint32_t i = 0; i < dev->profile_count; i++)
        if (strcmp(dev->profile[i].label, label) == 0) {
            dev->profile[i].count++;
            dev->profile[i].total_ms += ms;
            return;
        }
    if (dev->profile_count == dev->profile_capacity) {
        uint32_t cap = dev->profile_capacity ? dev->profile_capacity * 2 : 32;
        vkr_profile_entry *p = realloc(dev->profile, cap * sizeof *p);
        if (!p) return; /* profiling is best-effort; losing an entry is harmless */
        dev->profile = p;
        dev->profile_capacity = cap;
    }
    vkr_profile_entry *e = &dev->profile[dev->profile_count++];
    snprintf(e->label, sizeof e->label, "%s", label);
    e->count = 1;
    e->total_ms = ms;
}

static int by_total_desc(const void *a, const void *b)
{
    double x = ((const vkr_profile_entry *)a)->total_ms, y = ((const vkr_profile_entry *)b)->total_ms;
    return (x < y) - (x > y);
}

void vkr_device_print_profile(vkr_device *dev, FILE *out)
{
    if (!dev->profile_count) return;
    qsort(dev->profile, dev->profile_count, sizeof *dev->profile, by_total_desc);
    double all = 0;
    for (uint32_t i = 0; i < dev->profile_count; i++) all += dev->profile[i].total_ms;
    fprintf(out, "%-32s %10s %12s %10s %7s\n", "op", "count", "total ms", "avg us", "share");
    for (uint32_t i = 0; i < dev->profile_count; i++) {
        const vkr_profile_entry *e = &dev->profile[i];
        fprintf(out, "%-32s %10" PRIu64 " %12.3f %10.1f %6.1f%%\n", e->label, e->count, e->total_ms,
                1000.0 * e->total_ms / (double)e->count, all > 0 ? 100.0 * e->total_ms / all : 0.0);
    }
    fprintf(out, "%-32s %10s %12.3f\n", "total", "", all);
    fprintf(out, "%" PRIu64 " dispatches, %" PRIu64 " barriers between them\n", dev->profile_dispatches,
            dev->profile_barriers);
    dev->profile_count = 0;
    dev->profile_dispatches = dev->profile_barriers = 0;
}

void vkr_profile_count(vkr_device *dev, uint32_t dispatches, uint32_t barriers)
{
    dev->profile_dispatches += dispatches;
    dev->profile_barriers += barriers;
}

const char *vkr_device_type_name(VkPhysicalDeviceType type)
{
    switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

void vkr_caps_print(const vkr_caps *c, FILE *out)
{
    fprintf(out, "  name                     %s\n", c->name);
    fprintf(out, "  type                     %s\n", vkr_device_type_name(c->type));
    fprintf(out, "  vendor                   %s (0x%04x), device 0x%04x\n", vkr_vendor_name(c->vendor),
            c->vendor_id, c->device_id);
    fprintf(out, "  driver                   %s (%s)\n", c->driver_name, c->driver_info);
    fprintf(out, "  Vulkan                   %u.%u.%u\n", VK_API_VERSION_MAJOR(c->api_version),
            VK_API_VERSION_MINOR(c->api_version), VK_API_VERSION_PATCH(c->api_version));
    fprintf(out, "  subgroup size            %u (min %u, max %u, size control %s, full subgroups %s)\n",
            c->subgroup_size, c->min_subgroup_size, c->max_subgroup_size, c->subgroup_size_control ? "yes" : "no",
            c->full_subgroups ? "yes" : "no");
    fprintf(out, "  subgroup ops (compute)   %s%s%s%s%s%s\n", c->subgroup_compute ? "" : "none",
            c->subgroup_compute && (c->subgroup_ops & VK_SUBGROUP_FEATURE_BASIC_BIT) ? "basic " : "",
            c->subgroup_compute && (c->subgroup_ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) ? "arithmetic " : "",
            c->subgroup_compute && (c->subgroup_ops & VK_SUBGROUP_FEATURE_BALLOT_BIT) ? "ballot " : "",
            c->subgroup_compute && (c->subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) ? "shuffle " : "",
            c->subgroup_compute && (c->subgroup_ops & VK_SUBGROUP_FEATURE_CLUSTERED_BIT) ? "clustered" : "");
    fprintf(out, "  fp16 arithmetic          %s\n", c->fp16_arith ? "yes" : "no");
    fprintf(out, "  16-bit / 8-bit storage   %s / %s\n", c->storage16 ? "yes" : "no", c->storage8 ? "yes" : "no");
    fprintf(out, "  integer dot product      %s%s%s\n", c->int_dot ? "yes" : "no",
            c->int_dot ? (c->int_dot_accelerated ? " (4x8 signed accelerated" : " (4x8 signed not accelerated") : "",
            c->int_dot ? (c->int_dot_mixed_accelerated ? ", mixed signedness accelerated)"
                                                       : ", mixed signedness not accelerated)") : "");
    fprintf(out, "  cooperative matrix       %s", vkr_coopmat_name(c->coopmat));
    if (c->coopmat != VKR_COOPMAT_NONE) fprintf(out, " %ux%ux%u", c->coopmat_m, c->coopmat_n, c->coopmat_k);
    fprintf(out, " (KHR %s", c->coopmat_khr ? "yes" : "no");
    if (c->coopmat_khr) fprintf(out, " %ux%ux%u", c->coopmat_khr_size[0], c->coopmat_khr_size[1], c->coopmat_khr_size[2]);
    if (c->coopmat_khr_unvalidated) fprintf(out, " (listed; not probed: the validation layer predates it)");
    fprintf(out, ", NV %s", c->coopmat_nv ? "yes" : "no");
    if (c->coopmat_nv) fprintf(out, " %ux%ux%u", c->coopmat_nv_size[0], c->coopmat_nv_size[1], c->coopmat_nv_size[2]);
    fprintf(out, "; f16 x f16 + f32, subgroup scope)\n");
    fprintf(out, "  maxStorageBufferRange    %" PRIu64 "\n", c->max_storage_buffer_range);
    fprintf(out, "  uniform texel buffers    %s (max %u texels)\n", c->texel_rgba32 ? "R32G32B32A32" : "no",
            c->max_texel_buffer_elements);
    fprintf(out, "  maxMemoryAllocationSize  %" PRIu64 " (%.1f MiB)%s\n", c->max_memory_allocation,
            (double)c->max_memory_allocation / 1048576.0,
            c->max_memory_allocation_lowered ? ", lowered by VKLLM_MAX_ALLOCATION" : "");
    fprintf(out, "  max shared memory        %u bytes\n", c->max_shared_memory);
    fprintf(out, "  max workgroup            %u invocations (%u x %u x %u)\n", c->max_workgroup_invocations,
            c->max_workgroup_size[0], c->max_workgroup_size[1], c->max_workgroup_size[2]);
    for (uint32_t i = 0; i < c->heap_count; i++)
        fprintf(out, "  memory heap %u            %.1f MiB%s\n", i, (double)c->heap_size[i] / (1024.0 * 1024.0),
                c->heap_device_local[i] ? " device-local" : "");
    fprintf(out, "  unified memory (UMA)     %s\n", c->uma ? "yes" : "no");
    fprintf(out, "  timestamps               %s (period %.3f ns)\n", c->timestamps ? "yes" : "no",
            (double)c->timestamp_period_ns);
}
