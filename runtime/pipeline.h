/* Compute pipelines from the SPIR-V embedded in the library.  Each pipeline binds storage buffers (or
 * uniform texel buffers, see texel_format) at bindings 0..n_bindings-1 (set 0), takes push constants
 * (shapes) and specialization constants (workgroup size, tuning knobs).  Pipelines are cached per device
 * by (shader, constants), and their compiled form is kept in a VkPipelineCache saved under
 * $XDG_CACHE_HOME/vkllm (or ~/.cache/vkllm) for the next start. */
#ifndef VKLLM_RUNTIME_PIPELINE_H
#define VKLLM_RUNTIME_PIPELINE_H

#include <stdint.h>

#include "device.h"

#define VKR_MAX_BINDINGS 10 /* the fused Q/K/V mat-vec uses 9 (src/ops/matmul/matmul_fused.c) */
#define VKR_MAX_SPEC 16

typedef struct vkr_pipeline_desc {
    const char *shader;            /* variant name in shaders/variants.cmake */
    uint32_t n_bindings;           /* buffers at bindings 0..n_bindings-1 */
    uint32_t readonly_mask;        /* bit i set: the shader only reads binding i (spares barriers) */
    VkFormat texel_format[VKR_MAX_BINDINGS]; /* VK_FORMAT_UNDEFINED (0): binding i is a storage buffer; else a
                                                read-only uniform texel buffer viewed in this format */
    uint32_t push_size;            /* bytes of push constants, multiple of 4, <= 128 */
    uint32_t n_spec;               /* constant_id 0..n_spec-1 take spec[0..n_spec-1]; by convention id 0 is
                                      local_size_x */
    uint32_t spec[VKR_MAX_SPEC];
    uint32_t required_subgroup_size; /* 0: the driver's choice; else needs subgroup size control */
    bool full_subgroups;           /* every subgroup full (computeFullSubgroups): subgroup-scope cooperative
                                      matrices need all of their subgroup's invocations */
} vkr_pipeline_desc;

typedef struct vkr_pipeline {
    vkr_pipeline_desc desc;
    char shader_name[64];
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
} vkr_pipeline;

static inline VkDescriptorType vkr_descriptor_type(const vkr_pipeline_desc *d, uint32_t binding)
{
    return d->texel_format[binding] != VK_FORMAT_UNDEFINED ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                           : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

/* Creates or returns the cached pipeline; fails if the shader is unknown or the device rejects it. */
vkllm_status vkr_pipeline_get(vkr_device *dev, const vkr_pipeline_desc *desc, const vkr_pipeline **out);

/* Pipelines built on the device so far and the seconds vkCreateComputePipelines took for them (drivers that
 * compile on first dispatch, as lavapipe does, spend the rest of it in the first submission). */
void vkr_pipeline_stats(const vkr_device *dev, uint32_t *built, double *seconds);

/* Writes the pipeline cache file now (also done by vkr_device_destroy). */
vkllm_status vkr_pipeline_cache_save(vkr_device *dev);

/* The device's lifetime (device_create.c): the cache file read; the cache saved and every pipeline destroyed. */
vkllm_status vkr_pipeline_cache_open(vkr_device *dev);
void vkr_pipelines_destroy(vkr_device *dev);

#endif
