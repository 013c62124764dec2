/* Evaluation and calibration texts: a whole file read into memory and tokenized at once (vkllm perplexity, the
 * calibration pass of imatrix, GPTQ and AWQ). */
#ifndef VKLLM_EVAL_TEXT_FILE_H
#define VKLLM_EVAL_TEXT_FILE_H

#include <stddef.h>

#include "vkllm.h"

/* The file's bytes (*text malloc'd, not NUL-terminated; free it) and their count. */
vkllm_status eval_read_text(const char *path, char **text, size_t *len);
/* All of text's tokens (*out malloc'd; free it), BOS first when add_special and the vocabulary asks for it. */
vkllm_status eval_tokenize_all(vkllm_model *m, const char *text, size_t len, int add_special, vkllm_token **out,
                               size_t *n);

#endif
