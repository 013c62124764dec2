/* vkllm bench --parallel N: the scheduler's aggregate decode rate with N requests running at once against one
 * request alone, in alternated rounds on the same model.  It measures the library without HTTP or a client
 * (bench/serve_load.py measures the server), so the ratio is what continuous batching itself wins. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "cli.h"
#include "options.h"
#include "replicas.h"

static const char *const openings[] = {
    "Once upon a time", "Lily and Tom", "The cat", "One day, a little boy named Tim went to the park",
    "The sun was", "Sue had a red ball", "Max", "In the forest there lived a big bear",
};
#define N_OPENINGS (sizeof openings / sizeof openings[0])

typedef struct round_result {
    double decode_tps;  /* tokens sampled after the first step, per second of those steps */
    double mean_batch;  /* tokens per decode step (of each replica) */
} round_result;

/* Replicas on threads start their timed steps together: each says it is ready (prompts prefilled), the round
 * opens the gate once all are (or aborts them if a thread could not be started). */
typedef struct start_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t ready;
    bool open, abort;
} start_gate;

static bool gate_pass(start_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->ready++;
    pthread_cond_broadcast(&g->cond);
    while (!g->open) pthread_cond_wait(&g->cond, &g->lock);
    bool go = !g->abort;
    pthread_mutex_unlock(&g->lock);
    return go;
}

static void gate_open(start_gate *g, uint32_t wait_for, bool abort)
{
    pthread_mutex_lock(&g->lock);
    while (!abort && g->ready < wait_for) pthread_cond_wait(&g->cond, &g->lock);
    g->open = true;
    g->abort = abort;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* One replica's part of a round: its scheduler, the requests i, i + stride, ... of the round's n, and what its
 * timed steps produced. */
typedef struct replica_round {
    vkllm_model *m;
    const vkllm_scheduler_params *sp;
    uint32_t first, stride, n, n_gen;
    struct start_gate *gate;  /* NULL: one replica, in the caller's thread */
    vkllm_status st;
    char error[512];          /* the failure's message: vkllm_last_error is the thread's own */
    uint64_t tokens, steps;
    double started_ms, ended_ms; /* the timed steps' span */
} replica_round;

/* Submits the replica's greedy requests, runs the first step (it prefills every prompt, which fits the token budget,
 * and samples their first tokens), waits for the other replicas to be there too, then steps until every request
 * has finished: those steps are timed. */
static void *replica_main(void *arg)
{
    replica_round *r = arg;
    vkllm_scheduler *s = NULL;
    vkllm_status st = vkllm_scheduler_create(r->m, r->sp, &s);
    vkllm_request_params rp = vkllm_request_default_params();
    rp.sampling.temperature = 0;
    rp.max_tokens = r->n_gen;
    for (uint32_t i = r->first; i < r->n && st == VKLLM_OK; i += r->stride) {
        vkllm_token prompt[64];
        size_t n_prompt = 0;
        const char *text = openings[i % N_OPENINGS];
        uint64_t id;
        st = vkllm_tokenize(r->m, text, strlen(text), 1, 0, prompt, 64, &n_prompt);
        if (st == VKLLM_OK) st = vkllm_scheduler_submit(s, prompt, n_prompt, &rp, &id);
    }
    const vkllm_step_output *outputs;
    size_t n_out = 0;
    if (st == VKLLM_OK) st = vkllm_scheduler_step(s, &outputs, &n_out);
    if (r->gate && !gate_pass(r->gate) && st == VKLLM_OK) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    r->started_ms = vkllm_log_clock_ms();
    while (st == VKLLM_OK) {
        vkllm_scheduler_stats stats;
        vkllm_scheduler_get_stats(s, &stats);
        if (!stats.n_running && !stats.n_waiting) break;
        st = vkllm_scheduler_step(s, &outputs, &n_out);
        for (size_t i = 0; st == VKLLM_OK && i < n_out; i++) r->tokens += outputs[i].token >= 0;
        r->steps++;
    }
    r->ended_ms = vkllm_log_clock_ms();
    r->st = st;
    if (st != VKLLM_OK) snprintf(r->error, sizeof r->error, "%s", vkllm_last_error());
    vkllm_scheduler_free(s);
    return NULL;
}

/* One round: n requests of n_gen tokens at once, shared by the first min(n, n_reps) replicas (one thread each,
 * started together once each has prefilled its prompts); the rate is every replica's tokens over the time from the
 * common start to the last one's end. */
static vkllm_status run_round(vkllm_model *const *models, uint32_t n_reps, const vkllm_scheduler_params *sp,
                              uint32_t n, uint32_t n_gen, round_result *out)
{
    replica_round r[CLI_MAX_REPLICAS];
    pthread_t threads[CLI_MAX_REPLICAS];
    start_gate gate = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    if (n_reps > n) n_reps = n;
    uint32_t started = 0;
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0; i < n_reps; i++)
        r[i] = (replica_round){.m = models[i], .sp = sp, .first = i, .stride = n_reps, .n = n, .n_gen = n_gen,
                               .gate = n_reps > 1 ? &gate : NULL};
    if (n_reps == 1) {
        replica_main(&r[0]);
        started = 1;
    } else {
        for (; started < n_reps; started++)
            if (pthread_create(&threads[started], NULL, replica_main, &r[started]) != 0) break;
        if (started < n_reps) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "starting replica %u's thread", started);
        gate_open(&gate, started, started < n_reps);
        for (uint32_t i = 0; i < started; i++) pthread_join(threads[i], NULL);
    }
    pthread_mutex_destroy(&gate.lock);
    pthread_cond_destroy(&gate.cond);
    double begin = 0, end = 0, steps_mean = 0;
    uint64_t tokens = 0;
    for (uint32_t i = 0; i < started; i++) {
        if (st == VKLLM_OK && r[i].st != VKLLM_OK) st = vkllm_fail(r[i].st, "replica %u: %s", i, r[i].error);
        if (i == 0 || r[i].started_ms < begin) begin = r[i].started_ms;
        if (r[i].ended_ms > end) end = r[i].ended_ms;
        tokens += r[i].tokens;
        steps_mean += r[i].steps ? (double)r[i].tokens / (double)r[i].steps / started : 0;
    }
    const double ms = end - begin;
    out->decode_tps = ms > 0 ? 1e3 * (double)tokens / ms : 0;
    out->mean_batch = steps_mean;
    return st;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cli_bench_parallel(const cli_bench_options *a, vkllm_model *const *models)
{
    const uint32_t n_reps = a->replicas ? a->replicas : 1;
    const uint32_t n_gen = a->n_gen ? a->n_gen : 64, levels[2] = {1, a->parallel};
    vkllm_scheduler_params sp = vkllm_scheduler_default_params();
    sp.n_seq_max = (a->parallel + n_reps - 1) / n_reps;
    sp.n_ctx = 64 + n_gen;
    sp.type_k = a->type_k;
    sp.type_v = a->type_v;
    sp.rotate_k = !a->kv_no_rotate;
    sp.center_k = !a->kv_no_center;
    double *tps = calloc(2 * (size_t)a->reps, sizeof *tps), batch[2] = {0, 0};
    vkllm_status st = tps ? VKLLM_OK : VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    round_result r;
    for (int l = 0; l < 2 && st == VKLLM_OK; l++) st = run_round(models, n_reps, &sp, levels[l], n_gen, &r); /* warm-up */
    if (a->profile) cli_bench_print_profile(models[0], NULL); /* drops the warm-up's timings */
    for (uint32_t rep = 0; rep < a->reps && st == VKLLM_OK; rep++)
        for (int k = 0; k < 2 && st == VKLLM_OK; k++) {
            int l = rep % 2 ? 1 - k : k; /* alternate which level goes first */
            st = run_round(models, n_reps, &sp, levels[l], n_gen, &r);
            if (a->profile && rep + 1 == a->reps)
                cli_bench_print_profile(models[0], l ? "the last round of the parallel requests" : "the last single request");
            tps[l * a->reps + rep] = r.decode_tps;
            batch[l] += r.mean_batch / a->reps;
        }
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm bench: --parallel: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        free(tps);
        return 1;
    }
    double median[2];
    for (int l = 0; l < 2; l++) {
        qsort(tps + l * a->reps, a->reps, sizeof *tps, by_value);
        const double *v = tps + l * a->reps;
        median[l] = a->reps % 2 ? v[a->reps / 2] : 0.5 * (v[a->reps / 2 - 1] + v[a->reps / 2]);
    }
    if (a->json) {
        printf("{\"parallel\": %u, \"tg\": %u, \"single_tps\": %.2f, \"parallel_tps\": %.2f, \"ratio\": %.3f, "
               "\"mean_batch\": %.2f, \"reps\": %u, \"replicas\": %u}\n",
               a->parallel, n_gen, median[0], median[1], median[0] > 0 ? median[1] / median[0] : 0, batch[1], a->reps,
               n_reps);
    } else {
        printf("scheduler, greedy, %u tokens per request (median of %u alternated rounds):\n", n_gen, a->reps);
        printf("  1 request         %9.1f tokens/s\n", median[0]);
        printf("  %-3u requests      %9.1f tokens/s  (%.2fx; %.1f tokens per step", a->parallel, median[1],
               median[0] > 0 ? median[1] / median[0] : 0, batch[1]);
        if (n_reps > 1) printf(" in each of %u replicas", n_reps);
        printf(")\n");
    }
    free(tps);
    return 0;
}
