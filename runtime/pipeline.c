#include "pipeline.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device_internal.h"
#include "log.h"
#include "shader_checks.h"
#include "shaders.h"

static bool same_desc(const vkr_pipeline *p, const vkr_pipeline_desc *d)
{
    const vkr_pipeline_desc *a = &p->desc;
    return strcmp(p->shader_name, d->shader) == 0 && a->n_bindings == d->n_bindings &&
           a->readonly_mask == d->readonly_mask && a->push_size == d->push_size && a->n_spec == d->n_spec &&
           a->required_subgroup_size == d->required_subgroup_size && a->full_subgroups == d->full_subgroups &&
           memcmp(a->texel_format, d->texel_format, sizeof d->texel_format) == 0 &&
           memcmp(a->spec, d->spec, d->n_spec * sizeof d->spec[0]) == 0;
}

static vkllm_status check_desc(const vkr_device *dev, const vkr_pipeline_desc *d)
{
    if (!d->shader || d->n_bindings > VKR_MAX_BINDINGS || d->n_spec > VKR_MAX_SPEC || d->push_size % 4 ||
        d->push_size > 128 || strlen(d->shader) >= sizeof ((vkr_pipeline *)0)->shader_name)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "pipeline '%s': %u bindings, %u constants, %u push bytes",
                          d->shader ? d->shader : "(null)", d->n_bindings, d->n_spec, d->push_size);
    if (d->n_bindings > dev->caps.max_storage_buffers)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "pipeline '%s' binds %u storage buffers; '%s' allows %u per stage",
                          d->shader, d->n_bindings, dev->caps.name, dev->caps.max_storage_buffers);
    for (uint32_t i = 0; i < d->n_bindings; i++)
        if (d->texel_format[i] != VK_FORMAT_UNDEFINED && !vkr_uniform_texel_format(dev, d->texel_format[i]))
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "pipeline '%s': binding %u needs format %d as a uniform texel buffer, "
                              "which '%s' does not support", d->shader, i, (int)d->texel_format[i], dev->caps.name);
    /* Without size control a pipeline runs at the default size (SPIR-V 1.5: no varying sizes), so pinning that one
     * size needs no control (a host's device that left subgroupSizeControl off, docs/embedding.md). */
    bool default_size = d->required_subgroup_size == dev->caps.subgroup_size && !dev->caps.subgroup_size_control;
    if (d->required_subgroup_size && !default_size &&
        (!dev->caps.subgroup_size_control || d->required_subgroup_size < dev->caps.min_subgroup_size ||
         d->required_subgroup_size > dev->caps.max_subgroup_size))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "pipeline '%s' needs subgroup size %u; '%s' allows %u..%u%s",
                          d->shader, d->required_subgroup_size, dev->caps.name, dev->caps.min_subgroup_size,
                          dev->caps.max_subgroup_size, dev->caps.subgroup_size_control ? "" : " (no size control)");
    if (d->full_subgroups && !dev->caps.full_subgroups)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "pipeline '%s' needs full subgroups; '%s' lacks computeFullSubgroups",
                          d->shader, dev->caps.name);
    return VKLLM_OK;
}

static void pipeline_destroy(vkr_device *dev, vkr_pipeline *p)
{
    if (p->pipeline) vkDestroyPipeline(dev->device, p->pipeline, NULL);
    if (p->layout) vkDestroyPipelineLayout(dev->device, p->layout, NULL);
    if (p->set_layout) vkDestroyDescriptorSetLayout(dev->device, p->set_layout, NULL);
    free(p);
}

/* shader_check_id: the pipeline's 1-based place in dev->pipelines, for the shader-check build. */
static vkllm_status build(vkr_device *dev, const vkr_shader_blob *blob, vkr_pipeline *p, uint32_t shader_check_id)
{
    const vkr_pipeline_desc *d = &p->desc;
    VkDescriptorSetLayoutBinding bindings[VKR_MAX_BINDINGS];
    for (uint32_t i = 0; i < d->n_bindings; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                                     .descriptorType = vkr_descriptor_type(d, i),
                                                     .descriptorCount = 1,
                                                     .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo set_info = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                                .bindingCount = d->n_bindings, .pBindings = bindings};
    VKR_CHECK(vkCreateDescriptorSetLayout(dev->device, &set_info, NULL, &p->set_layout));
    VkPushConstantRange push = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = d->push_size};
    /* Set 1: the shader-check build's debug buffer (shader_checks.h). */
    VkDescriptorSetLayout sets[2] = {p->set_layout, dev->checks_layout};
    VkPipelineLayoutCreateInfo layout_info = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                              .setLayoutCount = vkr_shader_checks_enabled() ? 2 : 1,
                                              .pSetLayouts = sets, .pushConstantRangeCount = d->push_size ? 1 : 0,
                                              .pPushConstantRanges = &push};
    VKR_CHECK(vkCreatePipelineLayout(dev->device, &layout_info, NULL, &p->layout));

    VkShaderModuleCreateInfo module_info = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                            .codeSize = blob->size, .pCode = blob->code};
    VkShaderModule module;
    VKR_CHECK(vkCreateShaderModule(dev->device, &module_info, NULL, &module));
    VkSpecializationMapEntry entries[VKR_MAX_SPEC + 1];
    uint32_t values[VKR_MAX_SPEC + 1], n_entries = d->n_spec;
    for (uint32_t i = 0; i < d->n_spec; i++) {
        entries[i] = (VkSpecializationMapEntry){.constantID = i, .offset = i * 4, .size = 4};
        values[i] = d->spec[i];
    }
    if (vkr_shader_checks_enabled()) {
        /* The pipeline's number, which a firing loop guard records so the error can name the shader. */
        entries[n_entries] = (VkSpecializationMapEntry){.constantID = VKR_SHADER_CHECK_ID_CONSTANT,
                                                        .offset = n_entries * 4, .size = 4};
        values[n_entries++] = shader_check_id;
    }
    VkSpecializationInfo spec = {.mapEntryCount = n_entries, .pMapEntries = entries, .dataSize = n_entries * 4,
                                 .pData = values};
    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo subgroup = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
        .requiredSubgroupSize = d->required_subgroup_size};
    /* A shader that pins its subgroup size splits the workgroup into whole subgroups of it (the _sg mat-vec gives
     * each subgroup its own rows): where the device can promise full subgroups, ask for them rather than
     * trust that the driver launches no partial one. */
    VkPipelineShaderStageCreateFlags stage_flags = 0;
    if (d->full_subgroups || (d->required_subgroup_size && dev->caps.full_subgroups && d->n_spec &&
                              d->spec[0] % d->required_subgroup_size == 0))
        stage_flags |= VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT;
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .pNext = d->required_subgroup_size && dev->caps.subgroup_size_control ? &subgroup : NULL,
                  .flags = stage_flags,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module,
                  .pName = "main",
                  .pSpecializationInfo = n_entries ? &spec : NULL},
        .layout = p->layout,
    };
    VkResult r = vkCreateComputePipelines(dev->device, dev->pipeline_cache, 1, &info, NULL, &p->pipeline);
    vkDestroyShaderModule(dev->device, module, NULL);
    if (r != VK_SUCCESS) return vkr_fail_vk(r, "vkCreateComputePipelines", __FILE__, __LINE__);
    return VKLLM_OK;
}

vkllm_status vkr_pipeline_get(vkr_device *dev, const vkr_pipeline_desc *desc, const vkr_pipeline **out)
{
    VKLLM_TRY(check_desc(dev, desc));
    pthread_mutex_lock(&dev->lock);
    for (uint32_t i = 0; i < dev->pipeline_count; i++)
        if (same_desc(dev->pipelines[i], desc)) {
            *out = dev->pipelines[i];
            pthread_mutex_unlock(&dev->lock);
            return VKLLM_OK;
        }
    vkllm_status st = VKLLM_OK;
    const vkr_shader_blob *blob = vkr_shader_find(desc->shader);
    vkr_pipeline *p = NULL;
    if (!blob) st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "no shader variant named '%s' in the library", desc->shader);
    if (st == VKLLM_OK && dev->pipeline_count == dev->pipeline_capacity) {
        uint32_t cap = dev->pipeline_capacity ? 2 * dev->pipeline_capacity : 64;
        vkr_pipeline **grown = realloc(dev->pipelines, cap * sizeof *grown);
        if (!grown) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "pipeline table");
        else dev->pipelines = grown, dev->pipeline_capacity = cap;
    }
    if (st == VKLLM_OK && !(p = calloc(1, sizeof *p))) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "pipeline");
    if (st == VKLLM_OK) {
        p->desc = *desc;
        snprintf(p->shader_name, sizeof p->shader_name, "%s", desc->shader);
        p->desc.shader = p->shader_name;
        double started = vkllm_log_clock();
        st = build(dev, blob, p, dev->pipeline_count + 1);
        if (st != VKLLM_OK) vkllm_fail_context(st, "building pipeline '%s'", desc->shader);
        double seconds = vkllm_log_clock() - started;
        dev->pipelines_built++;
        dev->pipeline_build_seconds += seconds;
        /* the constants' values tell apart the pipelines of one shader (each is compiled on its own) */
        char spec[VKR_MAX_SPEC * 11 + 1] = "";
        for (uint32_t i = 0, used = 0; i < desc->n_spec && used < sizeof spec; i++)
            used += (uint32_t)snprintf(spec + used, sizeof spec - used, "%s%u", i ? "," : "", desc->spec[i]);
        vkllm_log(VKLLM_LOG_DEBUG, "pipeline %s built in %.1f ms (spec constants {%s}%s)", desc->shader,
                  1e3 * seconds, spec, desc->required_subgroup_size ? ", pinned subgroup size" : "");
    }
    if (st == VKLLM_OK) {
        dev->pipelines[dev->pipeline_count++] = p;
        *out = p;
    } else if (p) {
        pipeline_destroy(dev, p);
    }
    pthread_mutex_unlock(&dev->lock);
    return st;
}

void vkr_pipeline_stats(const vkr_device *dev, uint32_t *built, double *seconds)
{
    *built = dev->pipelines_built;
    *seconds = dev->pipeline_build_seconds;
}

/* $XDG_CACHE_HOME/vkllm or ~/.cache/vkllm, created if missing; NULL if neither variable is set. */
static char *cache_dir(void)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[1024];
    if (xdg && *xdg) snprintf(base, sizeof base, "%s", xdg);
    else if (home && *home) snprintf(base, sizeof base, "%s/.cache", home);
    else return NULL;
    mkdir(base, 0755);
    size_t n = strlen(base) + 8;
    char *dir = malloc(n);
    if (!dir) return NULL;
    snprintf(dir, n, "%s/vkllm", base);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        free(dir);
        return NULL;
    }
    return dir;
}

/* The driver checks the header too, but a file from another device or a damaged one is dropped here so
 * that vkCreatePipelineCache never sees it. */
static bool cache_header_matches(const vkr_device *dev, const uint8_t *data, size_t size)
{
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(dev->physical, &props);
    if (size < 16 + VK_UUID_SIZE) return false;
    uint32_t header[4];
    memcpy(header, data, sizeof header);
    return header[0] >= 16 + VK_UUID_SIZE && header[1] == VK_PIPELINE_CACHE_HEADER_VERSION_ONE &&
           header[2] == props.vendorID && header[3] == props.deviceID &&
           memcmp(data + 16, props.pipelineCacheUUID, VK_UUID_SIZE) == 0;
}

/* The cache file's data if it is this device's (*size 0 if there is none, it cannot be read or it is another's). */
static uint8_t *read_cache_file(const vkr_device *dev, size_t *size)
{
    uint8_t *data = NULL;
    *size = 0;
    FILE *f = dev->pipeline_cache_path ? fopen(dev->pipeline_cache_path, "rb") : NULL;
    if (f) {
        if (fseek(f, 0, SEEK_END) == 0) {
            long len = ftell(f);
            if (len > 0 && len < (64l << 20) && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)len)) &&
                fread(data, 1, (size_t)len, f) == (size_t)len)
                *size = (size_t)len;
        }
        fclose(f);
    }
    if (*size && !cache_header_matches(dev, data, *size)) *size = 0;
    return data;
}

vkllm_status vkr_pipeline_cache_open(vkr_device *dev)
{
    char *dir = cache_dir();
    if (dir) {
        size_t n = strlen(dir) + 64;
        dev->pipeline_cache_path = malloc(n);
        if (dev->pipeline_cache_path)
            snprintf(dev->pipeline_cache_path, n, "%s/pipelines-%04x-%04x-%08x.bin", dir, dev->caps.vendor_id,
                     dev->caps.device_id, dev->caps.driver_version);
        free(dir);
    }
    size_t size = 0;
    uint8_t *data = read_cache_file(dev, &size);
    VkPipelineCacheCreateInfo info = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                      .initialDataSize = size, .pInitialData = size ? data : NULL};
    VkResult r = vkCreatePipelineCache(dev->device, &info, NULL, &dev->pipeline_cache);
    if (r != VK_SUCCESS && size) {
        info.initialDataSize = 0;
        info.pInitialData = NULL;
        r = vkCreatePipelineCache(dev->device, &info, NULL, &dev->pipeline_cache);
    }
    free(data);
    if (r != VK_SUCCESS) return vkr_fail_vk(r, "vkCreatePipelineCache", __FILE__, __LINE__);
    return VKLLM_OK;
}

/* What another device or process saved since this device read the file (replicas of a model, parallel test runs)
 * joins this device's cache before it is written, so the last writer does not drop the others' pipelines.  Best
 * effort: without it the file holds this device's pipelines only. */
static void merge_cache_file(vkr_device *dev)
{
    size_t size = 0;
    uint8_t *data = read_cache_file(dev, &size);
    VkPipelineCacheCreateInfo info = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                      .initialDataSize = size, .pInitialData = data};
    VkPipelineCache other = VK_NULL_HANDLE;
    if (size && vkCreatePipelineCache(dev->device, &info, NULL, &other) == VK_SUCCESS) {
        vkMergePipelineCaches(dev->device, dev->pipeline_cache, 1, &other);
        vkDestroyPipelineCache(dev->device, other, NULL);
    }
    free(data);
}

vkllm_status vkr_pipeline_cache_save(vkr_device *dev)
{
    if (!dev->pipeline_cache || !dev->pipeline_cache_path) return VKLLM_OK;
    merge_cache_file(dev);
    size_t size = 0;
    VKR_CHECK(vkGetPipelineCacheData(dev->device, dev->pipeline_cache, &size, NULL));
    uint8_t *data = malloc(size ? size : 1);
    if (!data) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "pipeline cache data (%zu bytes)", size);
    VkResult r = vkGetPipelineCacheData(dev->device, dev->pipeline_cache, &size, data);
    vkllm_status st = VKLLM_OK;
    if (r != VK_SUCCESS) {
        st = vkr_fail_vk(r, "vkGetPipelineCacheData", __FILE__, __LINE__);
    } else {
        /* Write to a temporary name and rename, so a concurrent reader never sees half a file; the name is the
         * process's and the device's, for devices of one process saving at once. */
        static atomic_uint saves;
        size_t n = strlen(dev->pipeline_cache_path) + 32;
        char *tmp = malloc(n);
        FILE *f = NULL;
        if (tmp) {
            snprintf(tmp, n, "%s.%d.%u.tmp", dev->pipeline_cache_path, (int)getpid(), atomic_fetch_add(&saves, 1u));
            f = fopen(tmp, "wb");
        }
        if (!f || fwrite(data, 1, size, f) != size) st = vkllm_fail(VKLLM_ERROR_IO, "writing %s", tmp ? tmp : "pipeline cache");
        if (f && fclose(f) != 0 && st == VKLLM_OK) st = vkllm_fail(VKLLM_ERROR_IO, "closing %s", tmp);
        if (st == VKLLM_OK && rename(tmp, dev->pipeline_cache_path) != 0)
            st = vkllm_fail(VKLLM_ERROR_IO, "renaming %s to %s", tmp, dev->pipeline_cache_path);
        if (st != VKLLM_OK && tmp) remove(tmp);
        free(tmp);
    }
    free(data);
    return st;
}

void vkr_pipelines_destroy(vkr_device *dev)
{
    if (dev->pipeline_cache) {
        vkr_pipeline_cache_save(dev); /* best effort: a cache that cannot be written only costs start-up time */
        vkDestroyPipelineCache(dev->device, dev->pipeline_cache, NULL);
    }
    for (uint32_t i = 0; i < dev->pipeline_count; i++) pipeline_destroy(dev, dev->pipelines[i]);
    free(dev->pipelines);
    free(dev->pipeline_cache_path);
}
