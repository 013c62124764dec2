/* A request's own state: tokens, sampler, and the output text with stop strings held back until decided. */
#include "request.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "tokenizer/utf8.h"

vkllm_request_params vkllm_request_default_params(void)
{
    return (vkllm_request_params){.sampling = vkllm_sampling_default(), .max_tokens = 0, .stop = NULL, .n_stop = 0};
}

void request_free(request *r)
{
    if (!r) return;
    for (uint32_t i = 0; r->stop && i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->tokens);
    free(r->text);
    sampler_free(r->smp);
    free(r);
}

vkllm_status request_create(uint64_t id, uint64_t arrival, const vkllm_token *prompt, uint32_t n_prompt,
                            uint32_t n_ctx, int32_t n_vocab, const vkllm_request_params *params, request **out)
{
    *out = NULL;
    request *r = calloc(1, sizeof *r);
    if (!r) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "request");
    r->id = id;
    r->arrival = arrival;
    r->slot = -1;
    r->n_prompt = r->n_tokens = n_prompt;
    r->cap = n_ctx;
    r->max_tokens = params->max_tokens;
    r->logprobs = params->logprobs != 0;
    r->top_logprobs = params->top_logprobs;
    if (params->top_logprobs > VKLLM_MAX_TOP_LOGPROBS) {
        free(r);
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "request: top_logprobs %u is more than %d", params->top_logprobs,
                          VKLLM_MAX_TOP_LOGPROBS);
    }
    vkllm_status st = VKLLM_OK;
    if (!(r->tokens = malloc(n_ctx * sizeof *r->tokens))) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "request tokens");
    if (st == VKLLM_OK) memcpy(r->tokens, prompt, n_prompt * sizeof *prompt);
    if (st == VKLLM_OK && params->n_stop) {
        if (!(r->stop = calloc(params->n_stop, sizeof *r->stop))) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "stop");
        for (uint32_t i = 0; st == VKLLM_OK && i < params->n_stop; i++) {
            if (!params->stop || !params->stop[i] || !params->stop[i][0]) {
                st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "request: stop string %u is NULL or empty", i);
                break;
            }
            if (!(r->stop[i] = strdup(params->stop[i]))) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "stop");
            r->n_stop = i + 1;
            size_t n = strlen(r->stop[i]);
            if (n > r->max_stop) r->max_stop = n;
        }
    }
    if (st == VKLLM_OK && params->sampling.temperature > 0) st = sampler_create(&params->sampling, n_vocab, &r->smp);
    for (uint32_t i = 0; st == VKLLM_OK && r->smp && i < n_prompt; i++) st = sampler_accept(r->smp, prompt[i]);
    if (st != VKLLM_OK) {
        request_free(r);
        return st;
    }
    *out = r;
    return VKLLM_OK;
}

static vkllm_status append_text(request *r, const char *piece, size_t n)
{
    if (r->text_len + n + 1 > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < r->text_len + n + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "request text of %zu bytes", cap);
        r->text = t;
        r->text_cap = cap;
    }
    memcpy(r->text + r->text_len, piece, n);
    r->text_len += n;
    r->text[r->text_len] = '\0';
    return VKLLM_OK;
}

/* Bytes at the end of the text that begin some stop string (they wait for the next token). */
static size_t held_back(const request *r)
{
    size_t best = 0;
    for (uint32_t i = 0; i < r->n_stop; i++) {
        size_t n = strlen(r->stop[i]);
        for (size_t k = n - 1; k > best; k--)
            if (k <= r->text_len - r->emitted && memcmp(r->text + r->text_len - k, r->stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

vkllm_status request_accept(request *r, const vkllm_model *model, vkllm_token token, uint32_t n_ctx,
                            const char **new_text, size_t *new_len)
{
    *new_text = NULL;
    *new_len = 0;
    if (vkllm_token_is_eog(model, token)) {
        r->finish = VKLLM_FINISH_STOP;
    } else {
        r->tokens[r->n_tokens++] = token;
        r->n_generated++;
        if (r->smp) VKLLM_TRY(sampler_accept(r->smp, token));
        char piece[256];
        size_t n = 0;
        VKLLM_TRY(vkllm_token_to_piece(model, token, piece, sizeof piece, &n));
        size_t search_from = r->emitted;
        VKLLM_TRY(append_text(r, piece, n));
        for (uint32_t i = 0; i < r->n_stop; i++) {
            const char *hit = strstr(r->text + search_from, r->stop[i]);
            if (hit && (!r->finish || (size_t)(hit - r->text) < r->text_len)) {
                r->text_len = (size_t)(hit - r->text);
                r->text[r->text_len] = '\0';
                r->finish = VKLLM_FINISH_STOP;
            }
        }
        if (!r->finish && ((r->max_tokens && r->n_generated >= r->max_tokens) || r->n_tokens >= n_ctx))
            r->finish = VKLLM_FINISH_LENGTH;
    }
    size_t keep = 0;
    if (!r->finish) {
        /* Hold back a possible stop string's start and a character whose bytes are not all here yet
         * (byte-fallback tokens split one character over several tokens). */
        keep = held_back(r);
        const size_t partial = utf8_incomplete_tail(r->text + r->emitted, r->text_len - r->emitted);
        if (partial > keep) keep = partial;
    }
    if (r->text_len - keep > r->emitted) {
        *new_text = r->text + r->emitted;
        *new_len = r->text_len - keep - r->emitted;
        r->emitted = r->text_len - keep;
    }
    return VKLLM_OK;
}
