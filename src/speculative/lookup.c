/* Prompt lookup (llama.cpp's lookup decoding, vLLM's n-gram speculator): the text often repeats itself, so
 * what followed the last earlier occurrence of the current n-gram is a cheap guess at what comes next. */
#include "spec.h"

uint32_t spec_lookup(const vkllm_token *hist, uint32_t n, uint32_t ngram, uint32_t max, vkllm_token *out,
                     uint32_t *matched)
{
    *matched = 0;
    if (max == 0) return 0;
    for (uint32_t m = ngram < n ? ngram : n - (n > 0); m >= 1; m--) {
        const vkllm_token *tail = hist + n - m;
        /* latest first: start i is an earlier occurrence of the tail (i + m < n, so it is not the tail itself) */
        for (uint32_t i = n - m; i-- > 0;) {
            uint32_t j = 0;
            while (j < m && hist[i + j] == tail[j]) j++;
            if (j < m) continue;
            /* what followed, copied on into the proposal itself when it reaches the end (a loop of the text
             * shorter than max repeats, as LZ77 copies overlap) */
            uint32_t got = 0;
            *matched = m;
            for (uint32_t f = i + m; got < max; f++) out[got++] = f < n ? hist[f] : out[f - n];
            return got;
        }
    }
    return 0;
}
