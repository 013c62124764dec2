#include "ppl_stats.h"

#include <math.h>
#include <stdlib.h>

static double log_sum_exp(const float *logits, uint32_t n, float *max_out)
{
    float mx = -INFINITY;
    for (uint32_t i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (uint32_t i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    *max_out = mx;
    return log(sum);
}

double ppl_log_prob(const float *logits, uint32_t n_vocab, uint32_t token)
{
    float mx;
    double lse = log_sum_exp(logits, n_vocab, &mx);
    return (double)logits[token] - mx - lse;
}

void ppl_log_softmax(const float *logits, uint32_t n_vocab, float *out)
{
    float mx;
    double lse = log_sum_exp(logits, n_vocab, &mx);
    for (uint32_t i = 0; i < n_vocab; i++) out[i] = (float)((double)logits[i] - mx - lse);
}

void ppl_add(ppl_accum *a, double log_prob)
{
    a->nll -= log_prob;
    a->nll2 += log_prob * log_prob;
    a->count++;
}

double ppl_value(const ppl_accum *a) { return a->count ? exp(a->nll / (double)a->count) : 0.0; }

double ppl_error(const ppl_accum *a)
{
    if (a->count < 2) return 0.0;
    double n = (double)a->count, mean = a->nll / n, var = a->nll2 / n - mean * mean;
    return var > 0 ? sqrt(var / (n - 1)) * exp(mean) : 0.0;
}

vkllm_status kld_add(kld_accum *a, const float *base, const float *run, uint32_t n_vocab)
{
    if (a->count == a->capacity) {
        size_t cap = a->capacity ? 2 * a->capacity : 1024;
        double *v = realloc(a->values, cap * sizeof *v);
        if (!v) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "KL divergence: %zu values", cap);
        a->values = v;
        a->capacity = cap;
    }
    double kl = 0;
    uint32_t top_base = 0, top_run = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        double p = exp((double)base[i]);
        kl += p * ((double)base[i] - (double)run[i]);
        if (base[i] > base[top_base]) top_base = i;
        if (run[i] > run[top_run]) top_run = i;
    }
    /* Rounding of the saved rows can leave a tiny negative sum where the distributions agree. */
    if (kl < 0) kl = 0;
    a->values[a->count++] = kl;
    a->sum += kl;
    a->sum2 += kl * kl;
    a->top1_same += top_base == top_run;
    return VKLLM_OK;
}

static int by_value(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

kld_result kld_finish(kld_accum *a)
{
    kld_result r = {.count = a->count};
    if (!a->count) return r;
    double n = (double)a->count;
    r.mean = a->sum / n;
    double var = a->sum2 / n - r.mean * r.mean;
    r.mean_err = a->count > 1 && var > 0 ? sqrt(var / (n - 1)) : 0.0;
    r.top1 = (double)a->top1_same / n;
    r.top1_err = a->count > 1 ? sqrt(r.top1 * (1 - r.top1) / (n - 1)) : 0.0;
    qsort(a->values, a->count, sizeof *a->values, by_value);
    size_t rank = (size_t)ceil(0.99 * n); /* nearest rank: the smallest value with 99% at or below it */
    r.p99 = a->values[(rank ? rank : 1) - 1];
    return r;
}

void kld_free(kld_accum *a)
{
    free(a->values);
    *a = (kld_accum){0};
}
