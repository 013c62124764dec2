/* Errors: a status (the codes of the public header's status part, the only part of it the runtime sees) plus a
 * thread-local message naming what failed.  The public vkllm_status_name() and vkllm_last_error() are the API's
 * (src/api/api_status.c); the runtime only writes the message. */
#ifndef VKLLM_RUNTIME_ERROR_H
#define VKLLM_RUNTIME_ERROR_H

#ifndef VKLLM_STATUS_ONLY
#define VKLLM_STATUS_ONLY
#include "vkllm.h"
#undef VKLLM_STATUS_ONLY
#else
#include "vkllm.h"
#endif

#include <stdbool.h>
#include <stdint.h>

#if defined(__GNUC__)
#define VKLLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VKLLM_PRINTF(a, b)
#endif

/* Records the message for vkllm_last_error() and returns status, so callers can write
 *   return vkllm_fail(VKLLM_ERROR_IO, "gguf: cannot open %s", path); */
vkllm_status vkllm_fail(vkllm_status status, const char *fmt, ...) VKLLM_PRINTF(2, 3);

/* Prepends context to the current message ("loading model.gguf: " + message), returns status. */
vkllm_status vkllm_fail_context(vkllm_status status, const char *fmt, ...) VKLLM_PRINTF(2, 3);

void vkllm_clear_error(void);

/* The message of the last failure on this thread ("" if none): what vkllm_last_error() returns. */
const char *vkllm_error_message(void);

/* A count given as text (an environment variable's value): decimal digits only, no sign, space or suffix (strtoull
 * alone takes "-1" as the largest value and skips leading spaces), at most max.  False if text is not one. */
bool vkr_parse_decimal(const char *text, uint64_t max, uint64_t *out);

/* Propagate a failure unchanged. */
#define VKLLM_TRY(expr)                                                                            \
    do {                                                                                           \
        vkllm_status vkllm_try_status_ = (expr);                                                   \
        if (vkllm_try_status_ != VKLLM_OK) return vkllm_try_status_;                               \
    } while (0)

#endif
