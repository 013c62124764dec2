/* vkllm bench --parallel N: the scheduler's aggregate decode rate with N requests running at once against one
 * request alone, in alternated rounds on the same model.  It measures the library without HTTP or a client
 * (bench/serve_load.py measures the server), so the ratio is what continuous batching itself wins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "cli.h"
#include "options.h"

static const char *const openings[] = {
    "Once upon a time", "Lily and Tom", "The cat", "One day, a little boy named Tim went to the park",
    "The sun was", "Sue had a red ball", "Max", "In the forest there lived a big bear",
};
#define N_OPENINGS (sizeof openings / sizeof openings[0])

typedef struct round_result {
    double decode_tps;  /* tokens sampled after the first step, per second of those steps */
    double mean_batch;  /* tokens per decode step */
} round_result;

/* One round: n greedy requests of n_gen tokens submitted at once; the first step prefills every prompt (they
 * fit the token budget) and samples their first tokens, the steps after it are timed. */
static vkllm_status run_round(vkllm_model *m, const vkllm_scheduler_params *sp, uint32_t n, uint32_t n_gen,
                              round_result *out)
{
    vkllm_scheduler *s = NULL;
    vkllm_status st = vkllm_scheduler_create(m, sp, &s);
    vkllm_request_params rp = vkllm_request_default_params();
    rp.sampling.temperature = 0;
    rp.max_tokens = n_gen;
    for (uint32_t i = 0; i < n && st == VKLLM_OK; i++) {
        vkllm_token prompt[64];
        size_t n_prompt = 0;
        const char *text = openings[i % N_OPENINGS];
        uint64_t id;
        st = vkllm_tokenize(m, text, strlen(text), 1, 0, prompt, 64, &n_prompt);
        if (st == VKLLM_OK) st = vkllm_scheduler_submit(s, prompt, n_prompt, &rp, &id);
    }
    const vkllm_step_output *outputs;
    size_t n_out = 0;
    if (st == VKLLM_OK) st = vkllm_scheduler_step(s, &outputs, &n_out);
    uint64_t tokens = 0, steps = 0;
    double started = vkllm_log_clock_ms();
    while (st == VKLLM_OK) {
        vkllm_scheduler_stats stats;
        vkllm_scheduler_get_stats(s, &stats);
        if (!stats.n_running && !stats.n_waiting) break;
        st = vkllm_scheduler_step(s, &outputs, &n_out);
        for (size_t i = 0; st == VKLLM_OK && i < n_out; i++) tokens += outputs[i].token >= 0;
        steps++;
    }
    double ms = vkllm_log_clock_ms() - started;
    out->decode_tps = ms > 0 ? 1e3 * (double)tokens / ms : 0;
    out->mean_batch = steps ? (double)tokens / (double)steps : 0;
    vkllm_scheduler_free(s);
    return st;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cli_bench_parallel(const cli_bench_options *a, vkllm_model *m)
{
    const uint32_t n_gen = a->n_gen ? a->n_gen : 64, levels[2] = {1, a->parallel};
    vkllm_scheduler_params sp = vkllm_scheduler_default_params();
    sp.n_seq_max = a->parallel;
    sp.n_ctx = 64 + n_gen;
    sp.type_k = a->type_k;
    sp.type_v = a->type_v;
    sp.rotate_k = !a->kv_no_rotate;
    sp.center_k = !a->kv_no_center;
    double *tps = calloc(2 * (size_t)a->reps, sizeof *tps), batch[2] = {0, 0};
    vkllm_status st = tps ? VKLLM_OK : VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    round_result r;
    for (int l = 0; l < 2 && st == VKLLM_OK; l++) st = run_round(m, &sp, levels[l], n_gen, &r); /* warm-up */
    if (a->profile) cli_bench_print_profile(m, NULL); /* drops the warm-up's timings */
    for (uint32_t rep = 0; rep < a->reps && st == VKLLM_OK; rep++)
        for (int k = 0; k < 2 && st == VKLLM_OK; k++) {
            int l = rep % 2 ? 1 - k : k; /* alternate which level goes first */
            st = run_round(m, &sp, levels[l], n_gen, &r);
            if (a->profile && rep + 1 == a->reps)
                cli_bench_print_profile(m, l ? "the last round of the parallel requests" : "the last single request");
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
               "\"mean_batch\": %.2f, \"reps\": %u}\n",
               a->parallel, n_gen, median[0], median[1], median[0] > 0 ? median[1] / median[0] : 0, batch[1], a->reps);
    } else {
        printf("scheduler, greedy, %u tokens per request (median of %u alternated rounds):\n", n_gen, a->reps);
        printf("  1 request         %9.1f tokens/s\n", median[0]);
        printf("  %-3u requests      %9.1f tokens/s  (%.2fx; %.1f tokens per step)\n", a->parallel, median[1],
               median[0] > 0 ? median[1] / median[0] : 0, batch[1]);
    }
    free(tps);
    return 0;
}
