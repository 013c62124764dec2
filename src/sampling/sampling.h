/* CPU token sampling over one row of logits.
 *
 * The chain follows llama.cpp's default order (common/common.h, common/sampling.cpp):
 *   penalties -> top-k -> top-p -> min-p -> temperature -> draw
 * so top-p and min-p see the untempered distribution, and temperature only reshapes what survives.
 * temperature <= 0 is greedy: the argmax of the penalized logits (no random draw).
 *
 * Determinism: the random stream is xoshiro256** seeded through splitmix64, so a seed gives the same
 * stream everywhere; the token drawn from it also depends on expf(), which libm computes to within an
 * ulp, so two platforms agree except when a draw lands within rounding of a probability boundary.
 *
 * Logits: NaN or +inf is an error (VKLLM_ERROR_INVALID_ARGUMENT naming the token); -inf is a masked
 * token that is never chosen; a row with every token masked is an error. */
#ifndef VKLLM_SAMPLING_H
#define VKLLM_SAMPLING_H

#include <stdint.h>

#include "vkllm.h"

/* The sampler's parameters are the public vkllm_sampling (include/vkllm.h: fields, ranges, defaults). */

#define VKLLM_SAMPLER_DEFAULT_SEED UINT64_C(0x5eed)

typedef struct sampler sampler;

/* Validates params (every float finite, repeat_penalty > 0, repeat_last_n >= 0, n_vocab > 0) and
 * allocates all scratch for n_vocab tokens, so sampler_sample never allocates. */
vkllm_status sampler_create(const vkllm_sampling *params, int32_t n_vocab, sampler **out);
void sampler_free(sampler *s);

/* Records a token in the penalty window.  Accept the prompt tokens and every generated token, as
 * llama.cpp does, so the penalties see the recent text. */
vkllm_status sampler_accept(sampler *s, int32_t token);

/* Picks the next token from logits[n_vocab] (not modified). */
vkllm_status sampler_sample(sampler *s, const float *logits, int32_t *token);

/* The distribution sampler_sample draws from, dense: probs[n_vocab] (0 outside what the chain keeps; temperature
 * <= 0: one-hot on the argmax).  The speculative sampling rule (src/speculative/) compares two of these. */
vkllm_status sampler_probs(sampler *s, const float *logits, float *probs);
/* Draws a token from probs[n_vocab] (non-negative, not all 0) with the sampler's stream; and one uniform in [0, 1). */
int32_t sampler_draw_probs(sampler *s, const float *probs);
double sampler_uniform(sampler *s);
/* A new sampler with src's parameters and n_vocab, its stream seeded with src's seed ^ seed_xor, empty window. */
vkllm_status sampler_clone(const sampler *src, uint64_t seed_xor, sampler **out);
/* Makes dst's penalty window that of src (same n_vocab and window); dst's random stream is kept. */
void sampler_copy_history(sampler *dst, const sampler *src);

/* Forgets the history and restarts the random stream from the seed. */
void sampler_reset(sampler *s);

#endif
