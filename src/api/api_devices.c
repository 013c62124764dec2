/* The public device list: what `vkllm devices` prints and what vkllm_model_params.device chooses from.  Each
 * call lists the devices afresh (a Vulkan instance for the listing only), so they need no state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/device.h"
#include "runtime/error.h"
#include "vkllm.h"

/* The listing, in which device `index` exists (*caps freed by the caller). */
static vkllm_status list_with(uint32_t index, const char *who, vkr_caps **caps, uint32_t *chosen)
{
    uint32_t count = 0;
    VKLLM_TRY(vkr_list_devices(NULL, caps, &count, chosen));
    if (index >= count) {
        free(*caps);
        *caps = NULL;
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: device %u does not exist (%u devices)", who, index, count);
    }
    return VKLLM_OK;
}

vkllm_status vkllm_device_count(uint32_t *count)
{
    if (!count) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_device_count: count is NULL");
    *count = 0;
    vkr_caps *caps = NULL;
    uint32_t chosen = 0;
    VKLLM_TRY(vkr_list_devices(NULL, &caps, count, &chosen));
    free(caps);
    return VKLLM_OK;
}

vkllm_status vkllm_device_info(uint32_t index, vkllm_device_properties *properties)
{
    if (!properties) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_device_info: properties is NULL");
    memset(properties, 0, sizeof *properties);
    vkr_caps *caps = NULL;
    uint32_t chosen = 0;
    VKLLM_TRY(list_with(index, "vkllm_device_info", &caps, &chosen));
    const vkr_caps *c = &caps[index];
    memcpy(properties->name, c->name, sizeof properties->name);
    properties->name[sizeof properties->name - 1] = '\0';
    properties->type = vkr_device_type_name(c->type);
    properties->vendor = vkr_vendor_name(c->vendor);
    properties->vendor_id = c->vendor_id;
    properties->device_id = c->device_id;
    properties->device_local_bytes = c->device_local_bytes;
    properties->uma = c->uma;
    properties->subgroup_size = c->subgroup_size;
    properties->cooperative_matrix = c->coopmat == VKR_COOPMAT_KHR ? "KHR"
                                     : c->coopmat == VKR_COOPMAT_NV ? "NV"
                                                                     : "none";
    properties->is_default = index == chosen;
    free(caps);
    return VKLLM_OK;
}

vkllm_status vkllm_device_describe(uint32_t index, char *buf, size_t capacity, size_t *n_bytes)
{
    if (!n_bytes || (!buf && capacity))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "vkllm_device_describe: n_bytes is NULL, or buf is NULL with a capacity");
    *n_bytes = 0;
    vkr_caps *caps = NULL;
    uint32_t chosen = 0;
    VKLLM_TRY(list_with(index, "vkllm_device_describe", &caps, &chosen));
    const vkr_caps *c = &caps[index];
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out) {
        free(caps);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vkllm_device_describe: open_memstream");
    }
    vkr_caps_print(c, out);
    fclose(out);
    free(caps);
    if (!text) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vkllm_device_describe: the description");
    *n_bytes = len;
    vkllm_status st = VKLLM_OK;
    if (capacity <= len)
        st = vkllm_fail(VKLLM_ERROR_BUFFER_TOO_SMALL, "vkllm_device_describe: %zu bytes and a NUL do not fit in %zu",
                        len, capacity);
    else
        memcpy(buf, text, len + 1);
    free(text);
    return st;
}
