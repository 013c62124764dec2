/* Progress reports from long library operations (synth, quantize): the library counts, the caller draws. */
#ifndef VKLLM_PROGRESS_H
#define VKLLM_PROGRESS_H

#include <stdint.h>

/* done and total in the operation's unit (bytes written); what names the current item (a tensor). */
typedef void (*vkllm_progress_fn)(void *ctx, const char *what, uint64_t done, uint64_t total);

#endif
