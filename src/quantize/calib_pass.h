/* The calibration pass shared by vkllm imatrix and the calibrated quantizers (GPTQ, AWQ): a text tokenized (BOS
 * as the vocabulary asks), cut into chunks of n_ctx tokens each evaluated from an empty cache with BOS in front
 * (llama-imatrix's chunking), every pass in capture mode (src/model/capture.c) so that a callback sees the inputs
 * of every weight product, layer by layer (context_capture_rows). */
#ifndef VKLLM_CALIB_PASS_H
#define VKLLM_CALIB_PASS_H

#include <stdbool.h>
#include <stdint.h>

#include "model/context.h"
#include "tools/progress.h"

typedef struct calib_pass_options {
    const char *model;     /* GGUF path */
    const char *text_path; /* calibration text */
    const char *device;    /* NULL: the default device */
    uint32_t n_ctx;        /* tokens per chunk */
    int64_t chunks;        /* at most this many; < 0: all */
    uint32_t min_chunks;   /* fewer whole chunks in the text is an error ("too short") */
    bool want_output;      /* the LM head's input of every row too (CAPTURE_OUTPUT) */
    const char *reference; /* NULL, or a second GGUF with the same vocabulary run on the same chunks (the unquantized
                            * model beside one quantized so far): the callback sees both passes' captures */
} calib_pass_options;

/* Called after each chunk's pass with the rows it captured (n_ctx); reference: the reference model's pass over the
 * same tokens, or NULL. */
typedef vkllm_status (*calib_chunk_fn)(void *user, const vkllm_context *ctx, const vkllm_context *reference,
                                       uint32_t rows);

/* Runs the pass; *n_chunks: the chunks evaluated.  progress counts chunks. */
vkllm_status calib_pass_run(const calib_pass_options *o, calib_chunk_fn fn, void *user, vkllm_progress_fn progress,
                            void *progress_ctx, uint32_t *n_chunks);

#endif
