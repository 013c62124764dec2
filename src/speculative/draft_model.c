/* The draft-model drafter: a smaller model with the target's vocabulary, in a context of its own, follows the
 * text (evaluating only what it lacks: its cache keeps the longest prefix it shares with the target's) and
 * proposes its own greedy or sampled continuation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "spec.h"

vkllm_status spec_check_vocab(const vkllm_model *a, const vkllm_model *b)
{
    uint32_t na = a->cfg.n_vocab, nb = b->cfg.n_vocab;
    if (na != nb)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "speculation: the draft model has %u tokens, the model %u: token "
                          "%u is the first that differs (a draft needs the same vocabulary)", nb, na, na < nb ? na : nb);
    char pa[256], pb[256];
    for (uint32_t id = 0; id < na; id++) {
        size_t la = 0, lb = 0;
        vkllm_status sa = vkllm_token_to_piece(a, (vkllm_token)id, pa, sizeof pa, &la);
        vkllm_status sb = vkllm_token_to_piece(b, (vkllm_token)id, pb, sizeof pb, &lb);
        if (sa != sb || (sa == VKLLM_OK && (la != lb || memcmp(pa, pb, la))))
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "speculation: token %u of the draft model is '%.*s', of the "
                              "model '%.*s' (a draft needs the same vocabulary)", id, sb == VKLLM_OK ? (int)lb : 0, pb,
                              sa == VKLLM_OK ? (int)la : 0, pa);
    }
    if (vkllm_token_bos(a) != vkllm_token_bos(b) || vkllm_token_eos(a) != vkllm_token_eos(b))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "speculation: the draft model's BOS/EOS are %d/%d, the model's "
                          "%d/%d", vkllm_token_bos(b), vkllm_token_eos(b), vkllm_token_bos(a), vkllm_token_eos(a));
    return VKLLM_OK;
}

/* Evaluates tokens[0..n) of the draft's sequence 0 from position start, in chunks of powers of two; the last row's output: greedy, its argmax
 * into *token, else its logits stay readable. */
static vkllm_status eval(vkllm_context *d, const vkllm_token *tokens, uint32_t n, uint32_t start, bool greedy,
                         vkllm_token *token)
{
    uint32_t cap = n < d->params.n_batch ? n : d->params.n_batch;
    int32_t *pos = malloc(cap * sizeof *pos), *seq = calloc(cap, sizeof *seq);
    int8_t *want = calloc(cap, 1);
    vkllm_status st = pos && seq && want ? VKLLM_OK : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "draft batch");
    for (uint32_t done = 0; done < n && st == VKLLM_OK;) {
        /* chunks of a power of two: the draft catches up by passes of a few sizes, whose pipelines (the mat-vec's
         * are per column count) and recordings are soon all made */
        uint32_t chunk = 1;
        while (2 * chunk <= n - done && 2 * chunk <= cap) chunk *= 2;
        for (uint32_t i = 0; i < chunk; i++) pos[i] = (int32_t)(start + done + i);
        bool last = done + chunk == n;
        want[chunk - 1] = last;
        vkllm_batch b = {chunk, tokens + done, pos, seq, want};
        st = context_decode(d, &b, last && greedy, last && greedy ? token : NULL);
        want[chunk - 1] = 0;
        if (st == VKLLM_OK) memcpy(d->history + start + done, tokens + done, chunk * sizeof *tokens);
        d->n_history = st == VKLLM_OK ? start + done + chunk : start + done;
        done += chunk;
    }
    free(pos), free(seq), free(want);
    return st;
}

/* The top probability of a row of logits (softmax) and its argmax. */
static float top_probability(const float *logits, uint32_t n_vocab, vkllm_token *argmax)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    double total = 0.0;
    for (uint32_t i = 0; i < n_vocab; i++) total += exp((double)logits[i] - logits[best]);
    *argmax = (vkllm_token)best;
    return (float)(1.0 / total);
}

vkllm_status spec_draft_model(vkllm_context *d, const vkllm_token *hist, uint32_t n, uint32_t max, float min_p,
                              sampler *dsmp, float *q_rows, vkllm_token *out, uint32_t *n_out)
{
    *n_out = 0;
    if (n == 0 || n >= d->params.n_ctx) return VKLLM_OK; /* past the draft's context: no drafts */
    if (max > d->params.n_ctx - n) max = d->params.n_ctx - n;
    if (max == 0) return VKLLM_OK;
    uint32_t common = 0;
    while (common < d->n_history && common < n && d->history[common] == hist[common]) common++;
    if (common == n) common = n - 1; /* the last token runs again for its output */
    VKLLM_TRY(kv_pages_truncate(d->pages, 0, common));
    d->n_history = common;
    bool greedy = !dsmp && min_p <= 0.0f;
    uint32_t n_vocab = d->model->cfg.n_vocab;
    vkllm_token tok = 0;
    VKLLM_TRY(eval(d, hist + common, n - common, common, greedy, &tok));
    for (uint32_t i = 0; i < max; i++) {
        if (!greedy) {
            const float *logits = vkllm_get_logits(d, 0);
            if (!logits) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "draft: no logits");
            float top = top_probability(logits, n_vocab, &tok);
            if (top < min_p) break;
            if (dsmp) {
                float *q = q_rows + (size_t)i * n_vocab;
                VKLLM_TRY(sampler_probs(dsmp, logits, q));
                tok = sampler_draw_probs(dsmp, q);
                VKLLM_TRY(sampler_accept(dsmp, tok));
            }
        }
        out[(*n_out)++] = tok;
        if (i + 1 == max || vkllm_token_is_eog(d->model, tok)) break;
        vkllm_token input = tok;
        VKLLM_TRY(eval(d, &input, 1, n + i, greedy, &tok));
    }
    return VKLLM_OK;
}
