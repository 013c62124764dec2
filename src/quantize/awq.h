/* AWQ (Lin et al., 2023) as an exact rewrite of a llama-family model before rounding: per input channel of a
 * group of weights, scales s = mean|x|^alpha (normalised by sqrt(max s * min s)), alpha searched over
 * {0, 0.05, ..., 1} to minimise the group's output error after rounding, sum over rows of e^T H e with
 * e = w - Q(w s) / s and H the calibration second moment of its input (rows sampled); the weights' columns are
 * multiplied by s and 1/s is folded into what produces their input, so the F32 model computes the same function:
 *   attn_norm.weight / s  ->  attn_q, attn_k, attn_v columns * s
 *   ffn_norm.weight / s   ->  ffn_gate, ffn_up columns * s
 *   ffn_up rows / s       ->  ffn_down columns * s   (SwiGLU's product is linear in up)
 *   attn_v rows / s       ->  attn_output columns * s, only without grouped-query attention (n_head_kv == n_head)
 * alpha = 0 is s = 1 (round-to-nearest), so the chosen scales never do worse on the sampled rows. */
#ifndef VKLLM_AWQ_H
#define VKLLM_AWQ_H

#include <stdbool.h>
#include <stdint.h>

#include "calib_stats.h"
#include "gguf/gguf.h"
#include "quant_recipe.h"

typedef struct awq_scales awq_scales;

/* stats: every layer of the model (calib_stats_collect over [0, n_layer)).  The types the recipe gives each
 * weight are the rounding the search measures. */
vkllm_status awq_search(const gguf_file *in, const quant_recipe *recipe, const quant_model_shape *shape,
                        const calib_stats *stats, awq_scales **out);
void awq_free(awq_scales *s);

/* Rewrites tensor `name` (rows x cols F32, row-major) in place; false if AWQ leaves it as it is. */
bool awq_apply(const awq_scales *s, const char *name, float *data, uint64_t rows, uint64_t cols);
/* Whether awq_apply changes tensor `name`. */
bool awq_touches(const awq_scales *s, const char *name);
/* The scales multiplied into the columns of the weights reading (layer, kind), NULL if none: their inputs are
 * divided by it, so their second moment becomes diag(1/s) H diag(1/s). */
const float *awq_input_scales(const awq_scales *s, uint32_t layer, capture_kind kind);

#endif
