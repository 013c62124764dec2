#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

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
};

const char *vkllm_status_name(vkllm_status status)
{
    if ((unsigned)status >= VKLLM_STATUS_COUNT) return "VKLLM_STATUS_UNKNOWN";
    return status_names[status];
}

const char *vkllm_last_error(void) { return last_error; }

void vkllm_clear_error(void) { last_error[0] = '\0'; }

vkllm_status vkllm_fail(vkllm_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return status;
}

vkllm_status vkllm_fail_context(vkllm_status status, const char *fmt, ...)
{
    char prefix[512];
    char previous[sizeof last_error];
    va_list args;
    va_start(args, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, args);
    va_end(args);
    memcpy(previous, last_error, sizeof previous);
    /* Truncation is acceptable: the message stays a bounded, NUL-terminated string. */
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3) n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t room = sizeof last_error - n - 3;
    size_t m = strnlen(previous, room);
    memcpy(last_error + n + 2, previous, m);
    last_error[n + 2 + m] = '\0';
    return status;
}
