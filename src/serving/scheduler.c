/* Continuous batching over the paged KV cache (include/vkllm.h, "Serving"; docs/serving.md).
 *
 * Each step: (1) every running request in arrival order asks for its pending tokens (one decode token, or the
 * next chunk of its prompt) within the token budget; a request whose pages are not available preempts the newest
 * running request (or waits itself if it is the newest); (2) waiting requests are admitted in arrival order while
 * a slot, budget and pages remain, first mapping the cached pages of their longest cached prefix; (3) one forward
 * pass; (4) a token is sampled for every request whose last pending token was in the batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/context.h"
#include "request.h"
#include "runtime/error.h"
#include "runtime/log.h"

struct vkllm_scheduler {
    vkllm_model *model;
    vkllm_context *ctx;
    vkllm_scheduler_params params;
    request **reqs;       /* [n_reqs] in arrival order, running and waiting */
    uint32_t n_reqs, cap_reqs;
    request **slots;      /* [n_seq_max] the request holding each KV sequence */
    uint64_t next_id, clock;
    /* one step's batch */
    vkllm_token *b_tokens;
    int32_t *b_pos, *b_seq;
    int8_t *b_want;
    request **b_take_req; /* [n_seq_max] requests in the batch */
    uint32_t *b_take;     /* [n_seq_max] their token counts */
    vkllm_token *b_out;   /* [n_seq_max] greedy ids */
    vkllm_step_output *outputs;
    size_t n_outputs;
    vkllm_token *top_tokens; /* [n_seq_max][VKLLM_MAX_TOP_LOGPROBS] the outputs' top tokens */
    float *top_logprobs;     /* and their log-probabilities */
    request **finished;   /* [cap_reqs] to free at the next step */
    uint32_t n_finished;
    vkllm_scheduler_stats stats;
};

vkllm_scheduler_params vkllm_scheduler_default_params(void)
{
    return (vkllm_scheduler_params){.n_ctx = 0, .n_seq_max = 8, .token_budget = 256, .n_kv_pages = 0,
                                    .max_waiting = 0, .prefix_cache = 1, .type_k = VKLLM_KV_F16, .type_v = VKLLM_KV_F16, .rotate_k = 1,
                                    .center_k = 1};
}

void vkllm_scheduler_free(vkllm_scheduler *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < s->n_reqs; i++) request_free(s->reqs[i]);
    for (uint32_t i = 0; i < s->n_finished; i++) request_free(s->finished[i]);
    vkllm_context_free(s->ctx);
    free(s->top_tokens), free(s->top_logprobs);
    free(s->reqs), free(s->slots), free(s->b_tokens), free(s->b_pos), free(s->b_seq), free(s->b_want);
    free(s->b_take_req), free(s->b_take), free(s->b_out), free(s->outputs), free(s->finished);
    free(s);
}

vkllm_status vkllm_scheduler_create(vkllm_model *model, const vkllm_scheduler_params *params, vkllm_scheduler **out)
{
    *out = NULL;
    if (!model) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_scheduler_create: model is NULL");
    vkllm_scheduler_params p = params ? *params : vkllm_scheduler_default_params();
    if (!p.n_seq_max || !p.token_budget || p.n_seq_max > p.token_budget)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "scheduler: n_seq_max %u, token_budget %u (budget >= sequences "
                          "> 0: every running request decodes in each step)", p.n_seq_max, p.token_budget);
    vkllm_scheduler *s = calloc(1, sizeof *s);
    if (!s) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "scheduler");
    s->model = model;
    vkllm_context_params cp = {.n_ctx = p.n_ctx, .n_batch = p.token_budget, .n_seq_max = p.n_seq_max,
                               .n_outputs_max = p.n_seq_max, .type_k = p.type_k, .type_v = p.type_v, .rotate_k = p.rotate_k,
                               .center_k = p.center_k};
    vkllm_status st = vkllm_context_create(model, &cp, &s->ctx);
    if (st == VKLLM_OK) {
        p.n_ctx = s->ctx->params.n_ctx;
        kv_pages *kv = s->ctx->pages;
        if (p.n_kv_pages && p.n_kv_pages < kv->n_pages) kv->n_usable = p.n_kv_pages;
        p.n_kv_pages = kv->n_usable;
        s->params = p;
        s->cap_reqs = 64;
        uint32_t nb = p.token_budget, ns = p.n_seq_max;
        s->reqs = malloc(s->cap_reqs * sizeof *s->reqs);
        s->finished = malloc(s->cap_reqs * sizeof *s->finished);
        s->slots = calloc(ns, sizeof *s->slots);
        s->b_tokens = malloc(nb * sizeof *s->b_tokens);
        s->b_pos = malloc(nb * sizeof *s->b_pos);
        s->b_seq = malloc(nb * sizeof *s->b_seq);
        s->b_want = malloc(nb);
        s->b_take_req = malloc(ns * sizeof *s->b_take_req);
        s->b_take = malloc(ns * sizeof *s->b_take);
        s->b_out = malloc(ns * sizeof *s->b_out);
        s->outputs = malloc(s->cap_reqs * sizeof *s->outputs);
        s->top_tokens = malloc((size_t)ns * VKLLM_MAX_TOP_LOGPROBS * sizeof *s->top_tokens);
        s->top_logprobs = malloc((size_t)ns * VKLLM_MAX_TOP_LOGPROBS * sizeof *s->top_logprobs);
        if (!s->top_tokens || !s->top_logprobs) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "scheduler arrays");
        if (!s->reqs || !s->finished || !s->slots || !s->b_tokens || !s->b_pos || !s->b_seq || !s->b_want ||
            !s->b_take_req || !s->b_take || !s->b_out || !s->outputs)
            st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "scheduler arrays");
    }
    if (st != VKLLM_OK) {
        vkllm_scheduler_free(s);
        return st;
    }
    vkllm_log(VKLLM_LOG_INFO, "scheduler: %u sequences of %u positions, %u KV pages, steps of up to %u tokens%s",
              p.n_seq_max, p.n_ctx, p.n_kv_pages, p.token_budget, p.prefix_cache ? ", prefix cache" : "");
    *out = s;
    return VKLLM_OK;
}

static vkllm_status grow_lists(vkllm_scheduler *s)
{
    if (s->n_reqs < s->cap_reqs) return VKLLM_OK;
    uint32_t cap = s->cap_reqs * 2;
    request **a = realloc(s->reqs, cap * sizeof *a);
    if (a) s->reqs = a;
    request **f = a ? realloc(s->finished, cap * sizeof *f) : NULL;
    if (f) s->finished = f;
    vkllm_step_output *o = f ? realloc(s->outputs, cap * sizeof *o) : NULL;
    if (o) s->outputs = o;
    if (!o) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "scheduler: room for %u requests", cap);
    s->cap_reqs = cap;
    return VKLLM_OK;
}

vkllm_status vkllm_scheduler_submit(vkllm_scheduler *s, const vkllm_token *prompt, size_t n_prompt,
                                    const vkllm_request_params *params, uint64_t *id)
{
    if (id) *id = 0;
    if (!s || !prompt || !n_prompt || !id)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_scheduler_submit: missing scheduler, prompt or id");
    if (n_prompt >= s->params.n_ctx)
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "the prompt is %zu tokens; the context holds %u (the prompt and "
                          "one generated token must fit)", n_prompt, s->params.n_ctx);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || (uint32_t)prompt[i] >= s->model->cfg.n_vocab)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "prompt token %d at %zu is outside the vocabulary of %u",
                              prompt[i], i, s->model->cfg.n_vocab);
    uint32_t pool_positions = s->ctx->pages->n_usable * s->ctx->pages->page_size;
    if (n_prompt + 1 > pool_positions)
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "the prompt is %zu tokens; the KV pool holds %u positions in all",
                          n_prompt, pool_positions);
    if (s->params.max_waiting && s->stats.n_waiting >= s->params.max_waiting)
        return vkllm_fail(VKLLM_ERROR_BUFFER_TOO_SMALL, "%u requests wait already (max_waiting)", s->stats.n_waiting);
    vkllm_request_params rp = params ? *params : vkllm_request_default_params();
    s->n_outputs = 0;
    VKLLM_TRY(grow_lists(s));
    request *r;
    VKLLM_TRY(request_create(++s->next_id, ++s->clock, prompt, (uint32_t)n_prompt, s->params.n_ctx,
                             (int32_t)s->model->cfg.n_vocab, &rp, &r));
    s->reqs[s->n_reqs++] = r;
    s->stats.n_waiting++;
    *id = r->id;
    return VKLLM_OK;
}

/* Gives back a request's KV sequence (its hashed full pages stay cached). */
static void release_slot(vkllm_scheduler *s, request *r)
{
    if (r->slot < 0) return;
    kv_pages_truncate(s->ctx->pages, (uint32_t)r->slot, 0);
    s->slots[r->slot] = NULL;
    r->slot = -1;
    r->n_cached = 0;
    r->n_hashed = 0;
    r->block_hash = 0;
}

static void remove_request(vkllm_scheduler *s, uint32_t index)
{
    request *r = s->reqs[index];
    if (r->slot >= 0) s->stats.n_running--;
    else s->stats.n_waiting--;
    release_slot(s, r);
    memmove(s->reqs + index, s->reqs + index + 1, (s->n_reqs - index - 1) * sizeof *s->reqs);
    s->n_reqs--;
}

vkllm_status vkllm_scheduler_cancel(vkllm_scheduler *s, uint64_t id)
{
    if (!s) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_scheduler_cancel: scheduler is NULL");
    for (uint32_t i = 0; i < s->n_reqs; i++)
        if (s->reqs[i]->id == id) {
            request *r = s->reqs[i];
            remove_request(s, i);
            request_free(r);
            s->n_outputs = 0;
            return VKLLM_OK;
        }
    return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_scheduler_cancel: no request %llu is queued or running",
                      (unsigned long long)id);
}

static uint32_t pages_for(const vkllm_scheduler *s, uint32_t len)
{
    return (len + s->ctx->pages->page_size - 1) / s->ctx->pages->page_size;
}

/* Pages a request must add to hold `len` positions. */
static uint32_t pages_needed(const vkllm_scheduler *s, const request *r, uint32_t len)
{
    uint32_t have = pages_for(s, r->n_cached);
    uint32_t need = pages_for(s, len);
    return need > have ? need - have : 0;
}

static void preempt(vkllm_scheduler *s, request *r)
{
    vkllm_log(VKLLM_LOG_INFO, "scheduler: out of KV pages, request %llu preempted after %u tokens (recomputed later)",
              (unsigned long long)r->id, r->n_tokens);
    release_slot(s, r);
    s->stats.n_running--;
    s->stats.n_waiting++;
    s->stats.n_preemptions++;
}

/* splitmix64 of the running hash and each token: the hash of a block names it and everything before it. */
static uint64_t hash_block(uint64_t h, const vkllm_token *tokens, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t z = h ^ ((uint64_t)(uint32_t)tokens[i] + UINT64_C(0x9e3779b97f4a7c15) + (h << 6) + (h >> 2));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        h = z ^ (z >> 31);
    }
    return h;
}

/* Maps the cached pages of the longest cached prefix of r's tokens (never the last one: its logits are needed). */
static void map_cached_prefix(vkllm_scheduler *s, request *r)
{
    kv_pages *kv = s->ctx->pages;
    uint32_t ps = kv->page_size;
    while ((r->n_hashed + 1) * ps < r->n_tokens) {
        uint64_t h = hash_block(r->block_hash, r->tokens + r->n_hashed * ps, ps);
        int32_t page = kv_pages_lookup(kv, h);
        if (page < 0 || kv_pages_share(kv, (uint32_t)r->slot, page) != VKLLM_OK) break;
        r->block_hash = h;
        r->n_hashed++;
        r->n_cached += ps;
    }
}

/* Counts an admitted request's lookup in the prefix-cache statistics. */
static void count_prefix(vkllm_scheduler *s, request *r)
{
    uint32_t hit = r->n_cached < r->n_prompt ? r->n_cached : r->n_prompt;
    if (r->n_generated) return; /* a preempted request's recomputation is not a new prompt */
    s->stats.prefix_queried_tokens += r->n_prompt;
    s->stats.prefix_hit_tokens += hit;
    r->n_prefix_hit = hit;
}

/* Registers r's newly full pages in the prefix cache. */
static void hash_full_pages(vkllm_scheduler *s, request *r)
{
    uint32_t ps = s->ctx->pages->page_size;
    while ((r->n_hashed + 1) * ps <= r->n_cached) {
        r->block_hash = hash_block(r->block_hash, r->tokens + r->n_hashed * ps, ps);
        kv_pages_set_hash(s->ctx->pages, (uint32_t)r->slot, r->n_hashed, r->block_hash);
        r->n_hashed++;
    }
}

/* Puts tokens [n_cached, n_cached + take) of r in the batch; the last pending one wants logits. */
static void add_to_batch(vkllm_scheduler *s, request *r, uint32_t take, uint32_t *n_tokens, uint32_t *n_take)
{
    for (uint32_t i = 0; i < take; i++) {
        uint32_t at = *n_tokens + i;
        s->b_tokens[at] = r->tokens[r->n_cached + i];
        s->b_pos[at] = (int32_t)(r->n_cached + i);
        s->b_seq[at] = r->slot;
        s->b_want[at] = r->n_cached + i + 1 == r->n_tokens;
    }
    *n_tokens += take;
    s->b_take_req[*n_take] = r;
    s->b_take[*n_take] = take;
    (*n_take)++;
}

static void finish(vkllm_scheduler *s, request *r)
{
    for (uint32_t i = 0; i < s->n_reqs; i++)
        if (s->reqs[i] == r) {
            remove_request(s, i);
            break;
        }
    s->finished[s->n_finished++] = r;
}

static vkllm_step_output *new_output(vkllm_scheduler *s, const request *r)
{
    vkllm_step_output *o = &s->outputs[s->n_outputs++];
    *o = (vkllm_step_output){.id = r->id, .token = -1, .n_prompt = r->n_prompt, .n_cached_prompt = r->n_prefix_hit};
    return o;
}

/* Chooses this step's tokens (steps 1 and 2 above); *n_tokens 0 if nothing can run. */
static void build_batch(vkllm_scheduler *s, uint32_t *n_tokens, uint32_t *n_take)
{
    kv_pages *kv = s->ctx->pages;
    uint32_t budget = s->params.token_budget;
    uint32_t reserved = 0; /* pages the requests already in the batch will map */
    *n_tokens = *n_take = 0;
    for (uint32_t i = 0; i < s->n_reqs && *n_tokens < budget; i++) {
        request *r = s->reqs[i];
        if (r->slot < 0) {
            /* Admission, in arrival order: a request never overtakes an earlier one. */
            uint32_t slot = 0;
            while (slot < s->params.n_seq_max && s->slots[slot]) slot++;
            if (slot == s->params.n_seq_max) break;
            r->slot = (int32_t)slot;
            s->slots[slot] = r;
            if (s->params.prefix_cache) map_cached_prefix(s, r);
            uint32_t pending = r->n_tokens - r->n_cached, left = budget - *n_tokens;
            uint32_t take = pending < left ? pending : left;
            if (pages_needed(s, r, r->n_cached + take) + reserved > kv_pages_available(kv)) {
                release_slot(s, r);
                break;
            }
            reserved += pages_needed(s, r, r->n_cached + take);
            if (s->params.prefix_cache) count_prefix(s, r);
            s->stats.n_waiting--;
            s->stats.n_running++;
            add_to_batch(s, r, take, n_tokens, n_take);
            continue;
        }
        uint32_t pending = r->n_tokens - r->n_cached, left = budget - *n_tokens;
        uint32_t take = pending < left ? pending : left;
        /* Pages for r: preempt the newest running requests after it, else r waits itself. */
        uint32_t need = pages_needed(s, r, r->n_cached + take);
        while (need + reserved > kv_pages_available(kv)) {
            request *victim = NULL;
            for (uint32_t j = s->n_reqs; j-- > i + 1;)
                if (s->reqs[j]->slot >= 0) {
                    victim = s->reqs[j];
                    break;
                }
            if (!victim) break;
            preempt(s, victim);
        }
        if (need + reserved > kv_pages_available(kv)) {
            /* Alone (nobody older runs, nobody newer is left to preempt), the whole pool cannot hold it: it ends
             * here with its text, rather than being recomputed to the same point forever. */
            if (*n_take == 0) r->finish = VKLLM_FINISH_LENGTH;
            else preempt(s, r);
            break;
        }
        reserved += need;
        add_to_batch(s, r, take, n_tokens, n_take);
    }
}

/* The greedy token of a logits row (the lowest index of the highest value, as the GPU's argmax). */
static vkllm_token argmax_row(const float *logits, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return (vkllm_token)best;
}

/* The sampled token's log-probability under the row's logits, and the n most likely tokens with theirs (most
 * likely first, ties by the lower id).  Log-softmax in double: the sum over a large vocabulary keeps its digits. */
static void row_logprobs(const float *logits, uint32_t n_vocab, vkllm_token token, uint32_t n, vkllm_token *top,
                         float *top_lp, float *token_lp)
{
    float max = logits[0];
    for (uint32_t i = 1; i < n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0;
    for (uint32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - max);
    const double log_z = max + log(sum);
    *token_lp = (float)(logits[token] - log_z);
    uint32_t have = 0; /* top[0, have) sorted by descending logit */
    for (uint32_t i = 0; i < n_vocab && n; i++) {
        if (have == n && logits[i] <= logits[top[n - 1]]) continue;
        uint32_t at = have < n ? have++ : n - 1;
        while (at > 0 && logits[i] > logits[top[at - 1]]) {
            top[at] = top[at - 1];
            at--;
        }
        top[at] = (vkllm_token)i;
    }
    for (uint32_t k = 0; k < have; k++) top_lp[k] = (float)(logits[top[k]] - log_z);
}

vkllm_status vkllm_scheduler_step(vkllm_scheduler *s, const vkllm_step_output **outputs, size_t *n_outputs)
{
    if (!s || !outputs || !n_outputs) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_scheduler_step: NULL");
    *outputs = s->outputs;
    *n_outputs = 0;
    s->n_outputs = 0;
    for (uint32_t i = 0; i < s->n_finished; i++) request_free(s->finished[i]);
    s->n_finished = 0;
    if (!s->n_reqs) return VKLLM_OK;

    uint32_t n_tokens, n_take;
    build_batch(s, &n_tokens, &n_take);
    /* A request too long for the whole pool ends here (reported with what it had). */
    for (uint32_t i = 0; i < s->n_reqs; i++)
        if (s->reqs[i]->finish) {
            request *r = s->reqs[i];
            vkllm_step_output *o = new_output(s, r);
            o->finish = r->finish;
            o->n_generated = r->n_generated;
            finish(s, r);
            i--;
        }
    if (!n_tokens) {
        *n_outputs = s->n_outputs;
        return VKLLM_OK;
    }
    uint32_t n_want = 0;
    bool all_greedy = true;
    for (uint32_t i = 0; i < n_take; i++) {
        request *r = s->b_take_req[i];
        if (r->n_cached + s->b_take[i] == r->n_tokens) {
            n_want++;
            if (r->smp || r->logprobs) all_greedy = false;
        }
    }
    vkllm_batch batch = {n_tokens, s->b_tokens, s->b_pos, s->b_seq, s->b_want};
    vkllm_status st = context_decode(s->ctx, &batch, n_want && all_greedy, s->b_out);
    if (st != VKLLM_OK) {
        /* The pages the batch mapped stay with their requests; their state is unchanged, so a step may retry. */
        return vkllm_fail_context(st, "scheduler step of %u tokens for %u requests", n_tokens, n_take);
    }
    s->stats.n_steps++;
    uint32_t row = 0;
    for (uint32_t i = 0; i < n_take; i++) {
        request *r = s->b_take_req[i];
        bool sample = r->n_cached + s->b_take[i] == r->n_tokens;
        if (r->n_cached < r->n_prompt) {
            uint32_t end = r->n_cached + s->b_take[i];
            s->stats.prompt_tokens += (end < r->n_prompt ? end : r->n_prompt) - r->n_cached;
        }
        r->n_cached += s->b_take[i];
        if (s->params.prefix_cache) hash_full_pages(s, r);
        if (!sample) continue;
        vkllm_token token;
        const uint32_t n_vocab = s->model->cfg.n_vocab;
        const float *logits = all_greedy ? NULL : vkllm_get_logits(s->ctx, row);
        if (all_greedy) token = s->b_out[row];
        else if (!r->smp) token = argmax_row(logits, n_vocab);
        else VKLLM_TRY(sampler_sample(r->smp, logits, &token));
        vkllm_token *top = s->top_tokens + (size_t)row * VKLLM_MAX_TOP_LOGPROBS;
        float *top_lp = s->top_logprobs + (size_t)row * VKLLM_MAX_TOP_LOGPROBS, token_lp = 0;
        if (r->logprobs) row_logprobs(logits, n_vocab, token, r->top_logprobs, top, top_lp, &token_lp);
        row++;
        const char *text;
        size_t len;
        VKLLM_TRY(request_accept(r, s->model, token, s->params.n_ctx, &text, &len));
        s->stats.generated_tokens++;
        vkllm_step_output *o = new_output(s, r);
        o->token = token;
        o->text = text;
        o->text_len = len;
        o->finish = r->finish;
        o->n_generated = r->n_generated;
        if (r->logprobs) {
            o->logprob = token_lp;
            o->n_top = r->top_logprobs < n_vocab ? r->top_logprobs : n_vocab;
            o->top_tokens = top;
            o->top_logprobs = top_lp;
        }
        if (r->finish) finish(s, r);
    }
    *n_outputs = s->n_outputs;
    return VKLLM_OK;
}

void vkllm_scheduler_get_stats(const vkllm_scheduler *s, vkllm_scheduler_stats *out)
{
    if (!s || !out) return;
    *out = s->stats;
    const kv_pages *kv = s->ctx->pages;
    out->kv_pages_total = kv->n_usable;
    out->kv_pages_cached = kv->n_cached;
    out->kv_pages_used = kv->n_usable - kv_pages_available(kv);
}
