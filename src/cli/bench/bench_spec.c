/* vkllm bench --lookup / --draft: greedy generation of text from a prompt with and without speculation, in
 * alternated runs on two contexts of the same model, tokens/s of each and the speed-up; the texts must match. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"

typedef struct text {
    char *buf;
    size_t len, cap;
} text;

static int collect(const char *piece, size_t len, void *user)
{
    text *t = user;
    if (t->len + len + 1 > t->cap) {
        size_t cap = 2 * (t->len + len + 1);
        char *b = realloc(t->buf, cap);
        if (!b) return 0;
        t->buf = b, t->cap = cap;
    }
    memcpy(t->buf + t->len, piece, len);
    t->len += len;
    t->buf[t->len] = '\0';
    return 1;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, uint32_t n)
{
    qsort(v, n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One greedy generation of n tokens from the prompt (the cache emptied first); tokens/s of the tokens after the
 * first (the prompt's), as vkllm run prints them. */
static vkllm_status generate(vkllm_context *c, const char *prompt, uint32_t n, text *t, vkllm_generate_stats *stats,
                             double *tps)
{
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    t->len = 0;
    vkllm_status st = vkllm_seq_truncate(c, 0, 0);
    if (st == VKLLM_OK) st = vkllm_generate(c, prompt, 0, n, &greedy, collect, t, stats);
    *tps = stats->generate_ms > 0 ? 1e3 * stats->n_decode / stats->generate_ms : 0.0;
    return st;
}

int cli_bench_speculation(const cli_bench_options *a, vkllm_model *m, uint32_t n_gen)
{
    const char *prompt = a->prompt ? a->prompt : "Once upon a time";
    vkllm_context_params p = vkllm_context_default_params();
    p.n_outputs_max = a->spec.draft_max + 1;
    p.output_hidden = a->spec.medusa != NULL; /* both contexts: the same passes but for the heads */
    if (a->spec.medusa_tree) p.n_outputs_max = 64;
    vkllm_context *plain = NULL, *spec = NULL, *draft_ctx = NULL;
    vkllm_model *draft_model = NULL;
    vkllm_status st = vkllm_context_create(m, &p, &plain);
    if (st == VKLLM_OK) st = vkllm_context_create(m, &p, &spec);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm bench: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        vkllm_context_free(plain);
        return 1;
    }
    int rc = cli_open_speculation("bench", &a->spec, a->device, 0, spec, &draft_model, &draft_ctx);
    double *tps_plain = calloc(a->reps, sizeof *tps_plain), *tps_spec = calloc(a->reps, sizeof *tps_spec);
    text tp = {0}, ts = {0};
    vkllm_generate_stats sp = {0}, ss = {0}, total = {0};
    bool same = true;
    if (rc == 0 && (!tps_plain || !tps_spec)) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    double warm;
    /* warm-up: both contexts record their shapes */
    if (rc == 0 && st == VKLLM_OK) st = generate(plain, prompt, n_gen, &tp, &sp, &warm);
    if (rc == 0 && st == VKLLM_OK) st = generate(spec, prompt, n_gen, &ts, &ss, &warm);
    for (uint32_t r = 0; rc == 0 && r < a->reps && st == VKLLM_OK; r++) {
        /* alternated: plain first on even runs, speculative first on odd ones */
        for (int i = 0; i < 2 && st == VKLLM_OK; i++) {
            bool do_spec = (r + (uint32_t)i) % 2 == 1;
            if (do_spec) st = generate(spec, prompt, n_gen, &ts, &ss, &tps_spec[r]);
            else st = generate(plain, prompt, n_gen, &tp, &sp, &tps_plain[r]);
        }
        if (st != VKLLM_OK) break;
        same = same && tp.len == ts.len && memcmp(tp.buf, ts.buf, tp.len) == 0;
        total.n_decode += ss.n_decode, total.n_verify += ss.n_verify;
        total.n_drafted += ss.n_drafted, total.n_accepted += ss.n_accepted;
    }
    if (rc == 0 && st != VKLLM_OK) fprintf(stderr, "vkllm bench: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    if (rc == 0 && st == VKLLM_OK) {
        double mp = median(tps_plain, a->reps), ms = median(tps_spec, a->reps);
        const char *drafter = a->spec.draft ? a->spec.draft : a->spec.medusa ? a->spec.medusa : "lookup";
        if (a->json) {
            printf("{\"speculation\": \"%s\", \"prompt\": \"%s\", \"tg\": %u, \"tg_tps_plain\": %.2f, "
                   "\"tg_tps_speculative\": %.2f, \"speedup\": %.3f, \"same_text\": %s, \"drafted\": %u, "
                   "\"accepted\": %u, \"passes\": %u, \"tokens_per_pass\": %.3f, \"reps\": %u}\n",
                   drafter, prompt, n_gen, mp, ms, mp > 0 ? ms / mp : 0.0, same ? "true" : "false", total.n_drafted,
                   total.n_accepted, total.n_verify, total.n_verify ? (double)total.n_decode / total.n_verify : 0.0,
                   a->reps);
        } else {
            printf("speculation (%s), greedy text of %u tokens from \"%s\", medians of %u alternated runs:\n", drafter,
                   n_gen, prompt, a->reps);
            printf("  tg%-7u plain %8.2f tokens/s, speculative %8.2f tokens/s: %.2fx, %s text\n", n_gen, mp, ms,
                   mp > 0 ? ms / mp : 0.0, same ? "same" : "DIFFERENT");
            printf("  speculation: %u drafted, %u accepted (%.1f%%), %u verification passes, %.2f tokens per pass\n",
                   total.n_drafted, total.n_accepted,
                   total.n_drafted ? 100.0 * total.n_accepted / total.n_drafted : 0.0, total.n_verify,
                   total.n_verify ? (double)total.n_decode / total.n_verify : 0.0);
        }
        if (!same) fprintf(stderr, "vkllm bench: the speculative text differs from plain decoding's\n");
    }
    free(tp.buf), free(ts.buf), free(tps_plain), free(tps_spec);
    vkllm_context_free(spec);
    vkllm_context_free(plain);
    vkllm_context_free(draft_ctx);
    vkllm_model_free(draft_model);
    return rc == 0 && st == VKLLM_OK && same ? 0 : 1;
}
