/* Threads for the quantizers' loops (see parallel.h). */
#include "parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/error.h"

bool quant_threads_setting(uint32_t *count)
{
    uint64_t n = 0;
    const char *env = getenv("VKLLM_QUANT_THREADS");
    const bool valid = !env || (vkr_parse_decimal(env, QUANT_MAX_THREADS, &n) && n > 0);
    *count = valid ? (uint32_t)n : 0;
    return valid;
}

uint32_t quant_threads(void)
{
    uint32_t n = 0;
    quant_threads_setting(&n);
    if (n > 0) return n;
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > QUANT_MAX_THREADS ? QUANT_MAX_THREADS : (uint32_t)cpus;
}

typedef struct region_thread {
    quant_parallel_fn fn;
    void *ctx;
    uint32_t index, count;
} region_thread;

static void *run_one(void *p)
{
    const region_thread *r = p;
    r->fn(r->ctx, r->index, r->count);
    return NULL;
}

void quant_parallel_run(quant_parallel_fn fn, void *ctx, uint32_t n_threads)
{
    const uint32_t n = n_threads < 1 ? 1 : n_threads > QUANT_MAX_THREADS ? QUANT_MAX_THREADS : n_threads;
    pthread_t threads[QUANT_MAX_THREADS];
    region_thread args[QUANT_MAX_THREADS];
    bool started[QUANT_MAX_THREADS] = {false};
    for (uint32_t t = 1; t < n; t++) {
        args[t] = (region_thread){fn, ctx, t, n};
        started[t] = pthread_create(&threads[t], NULL, run_one, &args[t]) == 0;
    }
    fn(ctx, 0, n);
    for (uint32_t t = 1; t < n; t++) {
        if (started[t]) pthread_join(threads[t], NULL);
        else fn(ctx, t, n); /* no thread for it: its share here */
    }
}
