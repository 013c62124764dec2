/* The file `vkllm perplexity --kl-base OUT` writes and `--kl BASE` reads: the full next-token log-probabilities
 * of every scored position of a base run (usually F16 weights and cache), so that another run (a quantized
 * cache) can be compared with it position by position.
 *
 * Layout, little-endian, no padding:
 *   char    magic[8]  "VKLLMLP1"
 *   uint32  n_vocab, n_ctx, first, n_chunks          first: the first scored position of a chunk (n_ctx / 2)
 *   int32   tokens[n_chunks][n_ctx]                  the evaluated tokens, BOS included, so that a comparison
 *                                                    with another text, tokenizer or -c is refused
 *   float32 log_probs[n_chunks][n_ctx - 1 - first][n_vocab]
 *                                                    log p(v) at positions first .. n_ctx - 2 of each chunk
 * Rows are F32: F16 would round log p to about 1e-3, above the KL divergence of an 8-bit cache.  Size: 4
 * bytes x n_vocab per scored token (12 MB for stories260K's 24 chunks of 512; --chunks bounds it). */
#ifndef VKLLM_EVAL_LOGPROB_FILE_H
#define VKLLM_EVAL_LOGPROB_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/error.h"

typedef struct logprob_file {
    FILE *f;
    const char *path;
    uint32_t n_vocab, n_ctx, first, n_chunks;
    int32_t *tokens; /* [n_chunks][n_ctx] (read side) */
} logprob_file;

/* Positions scored per chunk. */
static inline uint32_t logprob_rows_per_chunk(const logprob_file *f) { return f->n_ctx - 1 - f->first; }

/* Writes the header and tokens; rows follow with logprob_file_write. */
vkllm_status logprob_file_create(const char *path, uint32_t n_vocab, uint32_t n_ctx, uint32_t first,
                                 uint32_t n_chunks, const int32_t *tokens, logprob_file *out);
vkllm_status logprob_file_write(logprob_file *f, const float *rows, size_t n_rows);
/* Reads the header and tokens; VKLLM_ERROR_BAD_FORMAT naming the path for a wrong magic, impossible sizes or a
 * file shorter than its header says. */
vkllm_status logprob_file_open(const char *path, logprob_file *out);
vkllm_status logprob_file_read(logprob_file *f, float *rows, size_t n_rows);
/* Closes; for a written file, a failed flush is an error (a full disk shows here). */
vkllm_status logprob_file_close(logprob_file *f);

#endif
