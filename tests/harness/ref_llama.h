/* A plain-C reference forward pass for llama-family GGUF models, in double precision, for tests: weights
 * dequantized with the CPU dequantizers, attention over the whole history, no batching, no cache tricks.
 * Written to be read top to bottom (after llama2.c's run.c), not to be fast. */
#ifndef VKLLM_TEST_REF_LLAMA_H
#define VKLLM_TEST_REF_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "vkllm.h"

typedef struct ref_model ref_model;

vkllm_status ref_model_load(const char *path, ref_model **out);
void ref_model_free(ref_model *m);
uint32_t ref_model_n_vocab(const ref_model *m);
/* Whether any weight matrix is of a quantized (block) type. */
bool ref_model_has_quantized(const ref_model *m);

/* Makes every K (after RoPE) and V row round-trip through the CPU quantizer of these quant types (-1: kept
 * exact), as a quantized KV cache stores them; rotate_k: the keys are quantized in the Hadamard-rotated basis
 * (ref_hadamard_segments, then back), which the cache's rotated queries make the same.  Default -1, -1, false. */
void ref_model_set_cache(ref_model *m, int k_type, int v_type, bool rotate_k);
/* With a quantized K (ref_model_set_cache): each key is quantized minus the mean key center [n_layer][n_kv][pairs][2]
 * (the pairs n_rot / 2 - pairs .. of each kv head, before RoPE) rotated to its position, which comes back after:
 * a centered cache (vkllm_context_params.center_k).  NULL: none (the default).  center must outlive its use. */
void ref_model_set_k_center(ref_model *m, const float *center, uint32_t pairs);

/* Runs tokens[0..n) at positions 0..n-1 and writes the logits of the last position (n_vocab doubles). */
void ref_model_forward(ref_model *m, const int32_t *tokens, uint32_t n, double *logits);
/* The same with the products of quantized weights taken on x's q8 round trip, as the GPU's integer mat-vec
 * path computes them: in the layers (q8_layers) and in the LM head (q8_head). */
void ref_model_forward_q8(ref_model *m, const int32_t *tokens, uint32_t n, bool q8_layers, bool q8_head,
                          double *logits);

#endif
