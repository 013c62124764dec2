/* One request of the scheduler: its tokens (prompt, then output), sampler, stop strings and output text. */
#ifndef VKLLM_SERVING_REQUEST_H
#define VKLLM_SERVING_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampling/sampling.h"
#include "vkllm.h"

typedef struct request {
    uint64_t id, arrival;
    vkllm_token *tokens;      /* [cap]: prompt, then generated */
    uint32_t n_tokens, cap, n_prompt, n_generated, max_tokens;
    uint32_t n_cached;        /* positions of tokens[] in its KV sequence */
    uint32_t n_hashed;        /* full blocks registered in the prefix cache */
    uint64_t block_hash;      /* hash of the blocks [0, n_hashed) */
    uint32_t n_prefix_hit;    /* prompt tokens mapped from the prefix cache at admission */
    int32_t slot;             /* KV sequence, -1 while waiting */
    sampler *smp;             /* NULL: greedy */
    char **stop;
    uint32_t n_stop;
    size_t max_stop;          /* longest stop string */
    char *text;               /* output text so far */
    size_t text_len, text_cap, emitted; /* text[0, emitted) reported */
    vkllm_finish_reason finish;
    bool logprobs;            /* report log-probabilities (vkllm_request_params.logprobs) */
    uint32_t top_logprobs;    /* and this many alternatives */
} request;

vkllm_status request_create(uint64_t id, uint64_t arrival, const vkllm_token *prompt, uint32_t n_prompt,
                            uint32_t n_ctx, int32_t n_vocab, const vkllm_request_params *params, request **out);
void request_free(request *r);

/* Appends a sampled token's piece to the text, checks the stop strings, max_tokens and the context, and sets
 * r->finish.  *new_text / *new_len: the text that may be reported now (held back while it may begin a stop
 * string). */
vkllm_status request_accept(request *r, const vkllm_model *model, vkllm_token token, uint32_t n_ctx,
                            const char **new_text, size_t *new_len);

#endif
