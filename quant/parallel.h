/* The CPU threads of the quantizers' long loops (GPTQ, its factorisation and refit, the calibration Hessians):
 * a region runs fn(ctx, t, n) for t = 0..n-1 on n threads, the calling thread one of them, and returns when all
 * have.  Work is split by what each index owns (rows of a matrix), never by partial sums, so every result is
 * bitwise the same whatever the number of threads. */
#ifndef VKLLM_QUANT_PARALLEL_H
#define VKLLM_QUANT_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

enum { QUANT_MAX_THREADS = 64 };

typedef void (*quant_parallel_fn)(void *ctx, uint32_t thread, uint32_t n_threads);

/* VKLLM_QUANT_THREADS: false where it is set but not a count from 1 to QUANT_MAX_THREADS; *count is its value, 0
 * where it is unset or not such a count. */
bool quant_threads_setting(uint32_t *count);
/* The threads a region uses: VKLLM_QUANT_THREADS where it is a count, else the online CPUs (at most 64); vkllm
 * quantize refuses a value that is not a count before it starts (quant_threads_setting). */
uint32_t quant_threads(void);

/* Runs the region on min(n_threads, QUANT_MAX_THREADS) threads; where a thread cannot be started its index runs
 * in the calling thread afterwards (fn must not wait for the other indices). */
void quant_parallel_run(quant_parallel_fn fn, void *ctx, uint32_t n_threads);

#endif
