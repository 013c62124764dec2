/* The arithmetic of `vkllm perplexity`, apart from any device so that tests check it on known numbers:
 * log-softmax of a row of logits, the perplexity estimate with its error (llama.cpp's llama-perplexity
 * formulas, so the two tools print comparable figures), and the KL divergence of one run's next-token
 * distributions from a saved base run (mean with its error, 99th percentile, same-top-token rate). */
#ifndef VKLLM_EVAL_PPL_STATS_H
#define VKLLM_EVAL_PPL_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

/* log p(token) under softmax(logits), in double (a float sum over 32000 terms loses the digits that tell
 * F16 from Q8_0 caches apart). */
double ppl_log_prob(const float *logits, uint32_t n_vocab, uint32_t token);
/* The whole log-softmax row: out[i] = log p(i). */
void ppl_log_softmax(const float *logits, uint32_t n_vocab, float *out);

/* Negative log-likelihoods of the scored tokens. */
typedef struct ppl_accum {
    double nll, nll2;
    uint64_t count;
} ppl_accum;

void ppl_add(ppl_accum *a, double log_prob);
/* exp(mean nll); 0 when nothing was scored. */
double ppl_value(const ppl_accum *a);
/* ppl * the standard error of the mean nll (llama-perplexity's "+/-"); 0 with fewer than two tokens. */
double ppl_error(const ppl_accum *a);

/* KL(base || run) per scored position, kept whole for the percentile. */
typedef struct kld_accum {
    double sum, sum2;
    uint64_t count, top1_same;
    double *values;
    size_t capacity;
} kld_accum;

/* Adds one position: base and run are log-softmax rows of n_vocab.  Fails only for host memory. */
vkllm_status kld_add(kld_accum *a, const float *base, const float *run, uint32_t n_vocab);

typedef struct kld_result {
    double mean, mean_err; /* mean KL and the standard error of that mean */
    double p99;            /* 99th percentile (nearest rank) */
    double top1;           /* fraction of positions whose most likely token is the same */
    double top1_err;
    uint64_t count;
} kld_result;

/* Sorts the kept values (a is still usable for kld_result afterwards, not for kld_add order). */
kld_result kld_finish(kld_accum *a);
void kld_free(kld_accum *a);

#endif
