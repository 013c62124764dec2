/* vkllm: LLM inference on any Vulkan 1.2 device.  The one public header.
 *
 * Every function that can fail returns a vkllm_status; on failure, vkllm_last_error() gives a message
 * that names what failed and where (thread-local, valid until the next failing call on the thread). */
#ifndef VKLLM_H
#define VKLLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vkllm_status {
    VKLLM_OK = 0,
    VKLLM_ERROR_INVALID_ARGUMENT,    /* a caller passed something out of range or inconsistent */
    VKLLM_ERROR_OUT_OF_HOST_MEMORY,  /* malloc failed */
    VKLLM_ERROR_OUT_OF_DEVICE_MEMORY,/* the Vulkan device has no room left */
    VKLLM_ERROR_NO_DEVICE,           /* no Vulkan 1.2 device, or none matching VKLLM_DEVICE */
    VKLLM_ERROR_VULKAN,              /* a Vulkan call failed; the message names the call and VkResult */
    VKLLM_ERROR_UNSUPPORTED,         /* valid input that vkllm cannot handle (type, architecture, feature) */
    VKLLM_ERROR_IO,                  /* a file could not be opened, read, mapped or written */
    VKLLM_ERROR_BAD_FORMAT,          /* a file is malformed or truncated */
    VKLLM_ERROR_CONTEXT_FULL,        /* a prompt or generation does not fit the context */
    VKLLM_ERROR_VALIDATION,          /* the Vulkan validation layer reported an error */
    VKLLM_STATUS_COUNT
} vkllm_status;

/* "VKLLM_ERROR_IO" etc. */
const char *vkllm_status_name(vkllm_status status);
/* Message of the last failure on this thread ("" if none). */
const char *vkllm_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
