#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The only state: the level read from VKLLM_LOG and the clock reading the stamps count from, both set once. */
static vkllm_log_level log_level;
static double log_start;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

double vkllm_log_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void log_init(void)
{
    log_start = vkllm_log_clock();
    const char *v = getenv("VKLLM_LOG");
    if (!v || !*v || !strcmp(v, "0") || !strcmp(v, "off") || !strcmp(v, "warn") || !strcmp(v, "error"))
        log_level = VKLLM_LOG_OFF;
    else if (!strcmp(v, "info") || !strcmp(v, "1"))
        log_level = VKLLM_LOG_INFO;
    else if (!strcmp(v, "debug") || !strcmp(v, "2"))
        log_level = VKLLM_LOG_DEBUG;
    else
        fprintf(stderr, "vkllm: VKLLM_LOG=%s is not one of off, warn, info, debug: the log stays off\n", v);
}

bool vkllm_log_enabled(vkllm_log_level level)
{
    pthread_once(&log_once, log_init);
    return level != VKLLM_LOG_OFF && level <= log_level;
}

void vkllm_log(vkllm_log_level level, const char *fmt, ...)
{
    if (!vkllm_log_enabled(level)) return;
    char line[1024];
    int n = snprintf(line, sizeof line, "vkllm [%9.3f s] ", vkllm_log_clock() - log_start);
    va_list args;
    va_start(args, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, args);
    va_end(args);
    /* One write per line, so lines from several threads do not interleave. */
    size_t len = strlen(line);
    line[len] = '\n';
    fwrite(line, 1, len + 1, stderr);
}
