/* Flags shared by the generating commands (run, chat, bench) and the model search path. */
#ifndef VKLLM_CLI_OPTIONS_H
#define VKLLM_CLI_OPTIONS_H

#include "vkllm.h"

typedef struct cli_options {
    const char *model;          /* -m; else VKLLM_MODEL; else the default location */
    const char *prompt;         /* -p */
    int n_predict;              /* -n; default 128 */
    uint32_t n_ctx;             /* --ctx; 0: the model's (at most 4096) */
    vkllm_sampling sampling;    /* --temp --top-k --top-p --min-p --repeat-penalty --repeat-last-n --seed */
    const char *chat_template;  /* --template */
    const char *system;         /* --system */
    int kv_f32;                 /* --kv f32 */
} cli_options;

/* Parses argv[1..]; prints what is wrong and returns -1 on a bad flag, 1 for --help (usage printed). */
int cli_parse_options(int argc, char **argv, cli_options *o, const char *usage);
/* The model file to load: -m, $VKLLM_MODEL, or the first existing default location; NULL if none (message
 * printed). */
const char *cli_model_path(const cli_options *o);
/* Loads the model cli_model_path names and a context with --ctx and --kv.  On failure it prints
 * "vkllm COMMAND: ..." and returns -1 with *model and *ctx NULL. */
int cli_open_model(const char *command, const cli_options *o, vkllm_model **model, vkllm_context **ctx);

#endif
