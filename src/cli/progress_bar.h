/* A one-line progress bar on stderr, drawn only when stderr is a terminal. */
#ifndef VKLLM_CLI_PROGRESS_BAR_H
#define VKLLM_CLI_PROGRESS_BAR_H

#include <stdbool.h>
#include <stdint.h>

typedef struct progress_bar {
    bool enabled;      /* stderr is a terminal */
    int last_permille; /* redrawn when this changes */
    bool drawn;
} progress_bar;

void progress_bar_init(progress_bar *bar);
/* A vkllm_progress_fn: ctx is the progress_bar. */
void progress_bar_update(void *ctx, const char *what, uint64_t done, uint64_t total);
/* Ends the line if anything was drawn. */
void progress_bar_finish(progress_bar *bar);

#endif
