#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *vkllm_error_message(void) { return last_error; }

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

bool vkr_parse_decimal(const char *text, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || errno == ERANGE || v > max) return false;
    *out = v;
    return true;
}
