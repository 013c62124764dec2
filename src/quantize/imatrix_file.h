/* llama.cpp's importance-matrix files (tools/imatrix): per weight matrix, the sum over calibration tokens of
 * each input column's squared activation, and the number of tokens.  Read: the GGUF format ("<name>.in_sum2"
 * [ne0, n_mat] and "<name>.counts" [1, n_mat], F32, with imatrix.datasets / chunk_count / chunk_size) and the
 * legacy .dat format.  Written: the GGUF format, as llama-imatrix writes it.  The importance a quantizer uses
 * is llama-quantize's: sums / count (1 where nothing was counted). */
#ifndef VKLLM_IMATRIX_FILE_H
#define VKLLM_IMATRIX_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/error.h"

typedef struct imatrix_entry {
    char *name;     /* the weight's tensor name: "blk.0.attn_q.weight" */
    uint64_t n;     /* values: columns x n_mat */
    uint32_t n_mat; /* matrices (experts); 1 for dense weights */
    float *sums;    /* n: sum of x^2 per column (legacy files: already divided by the count, times ncall) */
    float *counts;  /* n_mat: tokens accumulated per matrix */
    float *values;  /* n: the importance llama-quantize derives (see above) */
} imatrix_entry;

typedef struct imatrix_data {
    imatrix_entry *entries;
    uint64_t n_entries;
    uint32_t chunk_count; /* calibration chunks seen */
    uint32_t chunk_size;  /* tokens per chunk */
    char *dataset;        /* the first calibration text's name; "" if none */
    bool legacy;          /* read from a .dat file */
} imatrix_data;

vkllm_status imatrix_load(const char *path, imatrix_data **out);
void imatrix_free(imatrix_data *data);
/* The entry for a weight tensor, NULL if there is none. */
const imatrix_entry *imatrix_find(const imatrix_data *data, const char *tensor_name);

/* Writes llama-imatrix's GGUF layout (entries sorted by name, general.type "imatrix"); values are not
 * written (they are derived on reading). */
vkllm_status imatrix_write(const imatrix_data *data, const char *path);

#endif
