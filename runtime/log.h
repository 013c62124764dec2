/* The stage log: with VKLLM_LOG=info (or debug) vkllm says on stderr what it is doing, each line stamped with
 * the seconds since the log was first used, so a run that prints nothing for a long time shows which stage it
 * is in (mapping the file, uploading weights, building pipelines, waiting for the GPU).  Off by default.
 *   info:  one line per stage with its totals (model load, pipelines built, context, prompt, generation)
 *   debug: also every tensor's upload, every pipeline with its compile time, every submit and fence wait
 * Errors never go through the log: they travel in the returned vkllm_status and vkllm_last_error(); "warn"
 * is accepted and means off.  Usable from src/ as well as the runtime. */
#ifndef VKLLM_RUNTIME_LOG_H
#define VKLLM_RUNTIME_LOG_H

#include <stdbool.h>

#include "error.h"

typedef enum vkllm_log_level {
    VKLLM_LOG_OFF = 0,
    VKLLM_LOG_INFO,
    VKLLM_LOG_DEBUG,
} vkllm_log_level;

/* Whether lines of this level are printed (reads VKLLM_LOG on first use). */
bool vkllm_log_enabled(vkllm_log_level level);
/* One line, "vkllm [  12.345 s] " + the message + newline, to stderr, if the level is enabled. */
void vkllm_log(vkllm_log_level level, const char *fmt, ...) VKLLM_PRINTF(2, 3);
/* Seconds on a monotonic clock, for the durations callers log. */
double vkllm_log_clock(void);
/* The same in milliseconds, for the speeds and timings callers report. */
static inline double vkllm_log_clock_ms(void) { return 1e3 * vkllm_log_clock(); }

#endif
