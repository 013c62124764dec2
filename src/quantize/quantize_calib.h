/* The calibrated quantizers of vkllm quantize (--method gptq, awq, awq+gptq): the calibration statistics of the
 * input file's own forward pass on a text (calib_stats.h), collected in groups of layers within a memory budget as
 * the writer reaches them (AWQ needs every layer's at once), AWQ's exact rewrite of the weights (awq.h), and each
 * weight quantized whole by GPTQ (quant/gptq.h) with the Hessian of the input it reads, factorised once per input
 * and shared by the weights reading it (Q/K/V, gate/up); after AWQ that input is x / s, its Hessian scaled. */
#ifndef VKLLM_QUANTIZE_CALIB_H
#define VKLLM_QUANTIZE_CALIB_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "quant/gptq.h"
#include "quant/quant.h"
#include "quant_recipe.h"

/* Sequential GPTQ (the GPTQ paper's order): each input's statistics are measured on the model with everything
 * before it already quantized, so that a weight's rounding absorbs the error of the ones before it.  Off: every
 * Hessian from the unquantized model.  Per layer: a layer's four inputs from the model with the layers before it
 * quantized (n_layer + 1 calibration passes).  Per input ("true sequential"): also within a layer, Q/K/V, then O,
 * then gate/up, then down (4 n_layer + 1 passes).  Each stage also runs the unquantized model over the same chunks
 * (unless quantized_target), and a weight is moved to the least-squares fit of the unquantized model's output from
 * the quantized model's input before GPTQ rounds it (quant_gptq_retarget), so that a stage also makes up for the
 * error the stages before it left in its input. */
typedef enum quant_sequential { QUANT_SEQUENTIAL_OFF, QUANT_SEQUENTIAL_LAYER, QUANT_SEQUENTIAL_INPUT } quant_sequential;

typedef struct quant_calib_options {
    const char *model;        /* the file being quantized: its forward pass is calibrated */
    const char *text_path;    /* calibration text */
    uint32_t n_ctx;           /* tokens per chunk, default 512 */
    int64_t chunks;           /* at most this many, < 0: all */
    quant_gptq_params gptq_params; /* damping, act-order */
    uint64_t max_bytes;       /* budget of the Hessians held at once; 0: 2 GiB */
    bool gptq;                /* GPTQ rounding (else round-to-nearest of the possibly rewritten weights) */
    bool awq;                 /* AWQ's scales first */
    const quant_recipe *awq_search_recipe; /* the rounding AWQ's search measures; NULL: the output's (a test
                                              folds with Q4_0's scales into an F32 file, to compare functions) */
    quant_sequential sequential; /* GPTQ only, not with AWQ */
    bool quantized_target;    /* sequential: each weight fitted to its own output on the quantized model's input (the
                               * GPTQ paper) instead of the unquantized model's output (quant_gptq_retarget: GPTAQ),
                               * which costs each stage a pass of the unquantized model beside it */
} quant_calib_options;

typedef struct quant_calib quant_calib;

vkllm_status quant_calib_create(const quant_calib_options *o, const gguf_file *in, const quant_recipe *recipe,
                                const quant_model_shape *shape, quant_calib **out);
void quant_calib_free(quant_calib *c);
/* Whether the calibrated method produces tensor `name` (as `type`): a weight GPTQ rounds (read from a captured
 * input, in a format GPTQ writes) or one AWQ rewrites (norm vectors included); the others are converted as usual. */
bool quant_calib_applies(const quant_calib *c, const char *name, quant_type type);
/* The whole tensor: w (rows x cols F32) is overwritten; importance: an imatrix entry or NULL (then the
 * calibration's own mean x^2 steers GPTQ's block scale searches); out: rows rows of `type`. */
vkllm_status quant_calib_quantize(quant_calib *c, const char *name, quant_type type, float *w, uint64_t rows,
                                  uint64_t cols, const float *importance, void *out);

/* Sequential mode: the writer (quantize.c) runs the stages in order.  A stage is one calibration pass: for each
 * stage it writes the model as quantized so far, keeping its first quant_calib_stage_layers() layers (a pass
 * needs no layer after the inputs it measures), to a scratch file, calls quant_calib_begin_stage with that file,
 * then quant_calib_quantize for each weight whose quant_calib_stage_of() is the stage. */
bool quant_calib_is_sequential(const quant_calib *c);
/* The ridge of a stage's float target (quant_gptq_retarget's damp) for an input `width` wide measured on `tokens`:
 * GPTQ's damping, or more where the text is short against the input. */
double quant_calib_retarget_damping(double gptq_damp, uint32_t width, double tokens);
uint32_t quant_calib_stage_count(const quant_calib *c);
/* The stage of a weight quant_calib_applies to; UINT32_MAX for one no capture reads. */
uint32_t quant_calib_stage_of(const quant_calib *c, const char *name);
uint32_t quant_calib_stage_layers(const quant_calib *c, uint32_t stage);
vkllm_status quant_calib_begin_stage(quant_calib *c, uint32_t stage, const char *model_path);

#endif
