/* vkllm bench: prompt processing and generation speed the way llama-bench measures them (pp: one batch of
 * p prompt tokens; tg: n single-token steps from an empty cache), median and spread of r runs after a
 * warm-up; peak device memory; time to first token from a cold start and with a warm pipeline cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/log.h"
#include "tools/bench_prompt.h"
#include "cli.h"
#include "options.h"
#include "model/model.h"
#include "replicas.h"
#include "vkllm.h"

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and half the spread between min and max of tokens/s over reps runs. */
typedef struct rate {
    double median, spread;
} rate;

static rate summarize(double *tps, uint32_t n)
{
    qsort(tps, n, sizeof *tps, by_value);
    double median = n % 2 ? tps[n / 2] : 0.5 * (tps[n / 2 - 1] + tps[n / 2]);
    return (rate){median, 0.5 * (tps[n - 1] - tps[0])};
}

/* One pp run: the whole prompt in one batch, logits of the last token.  *held: how many of tokens[] sequence 0
 * holds from position 0 on, before and after. */
static vkllm_status run_pp(vkllm_context *ctx, const int32_t *tokens, int32_t *pos, int32_t *seq, int8_t *want,
                           uint32_t n, uint32_t *held, double *ms)
{
    vkllm_status st = vkllm_seq_truncate(ctx, 0, 0);
    *held = 0;
    for (uint32_t i = 0; i < n; i++) pos[i] = (int32_t)i, seq[i] = 0, want[i] = i == n - 1;
    double t = vkllm_log_clock_ms();
    vkllm_batch b = {n, tokens, pos, seq, want};
    if (st == VKLLM_OK) st = vkllm_decode(ctx, &b);
    *ms = vkllm_log_clock_ms() - t;
    if (st == VKLLM_OK) *held = n;
    return st;
}

/* One tg run: n steps of one token each, logits returned every step, after depth tokens filled the cache in
 * batches of n_batch (not timed: -d measures decoding at that context, as llama-bench's -d does).  *held: how many
 * of tokens[] sequence 0 holds from position 0 on, before and after: when the cache already holds the first depth,
 * the sequence is cut back to them instead of filled again (the same cache, so the same steps; a deep -d fills
 * once, not once per run).  profiled (the model under --profile, else NULL): the fill's op timings are dropped, so
 * that the profile is the timed steps'. */
static vkllm_status run_tg(vkllm_context *ctx, const int32_t *tokens, uint32_t depth, uint32_t n_batch, int32_t *pos,
                           int32_t *seqs, int8_t *want, uint32_t n, uint32_t *held, vkllm_model *profiled, double *ms)
{
    uint32_t done = *held >= depth ? depth : 0;
    vkllm_status st = vkllm_seq_truncate(ctx, 0, done);
    *held = done;
    for (; done < depth && st == VKLLM_OK;) {
        uint32_t k = depth - done < n_batch ? depth - done : n_batch;
        for (uint32_t i = 0; i < k; i++) pos[i] = (int32_t)(done + i), seqs[i] = 0, want[i] = i == k - 1;
        vkllm_batch b = {k, tokens + done, pos, seqs, want};
        st = vkllm_decode(ctx, &b);
        done += k;
    }
    if (st == VKLLM_OK && profiled) cli_bench_print_profile(profiled, NULL);
    double t = vkllm_log_clock_ms();
    for (uint32_t i = depth; i < depth + n && st == VKLLM_OK; i++) {
        int32_t p = (int32_t)i, seq = 0;
        int8_t w = 1;
        vkllm_batch b = {1, tokens + i, &p, &seq, &w};
        st = vkllm_decode(ctx, &b);
    }
    *ms = vkllm_log_clock_ms() - t;
    if (st == VKLLM_OK) *held = depth + n;
    return st;
}

/* Load, context, one short prompt, first token: what a user waits for at start-up. */
static vkllm_status time_to_first_token(const char *model_path, const vkllm_model_params *mp, double *ms)
{
    double t = vkllm_log_clock_ms();
    vkllm_model *m = NULL;
    vkllm_context *c = NULL;
    vkllm_status st = vkllm_model_load_params(model_path, mp, &m);
    if (st == VKLLM_OK) st = vkllm_context_create(m, NULL, &c);
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    if (st == VKLLM_OK) st = vkllm_generate(c, "Once upon a time", 0, 1, &greedy, NULL, NULL, NULL);
    *ms = vkllm_log_clock_ms() - t;
    vkllm_context_free(c);
    vkllm_model_free(m);
    return st;
}

/* What bench is doing, on stderr, so a run whose output goes to a pipe or a file still shows where it is
 * (loading a large model three times takes a while before the first result). */
static void progress(const char *what, double started_ms)
{
    fprintf(stderr, "vkllm bench: %s (%.1f s)\n", what, (vkllm_log_clock_ms() - started_ms) / 1e3);
}

static vkllm_status measure_ttft(const char *model_path, const vkllm_model_params *mp, double *cold, double *warm,
                                 double started_ms)
{
    /* A fresh cache folder: both vkllm's pipeline cache and the driver's shader cache start empty. */
    char dir[] = "/tmp/vkllm-bench-cache-XXXXXX";
    if (!mkdtemp(dir)) return VKLLM_ERROR_IO;
    char *old = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    setenv("XDG_CACHE_HOME", dir, 1);
    progress("time to first token, cold: load, context and one token with empty caches", started_ms);
    vkllm_status st = time_to_first_token(model_path, mp, cold);
    if (st == VKLLM_OK) progress("time to first token, with the pipeline cache now warm", started_ms);
    if (st == VKLLM_OK) st = time_to_first_token(model_path, mp, warm);
    if (old) setenv("XDG_CACHE_HOME", old, 1);
    else unsetenv("XDG_CACHE_HOME");
    free(old);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "vkllm bench: could not remove %s\n", dir);
    return st;
}

/* The GPU time per op of the runs since the last call, to stderr (title NULL: discarded).  Timestamps
 * around every dispatch slow the runs themselves: read shares, not the tokens/s of a profiled bench. */
void cli_bench_print_profile(vkllm_model *m, const char *title)
{
    if (!vkr_device_profiling(m->dev)) return;
    FILE *out = title ? stderr : fopen("/dev/null", "w");
    if (!out) return;
    if (title) fprintf(stderr, "\n%s:\n", title);
    vkr_device_print_profile(m->dev, out);
    if (!title) fclose(out);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: vkllm bench -m MODEL [-p 512] [-n 128] [-d 0] [-r 5] [--kv TYPE] [--kv-k TYPE] [--kv-v TYPE]\n"
                 "                   [--json] [--profile] [--no-ttft] [--device INDEX|NAME] [--threads N]\n"
                 "                   [--lookup [--lookup-ngram N]] [--draft D.gguf] [--draft-max K]\n"
                 "                   [--draft-min-p P] [--no-adaptive] [--medusa HEADS.gguf [--medusa-tree SPEC]] [--prompt TEXT]\n"
                 "                   [--parallel N [--replicas R]]\n"
                 "  -p and -n: 0 to %u tokens (not both 0); -r: 1 to %u runs\n"
                 "  -d: tokens in the cache before the -n decode steps (filled untimed)\n"
                 "  --kv, --kv-k, --kv-v: KV cache types f16 (default), f32, q8_0, q4_0; --kv-rotate on|off, --kv-center on|off\n"
                 "  --lookup, --draft, --medusa: also greedy text of n tokens from --prompt (default \"Once upon a time\") with and\n"
                 "  without speculation, in alternated runs: tokens/s of each, the speed-up, the speculation stats\n"
                 "  --parallel N: only the scheduler's decode rate with N greedy requests of n tokens at once against\n"
                 "  one alone (continuous batching without HTTP), in -r alternated rounds; --replicas R: the N\n"
                 "  requests shared by R copies of the model, each stepped by a thread of its own (default as serve's)\n"
                 "  --threads N: threads of a CPU device (lavapipe): 1 none but the submitting one, 0 the driver's\n"
                 "  default (one per core); default: 1 for small models, else 0 (VKLLM_CPU_THREADS overrides)\n",
            CLI_BENCH_MAX_TOKENS,
            CLI_BENCH_MAX_REPS);
}

int cli_bench(int argc, char **argv)
{
    cli_bench_options a;
    char err[256];
    cli_parse_result parsed = cli_parse_bench_options(argc, argv, &a, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("bench", parsed, err, usage);
    double ttft_cold = 0, ttft_warm = 0, started = vkllm_log_clock_ms();
    /* --no-ttft: one load instead of three (a large model on a slow disk, or a benchmark in rounds). */
    vkllm_model_params mp = vkllm_model_default_params();
    mp.device = a.device;
    mp.cpu_threads = a.cpu_threads;
    if (a.profile) setenv("VKLLM_PROFILE", "1", 1); /* read when the device is created */
    if (a.parallel) {
        vkllm_model *models[CLI_MAX_REPLICAS];
        vkllm_status st = cli_load_replicas(a.model, &mp, a.replicas, a.parallel, models, &a.replicas);
        if (st != VKLLM_OK) fprintf(stderr, "vkllm bench: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        int rc = st == VKLLM_OK ? cli_bench_parallel(&a, models) : 1;
        cli_free_replicas(models, a.replicas);
        return rc;
    }
    vkllm_status st = a.no_ttft ? VKLLM_OK : measure_ttft(a.model, &mp, &ttft_cold, &ttft_warm, started);
    vkllm_model *m = NULL;
    vkllm_context *c = NULL;
    if (a.profile) setenv("VKLLM_PROFILE", "1", 1); /* read when the device is created */
    if (st == VKLLM_OK) progress("loading the model for the measured runs", started);
    if (st == VKLLM_OK) st = vkllm_model_load_params(a.model, &mp, &m);
    vkllm_model_info info = {0};
    if (st == VKLLM_OK) vkllm_model_get_info(m, &info);
    vkllm_context_params p = vkllm_context_default_params();
    /* The parser bounds -p and -n by CLI_BENCH_MAX_TOKENS, so the longer run plus one stays far inside 32 bits. */
    uint32_t tg_len = a.depth + a.n_gen, n_tok = (a.n_prompt > tg_len ? a.n_prompt : tg_len) + 1;
    p.n_ctx = n_tok;
    p.n_batch = a.n_prompt ? a.n_prompt : a.depth ? (a.depth < 512 ? a.depth : 512) : 1;
    p.type_k = a.type_k;
    p.type_v = a.type_v;
    p.rotate_k = !a.kv_no_rotate;
    p.center_k = !a.kv_no_center;
    if (st == VKLLM_OK) st = vkllm_context_create(m, &p, &c);
    int32_t *tokens = calloc(n_tok, sizeof *tokens), *pos = calloc(n_tok, sizeof *pos), *seq = calloc(n_tok, sizeof *seq);
    int8_t *want = calloc(n_tok, sizeof *want);
    double *pp = calloc(a.reps, sizeof *pp), *tg = calloc(a.reps, sizeof *tg);
    if (st == VKLLM_OK && (!tokens || !pos || !seq || !want || !pp || !tg)) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    if (st == VKLLM_OK) bench_prompt_tokens(info.n_vocab, tokens, n_tok);
    double ms;
    uint32_t held = 0;
    /* Warm-up records the command sequences of both shapes. */
    if (st == VKLLM_OK) progress("warm-up: recording both shapes", started);
    if (st == VKLLM_OK && a.n_prompt) st = run_pp(c, tokens, pos, seq, want, a.n_prompt, &held, &ms);
    if (st == VKLLM_OK && a.n_gen) st = run_tg(c, tokens, a.depth, p.n_batch, pos, seq, want, 2, &held, NULL, &ms);
    if (st == VKLLM_OK && a.profile) cli_bench_print_profile(m, NULL); /* drops the warm-up's timings */
    for (uint32_t r = 0; r < a.reps && st == VKLLM_OK; r++) {
        char what[64];
        snprintf(what, sizeof what, "run %u of %u: pp%u, tg%u", r + 1, a.reps, a.n_prompt, a.n_gen);
        progress(what, started);
        if (a.n_prompt && (st = run_pp(c, tokens, pos, seq, want, a.n_prompt, &held, &ms)) == VKLLM_OK) pp[r] = 1e3 * a.n_prompt / ms;
        if (a.profile) cli_bench_print_profile(m, r + 1 == a.reps ? "pp, the last run" : NULL);
        if (st == VKLLM_OK && a.n_gen && (st = run_tg(c, tokens, a.depth, p.n_batch, pos, seq, want, a.n_gen, &held,
                                                       a.profile ? m : NULL, &ms)) == VKLLM_OK)
            tg[r] = 1e3 * a.n_gen / ms;
        if (a.profile) cli_bench_print_profile(m, r + 1 == a.reps ? "tg, the last run (its timed steps)" : NULL);
    }
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm bench: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    } else {
        uint64_t now_bytes, peak, kv_per_token = 0, kv_bytes = vkllm_context_kv_bytes(c, &kv_per_token);
        vkllm_model_memory(m, &now_bytes, &peak);
        const char *kv_k = vkllm_kv_type_name(a.type_k), *kv_v = vkllm_kv_type_name(a.type_v);
        rate rp = a.n_prompt ? summarize(pp, a.reps) : (rate){0, 0}, rg = a.n_gen ? summarize(tg, a.reps) : (rate){0, 0};
        if (a.json) {
            printf("{\"model\": \"%s\", \"device\": \"%s\", \"n_params\": %llu, \"model_bytes\": %llu, "
                   "\"pp\": %u, \"pp_tps\": %.2f, \"pp_spread\": %.2f, \"tg\": %u, \"tg_tps\": %.2f, "
                   "\"tg_spread\": %.2f, \"reps\": %u, \"peak_device_bytes\": %llu, \"ttft_cold_ms\": %.1f, "
                   "\"ttft_warm_ms\": %.1f, \"depth\": %u, \"kv_k\": \"%s\", \"kv_v\": \"%s\", "
                   "\"kv_bytes_per_token\": %llu, \"kv_bytes\": %llu}\n",
                   a.model, info.device, (unsigned long long)info.n_params, (unsigned long long)info.file_bytes,
                   a.n_prompt, rp.median, rp.spread, a.n_gen, rg.median, rg.spread, a.reps, (unsigned long long)peak,
                   ttft_cold, ttft_warm, a.depth, kv_k, kv_v, (unsigned long long)kv_per_token,
                   (unsigned long long)kv_bytes);
        } else {
            printf("model   %s (%s, %.1fM params, %.1f MiB)\ndevice  %s\n", a.model, info.architecture,
                   (double)info.n_params / 1e6, (double)info.file_bytes / 1048576.0, info.device);
            printf("%-10s %14s\n", "test", "tokens/s");
            if (a.n_prompt) printf("pp%-8u %8.2f ± %.2f\n", a.n_prompt, rp.median, rp.spread);
            if (a.n_gen && a.depth) printf("tg%u @ d%-4u %6.2f ± %.2f\n", a.n_gen, a.depth, rg.median, rg.spread);
            else if (a.n_gen) printf("tg%-8u %8.2f ± %.2f\n", a.n_gen, rg.median, rg.spread);
            printf("peak device memory  %.1f MiB\n", (double)peak / 1048576.0);
            printf("KV cache            K %s, V %s: %llu bytes per token, %.1f MiB for %u positions\n", kv_k, kv_v,
                   (unsigned long long)kv_per_token, (double)kv_bytes / 1048576.0, n_tok);
            if (!a.no_ttft)
                printf("time to first token %.1f ms cold, %.1f ms with a warm pipeline cache\n", ttft_cold, ttft_warm);
            printf("(median ± half the min-max spread of %u runs after a warm-up)\n", a.reps);
        }
    }
    free(tokens), free(pos), free(seq), free(want), free(pp), free(tg);
    vkllm_context_free(c);
    c = NULL;
    int rc = st == VKLLM_OK ? 0 : 1;
    if (rc == 0 && cli_spec_on(&a.spec)) {
        progress("speculation: greedy text with and without it, alternated", started);
        rc = cli_bench_speculation(&a, m, a.n_gen ? a.n_gen : 128);
    }
    vkllm_model_free(m);
    return rc;
}
