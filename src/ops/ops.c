#include "ops.h"

#include <stdlib.h>

vkllm_status ops_create(vkr_device *dev, ops_context **out)
{
    *out = NULL;
    ops_context *ops = calloc(1, sizeof *ops);
    if (!ops) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "allocating the op context");
    ops->dev = dev;
    ops->caps = vkr_device_caps(dev);
    vkllm_status st = tuning_resolve(ops->caps, &ops->resolved);
    if (st != VKLLM_OK) {
        free(ops);
        return st;
    }
    ops->tuning = &ops->resolved;
    ops->cpu_workers = vkr_device_cpu_workers(dev);
    *out = ops;
    return VKLLM_OK;
}

void ops_free(ops_context *ops)
{
    if (!ops) return;
    vkr_buffer_free(ops->dev, &ops->scratch);
    for (uint32_t i = 0; i < ops->n_retired; i++) vkr_buffer_free(ops->dev, &ops->retired[i]);
    free(ops->retired);
    free(ops);
}

vkllm_status ops_scratch(ops_context *ops, uint64_t bytes, vkr_range *out)
{
    if (bytes == 0) bytes = 4;
    if (ops->scratch.size < bytes) {
        uint64_t old = ops->scratch.size;
        if (old) {
            vkr_buffer *r = realloc(ops->retired, sizeof *r * (ops->n_retired + 1));
            if (!r) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "ops scratch");
            ops->retired = r;
            ops->retired[ops->n_retired++] = ops->scratch;
            ops->scratch = (vkr_buffer){0};
        }
        /* Doubling keeps the outgrown buffers below the final size in all. */
        uint64_t size = bytes < 2 * old ? 2 * old : bytes;
        VKLLM_TRY(vkr_buffer_alloc(ops->dev, size, VKR_MEMORY_DEVICE, &ops->scratch));
    }
    *out = vkr_sub(&ops->scratch, 0, bytes);
    return VKLLM_OK;
}

vkllm_status ops_pipeline(ops_context *ops, const char *shader, uint32_t n_bindings, uint32_t readonly_mask,
                          uint32_t push_size, const uint32_t *spec, uint32_t n_spec, const vkr_pipeline **out)
{
    vkr_pipeline_desc desc = {.shader = shader, .n_bindings = n_bindings, .readonly_mask = readonly_mask,
                              .push_size = push_size, .n_spec = n_spec};
    if (n_spec > VKR_MAX_SPEC) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u constants", shader, n_spec);
    for (uint32_t i = 0; i < n_spec; i++) desc.spec[i] = spec[i];
    return vkr_pipeline_get(ops->dev, &desc, out);
}

bool ops_one_subgroup(const ops_context *ops, uint32_t wg)
{
    return wg <= ops->caps->min_subgroup_size;
}

vkllm_status ops_row_pipeline(ops_context *ops, const char *shader, uint32_t n_bindings, uint32_t readonly_mask,
                              uint32_t push_size, uint32_t wg, const vkr_pipeline **out)
{
    const uint32_t spec[2] = {wg, ops_one_subgroup(ops, wg)};
    return ops_pipeline(ops, shader, n_bindings, readonly_mask, push_size, spec, 2, out);
}
