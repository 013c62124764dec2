/* The calibrated quantizers of vkllm quantize (--method gptq): the calibration statistics of the input file's
 * own forward pass on a text (calib_stats.h), collected in groups of layers within a memory budget as the
 * writer reaches them, and each weight quantized whole by GPTQ (quant/gptq.h) with the Hessian of the input it
 * reads, factorised once per input and shared by the weights reading it (Q/K/V, gate/up). */
#ifndef VKLLM_QUANTIZE_CALIB_H
#define VKLLM_QUANTIZE_CALIB_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "quant/gptq.h"
#include "quant/quant.h"

typedef struct quant_calib_options {
    const char *model;        /* the file being quantized: its forward pass is calibrated */
    const char *text_path;    /* calibration text */
    uint32_t n_ctx;           /* tokens per chunk, default 512 */
    int64_t chunks;           /* at most this many, < 0: all */
    quant_gptq_params gptq;   /* damping, act-order */
    uint64_t max_bytes;       /* budget of the Hessians held at once; 0: 2 GiB */
} quant_calib_options;

typedef struct quant_calib quant_calib;

vkllm_status quant_calib_create(const quant_calib_options *o, const gguf_file *in, uint32_t n_layer,
                                quant_calib **out);
void quant_calib_free(quant_calib *c);
/* Whether the calibrated method quantizes tensor `name` to `type` (a weight read from a captured input, in a
 * format GPTQ writes); other tensors are rounded to nearest. */
bool quant_calib_applies(const quant_calib *c, const char *name, quant_type type);
/* The whole tensor: w (rows x cols F32) is overwritten; importance: an imatrix entry or NULL (then the
 * calibration's own mean x^2 steers the block scale searches); out: rows quantized rows. */
vkllm_status quant_calib_quantize(quant_calib *c, const char *name, quant_type type, float *w, uint64_t rows,
                                  uint64_t cols, const float *importance, void *out);

#endif
