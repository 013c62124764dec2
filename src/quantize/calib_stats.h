/* Calibration statistics of the inputs of each weight product, for GPTQ and AWQ: per captured input (a layer's
 * attention input, attention output, FFN input, SwiGLU output; the LM head's input) the second moment
 * H = sum over tokens of x x^T (width x width, float, both halves filled), the sum of |x| per column and the
 * tokens counted.  Collected for a range of layers at a time, so that memory stays bounded: a model whose
 * matrices do not fit the budget is calibrated in groups of layers, one pass over the text per group. */
#ifndef VKLLM_CALIB_STATS_H
#define VKLLM_CALIB_STATS_H

#include "calib_pass.h"

typedef struct calib_slot {
    uint32_t layer;    /* n_layer for the LM head's input */
    capture_kind kind;
    uint32_t width;
    float *h;          /* width x width */
    float *cross;      /* with a reference pass (calib_pass_options.reference): width x width, the sum over tokens of
                        * x_ref x^T (cross[a][b] = sum of x_ref[a] x[b]), x_ref the reference model's input at the same
                        * token; else NULL */
    double *abs_sum;   /* width */
    double count;      /* tokens */
} calib_slot;

typedef struct calib_stats {
    calib_slot *slots;
    uint32_t n_slots;
    uint32_t first, end; /* layers held; end == n_layer + 1 when the LM head's input is held too */
} calib_stats;

/* Collects layers [first, end) (end may be n_layer + 1 for the head), of the inputs in kinds (a mask of
 * 1u << capture_kind; 0: every kind).  po->want_output is set as needed. */
vkllm_status calib_stats_collect(const calib_pass_options *po, uint32_t first, uint32_t end, uint32_t kinds,
                                 vkllm_progress_fn progress, void *progress_ctx, calib_stats **out);
void calib_stats_free(calib_stats *stats);
const calib_slot *calib_stats_find(const calib_stats *stats, uint32_t layer, capture_kind kind);

/* The captured input a GGUF weight reads: "blk.3.ffn_up.weight" -> (3, CAPTURE_FFN_IN), "output.weight" ->
 * (n_layer, CAPTURE_OUTPUT).  False for weights no product of the pass reads from a capture (token_embd). */
bool calib_slot_of(const char *name, uint32_t n_layer, uint32_t *layer, capture_kind *kind);

#endif
