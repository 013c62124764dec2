/* The public status functions: names of the codes, the thread's last message (written by runtime/error.c) and the
 * library's version. */
#include "runtime/error.h"
#include "vkllm.h"

static const char *const status_names[VKLLM_STATUS_COUNT] = {
    [VKLLM_OK] = "VKLLM_OK",
    [VKLLM_ERROR_INVALID_ARGUMENT] = "VKLLM_ERROR_INVALID_ARGUMENT",
    [VKLLM_ERROR_OUT_OF_HOST_MEMORY] = "VKLLM_ERROR_OUT_OF_HOST_MEMORY",
    [VKLLM_ERROR_OUT_OF_DEVICE_MEMORY] = "VKLLM_ERROR_OUT_OF_DEVICE_MEMORY",
    [VKLLM_ERROR_NO_DEVICE] = "VKLLM_ERROR_NO_DEVICE",
    [VKLLM_ERROR_VULKAN] = "VKLLM_ERROR_VULKAN",
    [VKLLM_ERROR_UNSUPPORTED] = "VKLLM_ERROR_UNSUPPORTED",
    [VKLLM_ERROR_IO] = "VKLLM_ERROR_IO",
    [VKLLM_ERROR_BAD_FORMAT] = "VKLLM_ERROR_BAD_FORMAT",
    [VKLLM_ERROR_CONTEXT_FULL] = "VKLLM_ERROR_CONTEXT_FULL",
    [VKLLM_ERROR_VALIDATION] = "VKLLM_ERROR_VALIDATION",
    [VKLLM_ERROR_BUFFER_TOO_SMALL] = "VKLLM_ERROR_BUFFER_TOO_SMALL",
};

const char *vkllm_status_name(vkllm_status status)
{
    if ((unsigned)status >= VKLLM_STATUS_COUNT || !status_names[status]) return "VKLLM_STATUS_UNKNOWN";
    return status_names[status];
}

const char *vkllm_last_error(void) { return vkllm_error_message(); }

const char *vkllm_version(void) { return VKLLM_VERSION_STRING; }
