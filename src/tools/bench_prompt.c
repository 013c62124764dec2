#include "bench_prompt.h"

void bench_prompt_tokens(uint32_t n_vocab, int32_t *tokens, uint32_t n)
{
    uint32_t s = 42;
    if (n) tokens[0] = 1;
    for (uint32_t i = 1; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        tokens[i] = (int32_t)(3 + s % (n_vocab - 3));
    }
}
