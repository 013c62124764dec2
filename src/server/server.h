/* vkllm serve: an OpenAI-compatible HTTP server over the scheduler (docs/serving.md). */
#ifndef VKLLM_SERVER_H
#define VKLLM_SERVER_H

#include <signal.h>
#include <stdint.h>

#include "vkllm.h"

typedef struct server_options {
    const char *model_path;    /* its file name is the model's id in the API */
    const char *host;          /* IPv4 address to bind; default 127.0.0.1 */
    uint16_t port;             /* 0: any free port (printed) */
    uint32_t parallel;         /* requests running at once (over all replicas) */
    uint32_t n_ctx;            /* positions per request; 0: the model's (at most 4096) */
    uint32_t n_kv_pages;       /* over all replicas; 0: parallel full contexts */
    vkllm_kv_type type_k, type_v;
    int no_rotate_k;
    int no_center_k;
    const char *api_key;       /* NULL: none asked */
    const char *chat_template; /* NULL: the model's */
    uint32_t max_waiting;      /* 0: 64 x parallel */
    uint32_t default_max_tokens;  /* max_tokens when a request names none */
    int no_prefix_cache;
} server_options;

/* Serves models[0..n_models) (n_models >= 1 replicas of one model: src/cli/replicas.h) until *stop becomes nonzero
 * (SIGINT/SIGTERM), then stops accepting, lets running requests finish for a few seconds, cancels the rest and
 * returns 0; 1 if it could not start (message printed).  The models stay the caller's. */
int server_run(const server_options *o, vkllm_model *const *models, uint32_t n_models, volatile sig_atomic_t *stop);

#endif
