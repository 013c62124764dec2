/* The deterministic prompt of llama.cpp's peer script (shared/peer/bench.mjs), so that vkllm's benchmark and
 * tests feed the very ids llama.cpp is measured or compared with: BOS (id 1), then 3 + s % (n_vocab - 3)
 * with s = s * 1664525 + 1013904223 (mod 2^32) from s = 42.  samples/logits.c rebuilds it on its own (a
 * sample uses the public header only). */
#ifndef VKLLM_BENCH_PROMPT_H
#define VKLLM_BENCH_PROMPT_H

#include <stdint.h>

/* tokens[0..n) of the prompt for a vocabulary of n_vocab (> 3) ids. */
void bench_prompt_tokens(uint32_t n_vocab, int32_t *tokens, uint32_t n);

#endif
