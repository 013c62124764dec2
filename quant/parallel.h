/* The CPU threads of the quantizers' long loops (GPTQ, its factorisation and refit, the calibration Hessians):
 * a region runs fn(ctx, t, n) for t = 0..n-1 on n threads, the calling thread one of them, and returns when all
 * have.  Work is split by what each index owns (rows of a matrix), never by partial sums, so every result is
 * bitwise the same whatever the number of threads. */
#ifndef VKLLM_QUANT_PARALLEL_H
#define VKLLM_QUANT_PARALLEL_H

#include <stdint.h>

enum { QUANT_MAX_THREADS = 64 };

typedef void (*quant_parallel_fn)(void *ctx, uint32_t thread, uint32_t n_threads);

/* The threads a region uses: VKLLM_QUANT_THREADS if set (1..64), else the online CPUs (at most 64); a value
 * that is not such a count is ignored here (vkllm quantize refuses it before it starts). */
uint32_t quant_threads(void);

/* Runs the region on min(n_threads, QUANT_MAX_THREADS) threads; where a thread cannot be started its index runs
 * in the calling thread afterwards (fn must not wait for the other indices). */
void quant_parallel_run(quant_parallel_fn fn, void *ctx, uint32_t n_threads);

#endif
