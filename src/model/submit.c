/* Asynchronous forward passes: a pass is submitted without waiting and signals the context's timeline semaphore
 * to its ticket's value; polls advance it and read its results once it finished.
 *
 * Under a budget (vkllm_context_params.max_submit_us) the pass is split into groups of whole layers, each one
 * submission, and the next group is submitted only once the previous one finished (by a poll or a wait), so that
 * the host's own submissions to the queue run between them.  Each group is timed on the GPU; the running average
 * of the time per layer picks how many layers a group holds (re-recording the pass when that changes): as many
 * as fit the budget, at least one.
 *
 * Passes of several contexts may be in flight at once; every submission of a pass starts with a barrier after the
 * compute and transfer work submitted before it (forward_record), so they never overlap on the GPU (the contexts
 * of one model share its ops scratch). */
#include <string.h>

#include "context.h"
#include "runtime/error.h"
#include "runtime/log.h"

/* A group's measured GPU time, folded into the recording's average time per layer. */
static void measure(vkllm_context *ctx, recording *rec, uint32_t g)
{
    double us = 0;
    if (!vkr_sequence_gpu_us(rec->groups[g], &us)) return;
    uint32_t first = g ? rec->end[g - 1] : 0, layers = rec->end[g] - first;
    double sample = us / (layers ? layers : 1);
    rec->layer_us = rec->layer_us > 0 ? 0.75 * rec->layer_us + 0.25 * sample : sample;
    (void)ctx;
}

/* Under a budget: the layers per group the measured time per layer allows, with 10% of hysteresis either way;
 * the pass is re-recorded when that changes. */
static vkllm_status plan(vkllm_context *ctx, recording *rec)
{
    double budget = ctx->params.max_submit_us, per_layer = rec->layer_us;
    if (budget <= 0 || per_layer <= 0) return VKLLM_OK;
    uint32_t per = rec->layers_per_group ? rec->layers_per_group : 1, want = per;
    if (per > 1 && per * per_layer > 1.1 * budget) want = (uint32_t)(budget / per_layer);
    else if ((per + 1) * per_layer * 1.1 <= budget) want = (uint32_t)(budget / (1.1 * per_layer));
    if (want < 1) want = 1;
    if (want > ctx->model->cfg.n_layer) want = ctx->model->cfg.n_layer;
    if (want == per || (per >= ctx->model->cfg.n_layer && want >= per)) return VKLLM_OK;
    vkllm_log(VKLLM_LOG_INFO, "budget of %u us per submission: %.1f us per layer measured, %u layers per submission "
              "(were %u)", ctx->params.max_submit_us, per_layer, want, per);
    rec->layers_per_group = want;
    return context_record(ctx, rec);
}

/* The pass finished: results into the context (greedy ids, or the rows vkllm_get_logits reads). */
static vkllm_status finish(vkllm_context *ctx)
{
    pending_decode *p = &ctx->pending;
    p->active = false;
    ctx->completed_value = p->value;
    ctx->n_hidden_last = p->n_out;
    if (!p->greedy) {
        ctx->n_out_last = p->n_out;
        return VKLLM_OK;
    }
    uint32_t n_vocab = ctx->model->cfg.n_vocab;
    const uint8_t *ids = ctx->host_out.mapped + 4ull * ctx->params.n_outputs_max * n_vocab;
    memcpy(ctx->greedy_tokens, ids, p->n_out * sizeof *ctx->greedy_tokens);
    /* The argmax skips NaN, so only a row without one number in it comes back without an index. */
    for (uint32_t i = 0; i < p->n_out; i++)
        if (ctx->greedy_tokens[i] < 0 || (uint32_t)ctx->greedy_tokens[i] >= n_vocab)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "the model produced NaN logits: every one of the %u "
                              "logits of output row %u is NaN, so greedy decoding has no token to pick (a weight "
                              "holds NaN or an activation overflowed)", n_vocab, i);
    return VKLLM_OK;
}

/* Advances the pending pass: block waits for each group in turn, else returns as soon as one is still running. */
static vkllm_status pump(vkllm_context *ctx, bool block, bool *done)
{
    pending_decode *p = &ctx->pending;
    *done = false;
    for (;;) {
        if (p->next_group > 0) {
            vkr_sequence *g = p->rec->groups[p->next_group - 1];
            bool finished = true;
            if (block) VKLLM_TRY(vkr_sequence_wait(g));
            else VKLLM_TRY(vkr_sequence_poll(g, &finished));
            if (!finished) return VKLLM_OK;
            measure(ctx, p->rec, p->next_group - 1);
        }
        if (p->next_group == p->rec->n_groups) {
            *done = true;
            return finish(ctx);
        }
        bool last = p->next_group + 1 == p->rec->n_groups;
        vkllm_status st = vkr_sequence_submit_signal(p->rec->groups[p->next_group], last ? ctx->timeline : VK_NULL_HANDLE,
                                                     p->value);
        if (st != VKLLM_OK) {
            p->active = false; /* what was submitted is waited for when the sequences are destroyed or reused */
            return st;
        }
        p->next_group++;
    }
}

vkllm_status context_submit(vkllm_context *ctx, recording *rec, bool greedy, uint32_t n_out, uint64_t *value)
{
    if (!ctx->timeline) VKLLM_TRY(vkr_timeline_create(ctx->model->dev, &ctx->timeline));
    VKLLM_TRY(plan(ctx, rec));
    ctx->pending = (pending_decode){.active = true, .greedy = greedy, .rec = rec, .next_group = 0, .n_out = n_out,
                                    .value = ++ctx->timeline_value};
    *value = ctx->pending.value;
    bool done;
    return pump(ctx, false, &done);
}

static vkllm_status check_value(const vkllm_context *ctx, uint64_t value, const char *what)
{
    if (value == 0 || value > ctx->timeline_value)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: ticket %llu was not handed out by this context (its last "
                          "is %llu)", what, (unsigned long long)value, (unsigned long long)ctx->timeline_value);
    return VKLLM_OK;
}

vkllm_status context_poll(vkllm_context *ctx, uint64_t value, bool *done)
{
    *done = false;
    VKLLM_TRY(check_value(ctx, value, "vkllm_ticket_poll"));
    if (!ctx->pending.active || ctx->pending.value != value) {
        *done = true; /* an earlier pass: waited for before the next one was submitted */
        return VKLLM_OK;
    }
    return pump(ctx, false, done);
}

vkllm_status context_wait(vkllm_context *ctx, uint64_t value)
{
    VKLLM_TRY(check_value(ctx, value, "vkllm_ticket_wait"));
    if (!ctx->pending.active || ctx->pending.value != value) return VKLLM_OK;
    bool done = false;
    return pump(ctx, true, &done);
}

/* ---- The public functions ---- */

vkllm_status vkllm_decode_submit(vkllm_context *ctx, const vkllm_batch *batch, vkllm_ticket *ticket)
{
    if (!ctx || !ticket) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_decode_submit: context or ticket is NULL");
    *ticket = (vkllm_ticket){.ctx = NULL, .value = 0};
    for (uint32_t i = 0; batch && batch->seq && i < batch->n_tokens; i++)
        if (batch->seq[i] == 0) ctx->n_history = 0; /* as vkllm_decode: sequence 0 is the caller's now */
    generate_state_free(ctx->gen); /* and a step-wise generation ends */
    ctx->gen = NULL;
    recording *rec = NULL;
    uint32_t n_out = 0;
    uint64_t value = 0;
    VKLLM_TRY(context_stage_batch(ctx, batch, false, false, &rec, &n_out));
    VKLLM_TRY(context_submit(ctx, rec, false, n_out, &value));
    *ticket = (vkllm_ticket){.ctx = ctx, .value = value};
    return VKLLM_OK;
}

vkllm_status vkllm_ticket_poll(const vkllm_ticket *ticket, int *done)
{
    if (!ticket || !ticket->ctx || !done)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_ticket_poll: ticket, its context or done is NULL");
    bool finished = false;
    vkllm_status st = context_poll(ticket->ctx, ticket->value, &finished);
    *done = finished;
    return st;
}

vkllm_status vkllm_ticket_wait(const vkllm_ticket *ticket)
{
    if (!ticket || !ticket->ctx)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_ticket_wait: ticket or its context is NULL");
    return context_wait(ticket->ctx, ticket->value);
}

vkllm_status vkllm_context_timeline(vkllm_context *ctx, void *semaphore)
{
    if (!ctx || !semaphore)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_context_timeline: context or semaphore is NULL");
    if (!ctx->timeline) VKLLM_TRY(vkr_timeline_create(ctx->model->dev, &ctx->timeline));
    memcpy(semaphore, &ctx->timeline, sizeof ctx->timeline);
    return VKLLM_OK;
}
