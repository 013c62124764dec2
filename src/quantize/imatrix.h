/* vkllm imatrix: llama-imatrix's importance matrix from vkllm's own forward pass.  The text is tokenized (BOS as
 * the vocabulary asks) and cut into chunks of n_ctx tokens, each evaluated from an empty cache with BOS in front
 * (llama-imatrix's chunking); the capture mode of the pass (src/model/capture.c) hands over the F32 input of
 * every weight product, and each column's squared values are summed over all tokens, in float and token order as
 * llama-imatrix sums.  The result is llama.cpp's imatrix GGUF (src/quantize/imatrix_file.h). */
#ifndef VKLLM_IMATRIX_H
#define VKLLM_IMATRIX_H

#include <stdbool.h>
#include <stdint.h>

#include "imatrix_file.h"
#include "tools/progress.h"

typedef struct imatrix_options {
    const char *model;     /* GGUF path */
    const char *text_path; /* calibration text; recorded as the dataset */
    uint32_t n_ctx;        /* tokens per chunk (llama-imatrix -c), default 512 */
    int64_t chunks;        /* at most this many chunks; < 0: all */
    bool process_output;   /* also output.weight (llama-imatrix --process-output) */
    const char *device;    /* vkllm_model_params.device, NULL for the default */
} imatrix_options;

/* Computes the matrix.  A text of fewer than 2 n_ctx tokens is an error (llama-imatrix's rule). progress counts
 * chunks. */
vkllm_status imatrix_compute(const imatrix_options *o, vkllm_progress_fn progress, void *progress_ctx,
                             imatrix_data **out);

#endif
