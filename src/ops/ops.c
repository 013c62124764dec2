#include "ops.h"

#include <stdlib.h>

vkllm_status ops_create(vkr_device *dev, ops_context **out)
{
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
    *out = ops;
    return VKLLM_OK;
}

void ops_free(ops_context *ops) { free(ops); }

vkllm_status ops_pipeline(ops_context *ops, const char *shader, uint32_t n_bindings, uint32_t readonly_mask,
                          uint32_t push_size, const uint32_t *spec, uint32_t n_spec, const vkr_pipeline **out)
{
    vkr_pipeline_desc desc = {.shader = shader, .n_bindings = n_bindings, .readonly_mask = readonly_mask,
                              .push_size = push_size, .n_spec = n_spec};
    if (n_spec > VKR_MAX_SPEC) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u constants", shader, n_spec);
    for (uint32_t i = 0; i < n_spec; i++) desc.spec[i] = spec[i];
    return vkr_pipeline_get(ops->dev, &desc, out);
}
