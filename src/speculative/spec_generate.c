/* Speculative generation: the loop of plain generation (generate.c) where each forward pass verifies the next
 * input with a draft of the tokens after it.  The text and the state left behind (cache, history) are plain
 * decoding's: greedy token for token, sampling in distribution. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/error.h"
#include "runtime/log.h"
#include "spec.h"

/* Tokens drafted after a lookup match of one token (a pass of 4): a weak guess gets a short draft */
#define LOOKUP_UNIGRAM_DRAFT 3u

/* Drafts up to room tokens after hist[0..n) (the last one is the next input); *from_model: they come with the draft
 * model's distributions (q_rows), else they are lookups (q one-hot). */
static vkllm_status draft(vkllm_context *ctx, sampler *dsmp, sampler *smp, const vkllm_token *hist, uint32_t n,
                          uint32_t room, uint32_t *k, bool *from_model)
{
    spec_state *s = ctx->spec;
    *k = 0;
    *from_model = false;
    if (room == 0) return VKLLM_OK;
    if (s->params.lookup_ngram) {
        uint32_t matched;
        *k = spec_lookup(hist, n, s->params.lookup_ngram, room, s->draft, &matched);
        /* a match of one token is a weak guess: a short draft */
        if (matched == 1 && *k > LOOKUP_UNIGRAM_DRAFT) *k = LOOKUP_UNIGRAM_DRAFT;
        *k = spec_pass_size(*k, s->params.draft_max);
    }
    if (*k == 0 && s->medusa) *k = spec_pass_size(spec_medusa_draft(s->medusa, room, s->draft), s->params.draft_max);
    if (*k == 0 && s->params.draft) {
        if (dsmp) sampler_copy_history(dsmp, smp);
        VKLLM_TRY(spec_draft_model(s->params.draft, hist, n, room, s->params.draft_min_p, dsmp, s->q_rows, s->draft, k));
        *from_model = dsmp != NULL;
        /* greedy drafts may be cut to a pass size; sampled ones keep their q rows whole */
        if (!dsmp) *k = spec_pass_size(*k, s->params.draft_max);
    }
    return VKLLM_OK;
}

/* Verifies k drafts after input at pos; *a accepted, *bonus the token after them. */
static vkllm_status verify(vkllm_context *ctx, sampler *smp, bool from_model, vkllm_token input, uint32_t k,
                           uint32_t *a, vkllm_token *bonus)
{
    spec_state *s = ctx->spec;
    *a = 0;
    if (!smp) {
        VKLLM_TRY(spec_verify_pass(ctx, 0, input, s->draft, k, true, s->target));
        while (*a < k && s->draft[*a] == s->target[*a]) (*a)++;
        *bonus = s->target[*a];
        return VKLLM_OK;
    }
    VKLLM_TRY(spec_verify_pass(ctx, 0, input, s->draft, k, false, NULL));
    int32_t n_vocab = (int32_t)ctx->model->cfg.n_vocab;
    for (uint32_t i = 0; i <= k; i++) {
        VKLLM_TRY(sampler_probs(smp, vkllm_get_logits(ctx, i), s->p));
        if (i == k) {
            *bonus = sampler_draw_probs(smp, s->p);
            break;
        }
        const float *q = from_model ? s->q_rows + (size_t)i * (size_t)n_vocab : NULL;
        if (!spec_sample_accept(smp, s->p, q, n_vocab, s->draft[i], bonus)) break;
        VKLLM_TRY(sampler_accept(smp, s->draft[i]));
        (*a)++;
    }
    return VKLLM_OK;
}

/* Emits pending[0..n) until generation ends (*done): n_predict tokens, an end-of-generation token, or the callback
 * asking to stop.  The sampler's window takes the last one: accepted drafts joined it when they were verified. */
vkllm_status spec_emit_pending(vkllm_context *ctx, const vkllm_token *pending, uint32_t n, uint32_t n_predict,
                               sampler *smp, vkllm_piece_fn on_piece, void *user, vkllm_generate_stats *stats,
                               bool *done)
{
    bool stop = false;
    *done = false;
    for (uint32_t i = 0; i < n; i++) {
        if (stats->n_generated >= n_predict) return *done = true, VKLLM_OK;
        if (vkllm_token_is_eog(ctx->model, pending[i])) {
            stats->stopped_by_eog = 1;
            return *done = true, VKLLM_OK;
        }
        VKLLM_TRY(generate_emit(ctx, pending[i], on_piece, user, &stop));
        stats->n_generated++;
        if (smp && i == n - 1) VKLLM_TRY(sampler_accept(smp, pending[i]));
        if (stop || stats->n_generated == n_predict) return *done = true, VKLLM_OK;
    }
    return VKLLM_OK;
}

vkllm_status spec_generate(vkllm_context *ctx, vkllm_token next, uint32_t n_prompt, uint32_t n_predict, sampler *smp,
                           vkllm_piece_fn on_piece, void *user, vkllm_generate_stats *stats, double t1)
{
    spec_state *s = ctx->spec;
    spec_adaptive_start(&s->adaptive, smp == NULL, s->params.draft && !s->params.lookup_ngram, s->params.draft_max);
    if (s->medusa) spec_medusa_take_hidden(s->medusa, ctx, 0); /* the prompt's last position */
    sampler *dsmp = NULL;
    /* the draft model samples its drafts from a stream of its own: the rule needs its draws independent of the
     * acceptance draws */
    if (smp && s->params.draft) VKLLM_TRY(sampler_clone(smp, UINT64_C(0x9e3779b97f4a7c15), &dsmp));
    vkllm_token pending[SPEC_MAX_DRAFT + 1];
    pending[0] = next;
    uint32_t n_pending = 1, pos = n_prompt; /* pending's last token is the next input, at pos */
    bool done = false;
    vkllm_status st = VKLLM_OK;
    while (st == VKLLM_OK && !done) {
        st = spec_emit_pending(ctx, pending, n_pending, n_predict, smp, on_piece, user, stats, &done);
        if (st != VKLLM_OK || done) break;
        if (pos >= ctx->params.n_ctx) {
            stats->generate_ms = vkllm_log_clock_ms() - t1;
            sampler_free(dsmp);
            return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "the context of %u positions is full after %u prompt and %u "
                              "generated tokens, short of the %u asked for (a larger n_ctx holds more)",
                              ctx->params.n_ctx, n_prompt, stats->n_generated, n_predict);
        }
        vkllm_token input = pending[n_pending - 1];
        ctx->history[pos] = input; /* the drafters read the text through the next input */
        uint32_t left = n_predict - stats->n_generated; /* >= 1: more tokens to emit, the first is the bonus */
        uint32_t room = spec_draft_room(ctx, pos, s->params.draft_max);
        if (room > left - 1) room = left - 1;
        if (s->params.adaptive) room = spec_adaptive_room(&s->adaptive, room);
        double started = vkllm_log_clock_ms();
        uint32_t k = 0, a = 0;
        vkllm_token bonus = 0;
        bool from_model = false;
        st = draft(ctx, dsmp, smp, ctx->history, pos + 1, room, &k, &from_model);
        if (st == VKLLM_OK) st = verify(ctx, smp, from_model, input, k, &a, &bonus);
        if (st != VKLLM_OK) break;
        /* row a's hidden state: the last kept position, whose base prediction is the bonus */
        if (s->medusa) spec_medusa_take_hidden(s->medusa, ctx, a);
        memcpy(ctx->history + pos + 1, s->draft, a * sizeof *s->draft);
        ctx->n_history = pos + 1 + a;
        st = spec_rollback(ctx, 0, pos + 1 + a);
        stats->n_verify++;
        stats->n_drafted += k;
        stats->n_accepted += a;
        stats->n_decode += a + 1;
        if (s->params.adaptive) spec_adaptive_update(&s->adaptive, k, a, vkllm_log_clock_ms() - started, s->params.draft_max);
        memcpy(pending, s->draft, a * sizeof *s->draft);
        pending[a] = bonus;
        n_pending = a + 1;
        pos += a + 1;
    }
    sampler_free(dsmp);
    stats->generate_ms = vkllm_log_clock_ms() - t1;
    if (st != VKLLM_OK) return st;
    /* Leave the cache as plain decoding would: the accepted drafts past the last emitted token are forgotten. */
    uint32_t plain = n_prompt + stats->n_generated - (!stats->stopped_by_eog && stats->n_generated ? 1 : 0);
    if (plain < ctx->pages->seq_len[0]) st = spec_rollback(ctx, 0, plain);
    vkllm_log(VKLLM_LOG_INFO, "generate: %u tokens in %.1f ms%s; speculation: %u drafted, %u accepted, %u passes",
              stats->n_generated, stats->generate_ms, stats->stopped_by_eog ? " (end of generation token)" : "",
              stats->n_drafted, stats->n_accepted, stats->n_verify);
    return st;
}
