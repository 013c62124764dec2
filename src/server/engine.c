/* The engine's threads, one per replica of the model: each takes the jobs routed to it (route), tokenizes and
 * submits them to its scheduler, runs its steps, and hands each job its text. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prefix hashes of the requests a replica took, most recent last (a ring): what its prefix cache likely holds. */
#define REPLICA_SEEN 256

/* One copy of the model with its own scheduler and thread (engine_start: one per model it is given). */
typedef struct replica {
    struct engine *e;
    vkllm_model *model;
    vkllm_scheduler *sched;
    pthread_t thread;
    bool started;
    job *active;                    /* in this replica's scheduler */
    uint32_t n_active;
    vkllm_scheduler_stats stats;    /* as of its last step */
    uint64_t seen[REPLICA_SEEN];    /* prefix hashes of the requests it took (job.prefix_hash) */
    uint32_t n_seen;                /* hashes ever added; the ring holds the last REPLICA_SEEN */
} replica;

struct engine {
    replica *reps;
    uint32_t n_reps;
    char *chat_template;
    uint32_t max_waiting;
    pthread_mutex_t lock;
    pthread_cond_t wake;     /* the replicas: new jobs, cancellations, stop */
    pthread_cond_t progress; /* the HTTP threads: new text */
    job *pending;            /* submitted, not yet in a scheduler */
    uint32_t n_pending;
    bool stopping;
    double cancel_after;     /* stopping: cancel what still runs after this time */
    engine_metrics metrics;  /* its sched part is summed over the replicas by engine_get_metrics */
};

double engine_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void unref(job *j)
{
    if (--j->refs == 0) job_free(j);
}

static void fail_job(engine *e, job *j, vkllm_status st, const char *message)
{
    j->error = st;
    snprintf(j->error_message, sizeof j->error_message, "%s", message);
    j->done = true;
    e->metrics.requests_failed++;
}

static void append(job *j, const char *text, size_t n)
{
    if (j->text_len + n + 1 > j->text_cap) {
        size_t cap = j->text_cap ? j->text_cap : 256;
        while (cap < j->text_len + n + 1) cap *= 2;
        char *t = realloc(j->text, cap);
        if (!t) return; /* the text stays short; the request still ends */
        j->text = t;
        j->text_cap = cap;
    }
    memcpy(j->text + j->text_len, text, n);
    j->text_len += n;
    j->text[j->text_len] = '\0';
}

static char *piece_of(const vkllm_model *model, vkllm_token token)
{
    char piece[256];
    size_t n = 0;
    if (vkllm_token_to_piece(model, token, piece, sizeof piece - 1, &n) != VKLLM_OK) n = 0;
    piece[n] = '\0';
    return strdup(piece);
}

/* Records a generated token's log-probabilities (the end-of-generation token is not part of the text). */
static void append_logprob(const vkllm_model *model, job *j, const vkllm_step_output *out)
{
    if (vkllm_token_is_eog(model, out->token)) return;
    if (j->n_lp == j->cap_lp) {
        size_t cap = j->cap_lp ? 2 * j->cap_lp : 64;
        job_logprob *lp = realloc(j->lp, cap * sizeof *lp);
        if (!lp) return; /* the log-probabilities stay short; the request still ends */
        j->lp = lp;
        j->cap_lp = cap;
    }
    job_logprob *l = &j->lp[j->n_lp];
    *l = (job_logprob){.piece = piece_of(model, out->token), .text_offset = j->lp_text_len, .logprob = out->logprob};
    if (!l->piece) return;
    for (uint32_t k = 0; k < out->n_top && k < VKLLM_MAX_TOP_LOGPROBS; k++) {
        if (!(l->top_piece[k] = piece_of(model, out->top_tokens[k]))) break;
        l->top_logprob[k] = out->top_logprobs[k];
        l->n_top = k + 1;
    }
    j->lp_text_len += strlen(l->piece);
    j->n_lp++;
}

/* Tokenizes (and formats) a pending job and submits it; on failure the job is done with the reason. */
static void admit(replica *r, job *j)
{
    engine *e = r->e;
    char *formatted = NULL;
    const char *text = j->prompt;
    vkllm_status st = VKLLM_OK;
    if (j->chat) {
        st = vkllm_chat_format(r->model, e->chat_template, j->messages, j->n_messages, 1, &formatted);
        text = formatted;
    }
    size_t n = 0, len = text ? strlen(text) : 0;
    vkllm_token *tokens = NULL;
    if (st == VKLLM_OK) {
        /* Chat templates spell their control tokens out: parse them. */
        st = vkllm_tokenize(r->model, text, len, 1, j->chat, NULL, 0, &n);
        if (st == VKLLM_ERROR_BUFFER_TOO_SMALL || st == VKLLM_OK) {
            tokens = malloc((n ? n : 1) * sizeof *tokens);
            st = tokens ? vkllm_tokenize(r->model, text, len, 1, j->chat, tokens, n, &n) : VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        }
    }
    j->n_prompt = (uint32_t)n;
    if (st == VKLLM_OK) st = vkllm_scheduler_submit(r->sched, tokens, n, &j->params, &j->id);
    if (st != VKLLM_OK) {
        fail_job(e, j, st, vkllm_last_error());
        unref(j);
    } else {
        j->next = r->active;
        r->active = j;
        r->n_active++;
    }
    free(tokens);
    vkllm_free(formatted);
}

const double engine_ttft_bounds[ENGINE_HISTOGRAM_BUCKETS - 1] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
const double engine_itl_bounds[ENGINE_HISTOGRAM_BUCKETS - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5};

static void observe(engine_histogram *h, const double *bounds, double t)
{
    h->sum += t;
    h->count++;
    int b = 0;
    while (b < ENGINE_HISTOGRAM_BUCKETS - 1 && t > bounds[b]) b++;
    h->buckets[b]++;
}

/* A replica's active jobs: drops the cancelled and the done ones from its list. */
static void sweep(replica *r)
{
    for (job **p = &r->active; *p;) {
        job *j = *p;
        if (j->cancel && !j->done) {
            vkllm_scheduler_cancel(r->sched, j->id);
            j->done = true;
            r->e->metrics.requests_cancelled++;
        }
        if (j->done) {
            *p = j->next;
            r->n_active--;
            unref(j);
        } else {
            p = &j->next;
        }
    }
}

static void deliver(replica *r, const vkllm_step_output *out, size_t n)
{
    engine *e = r->e;
    for (size_t i = 0; i < n; i++)
        for (job *j = r->active; j; j = j->next) {
            if (j->id != out[i].id) continue;
            if (out[i].token >= 0) {
                double now = engine_now();
                if (!j->first_token) {
                    j->first_token = now;
                    observe(&e->metrics.ttft, engine_ttft_bounds, now - j->submitted);
                } else {
                    observe(&e->metrics.itl, engine_itl_bounds, now - j->last_token);
                }
                j->last_token = now;
            }
            if (out[i].text_len) append(j, out[i].text, out[i].text_len);
            if (j->params.logprobs && out[i].token >= 0) append_logprob(r->model, j, &out[i]);
            j->n_generated = out[i].n_generated;
            j->n_cached_prompt = out[i].n_cached_prompt;
            if (out[i].finish) {
                j->finish = out[i].finish;
                j->done = true;
            }
            break;
        }
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* FNV-1a over a part of a request's text and its terminating NUL (which separates the parts), keeping the hash at
 * each whole block of ENGINE_PREFIX_BYTES bytes. */
static void hash_part(job *j, uint64_t *h, size_t *at, const char *text)
{
    for (const char *c = text ? text : ""; j->n_prefix_hash < ENGINE_PREFIX_BLOCKS; c++) {
        *h = (*h ^ (uint8_t)*c) * FNV_PRIME;
        if (++*at % ENGINE_PREFIX_BYTES == 0) j->prefix_hash[j->n_prefix_hash++] = *h;
        if (!*c) break;
    }
}

/* The request's text (a completion's prompt; a chat's roles and contents) hashed at every whole block, for routing
 * among replicas: equal hashes at block k mean equal text up to it. */
static void hash_prefix(job *j)
{
    uint64_t h = FNV_OFFSET;
    size_t at = 0;
    j->n_prefix_hash = 0;
    if (!j->chat) hash_part(j, &h, &at, j->prompt);
    for (size_t i = 0; j->chat && i < j->n_messages; i++) {
        hash_part(j, &h, &at, j->messages[i].role);
        hash_part(j, &h, &at, j->messages[i].content);
    }
}

/* Whole blocks of the job's text at the start of a request replica r took earlier (0: none). */
static uint32_t blocks_seen(const replica *r, const job *j)
{
    const uint32_t n = r->n_seen < REPLICA_SEEN ? r->n_seen : REPLICA_SEEN;
    for (uint32_t k = j->n_prefix_hash; k > 0; k--)
        for (uint32_t i = 0; i < n; i++)
            if (r->seen[i] == j->prefix_hash[k - 1]) return k;
    return 0;
}

static void remember(replica *r, const job *j)
{
    for (uint32_t k = 0; k < j->n_prefix_hash; k++) r->seen[r->n_seen++ % REPLICA_SEEN] = j->prefix_hash[k];
}

/* The replica the job goes to: of those holding at most one request more than the least loaded, the one that took
 * the longest prefix of its text before (its prefix cache likely holds it), then the least loaded, then the first;
 * so a conversation's turns and requests sharing a system prompt meet their cached pages, and requests one after
 * another go to the same replica. */
static const replica *route(const engine *e, const job *j)
{
    uint32_t least = UINT32_MAX;
    for (const replica *o = e->reps; o < e->reps + e->n_reps; o++)
        if (o->n_active < least) least = o->n_active;
    const replica *best = NULL;
    uint32_t best_seen = 0;
    for (const replica *o = e->reps; o < e->reps + e->n_reps; o++) {
        if (o->n_active > least + 1) continue;
        const uint32_t seen = e->n_reps > 1 ? blocks_seen(o, j) : 0;
        if (!best || seen > best_seen || (seen == best_seen && o->n_active < best->n_active)) {
            best = o;
            best_seen = seen;
        }
    }
    return best;
}

/* A replica's thread: takes the pending jobs routed to it, steps its scheduler while it holds any. */
static void *run(void *arg)
{
    replica *r = arg;
    engine *e = r->e;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        sweep(r); /* jobs that finished in the last step leave before route counts the replica's load */
        while (e->pending && route(e, e->pending) == r) {
            job *j = e->pending;
            e->pending = j->next;
            e->n_pending--;
            if (j->cancel) {
                j->done = true;
                unref(j);
            } else {
                remember(r, j);
                admit(r, j);
            }
        }
        /* The rest may be routed to another replica; and once stopping, an idle replica waiting for a job that went
         * elsewhere must see the queue empty to end. */
        if (e->pending || e->stopping) pthread_cond_broadcast(&e->wake);
        if (e->stopping && r->active && engine_now() > e->cancel_after)
            for (job *j = r->active; j; j = j->next) j->cancel = true;
        sweep(r);
        vkllm_scheduler_get_stats(r->sched, &r->stats);
        pthread_cond_broadcast(&e->progress);
        if (!r->active) {
            if (e->stopping && !e->pending) break;
            pthread_cond_wait(&e->wake, &e->lock);
            continue;
        }
        pthread_mutex_unlock(&e->lock);
        const vkllm_step_output *out;
        size_t n = 0;
        vkllm_status st = vkllm_scheduler_step(r->sched, &out, &n);
        const char *message = st == VKLLM_OK ? "" : vkllm_last_error();
        pthread_mutex_lock(&e->lock);
        if (st != VKLLM_OK) {
            /* A failed forward pass fails every request of the replica rather than the server. */
            fprintf(stderr, "vkllm serve: %s: %s\n", vkllm_status_name(st), message);
            for (job *j = r->active; j; j = j->next) {
                vkllm_scheduler_cancel(r->sched, j->id);
                fail_job(e, j, st, message);
            }
            continue;
        }
        deliver(r, out, n);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

static void engine_destroy(engine *e)
{
    for (uint32_t i = 0; i < e->n_reps; i++) vkllm_scheduler_free(e->reps[i].sched);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    pthread_cond_destroy(&e->progress);
    free(e->reps);
    free(e->chat_template);
    free(e);
}

vkllm_status engine_start(vkllm_model *const *models, uint32_t n_models, const vkllm_scheduler_params *params,
                          const char *chat_template, uint32_t max_waiting, engine **out)
{
    *out = NULL;
    engine *e = calloc(1, sizeof *e);
    if (!e) return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->progress, NULL);
    e->max_waiting = max_waiting;
    e->reps = calloc(n_models ? n_models : 1, sizeof *e->reps);
    e->chat_template = chat_template ? strdup(chat_template) : NULL;
    if (!e->reps || (chat_template && !e->chat_template)) {
        engine_destroy(e);
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; i < n_models && st == VKLLM_OK; i++) {
        e->reps[i] = (replica){.e = e, .model = models[i]};
        e->n_reps = i + 1;
        st = vkllm_scheduler_create(models[i], params, &e->reps[i].sched);
    }
    for (uint32_t i = 0; i < e->n_reps && st == VKLLM_OK; i++) {
        if (pthread_create(&e->reps[i].thread, NULL, run, &e->reps[i]) != 0) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
        else e->reps[i].started = true;
    }
    if (st != VKLLM_OK) {
        engine_stop(e, 0);
        engine_destroy(e);
        return st;
    }
    *out = e;
    return VKLLM_OK;
}

void engine_stop(engine *e, double grace_s)
{
    if (!e) return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    e->cancel_after = engine_now() + grace_s;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    for (uint32_t i = 0; i < e->n_reps; i++)
        if (e->reps[i].started) {
            pthread_join(e->reps[i].thread, NULL);
            e->reps[i].started = false;
        }
}

void engine_free(engine *e)
{
    if (e) engine_destroy(e);
}

vkllm_status engine_submit(engine *e, job *j)
{
    hash_prefix(j); /* the job is the caller's alone until it is queued: no need to hold the lock */
    pthread_mutex_lock(&e->lock);
    vkllm_status st = VKLLM_OK;
    if (e->stopping) st = VKLLM_ERROR_UNSUPPORTED;
    uint32_t waiting = e->n_pending;
    for (uint32_t i = 0; i < e->n_reps; i++) waiting += e->reps[i].stats.n_waiting;
    if (st == VKLLM_OK && e->max_waiting && waiting >= e->max_waiting) st = VKLLM_ERROR_BUFFER_TOO_SMALL;
    if (st == VKLLM_OK) {
        j->refs++;
        j->submitted = engine_now();
        job **tail = &e->pending;
        while (*tail) tail = &(*tail)->next;
        *tail = j;
        e->n_pending++;
        e->metrics.requests_total++;
        pthread_cond_broadcast(&e->wake); /* the replica it goes to may be any of those waiting */
    }
    pthread_mutex_unlock(&e->lock);
    return st;
}

void engine_lock(engine *e) { pthread_mutex_lock(&e->lock); }
void engine_unlock(engine *e) { pthread_mutex_unlock(&e->lock); }

void engine_wait(engine *e, job *j, size_t have, size_t have_lp, double timeout_s)
{
    double until = engine_now() + timeout_s;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double wall = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + timeout_s;
    ts.tv_sec = (time_t)wall;
    ts.tv_nsec = (long)((wall - (double)ts.tv_sec) * 1e9);
    while (!j->done && j->text_len <= have && j->n_lp <= have_lp && engine_now() < until)
        if (pthread_cond_timedwait(&e->progress, &e->lock, &ts) != 0) break;
}

void engine_release(engine *e, job *j)
{
    pthread_mutex_lock(&e->lock);
    if (!j->done) {
        j->cancel = true;
        pthread_cond_signal(&e->wake);
    }
    unref(j);
    pthread_mutex_unlock(&e->lock);
}

void engine_get_metrics(engine *e, engine_metrics *m)
{
    pthread_mutex_lock(&e->lock);
    *m = e->metrics;
    m->replicas = e->n_reps;
    m->sched = (vkllm_scheduler_stats){0};
    for (uint32_t i = 0; i < e->n_reps; i++) {
        const vkllm_scheduler_stats *r = &e->reps[i].stats;
        vkllm_scheduler_stats *t = &m->sched;
        t->n_running += r->n_running;
        t->n_waiting += r->n_waiting;
        t->kv_pages_used += r->kv_pages_used;
        t->kv_pages_cached += r->kv_pages_cached;
        t->kv_pages_total += r->kv_pages_total;
        t->n_steps += r->n_steps;
        t->n_preemptions += r->n_preemptions;
        t->prompt_tokens += r->prompt_tokens;
        t->generated_tokens += r->generated_tokens;
        t->prefix_queried_tokens += r->prefix_queried_tokens;
        t->prefix_hit_tokens += r->prefix_hit_tokens;
    }
    pthread_mutex_unlock(&e->lock);
}

bool engine_stopping(engine *e)
{
    pthread_mutex_lock(&e->lock);
    bool s = e->stopping;
    pthread_mutex_unlock(&e->lock);
    return s;
}
