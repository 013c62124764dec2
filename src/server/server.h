/* vkllm serve: an OpenAI-compatible HTTP server over the scheduler (docs/serving.md). */
#ifndef VKLLM_SERVER_H
#define VKLLM_SERVER_H

#include <signal.h>
#include <stdint.h>

#include "vkllm.h"

/* Replicas of the model a server may run (each a load of its own: weights, KV cache, device). */
#define SERVER_MAX_REPLICAS 16

/* The replicas a server runs when not told (docs/serving.md "Replicas"): on a CPU device that computes a model in one
 * thread (lavapipe without worker threads, the automatic choice for small models) one per core, at most one per
 * running request; else one.  The replicas' memory is that of such small models. */
static inline uint32_t server_auto_replicas(const vkllm_model_info *info, uint32_t parallel, long online_cpus)
{
    if (info->cpu_threads != 1 || online_cpus < 2) return 1;
    uint32_t n = online_cpus < SERVER_MAX_REPLICAS ? (uint32_t)online_cpus : SERVER_MAX_REPLICAS;
    return n < parallel ? n : parallel ? parallel : 1;
}

typedef struct server_options {
    const char *model_path;
    const char *host;          /* IPv4 address to bind; default 127.0.0.1 */
    uint16_t port;             /* 0: any free port (printed) */
    uint32_t parallel;         /* requests running at once (over all replicas) */
    uint32_t replicas;         /* copies of the model, each with its own scheduler and thread; 0: server_auto_replicas */
    uint32_t n_ctx;            /* positions per request; 0: the model's (at most 4096) */
    uint32_t n_kv_pages;       /* over all replicas; 0: parallel full contexts */
    vkllm_kv_type type_k, type_v;
    int no_rotate_k;
    int no_center_k;
    const char *api_key;       /* NULL: none asked */
    const char *chat_template; /* NULL: the model's */
    const char *device;
    int cpu_threads;           /* vkllm_model_params.cpu_threads (-1: automatic) */
    uint32_t max_waiting;      /* 0: 64 x parallel */
    uint32_t default_max_tokens;  /* max_tokens when a request names none */
    int no_prefix_cache;
} server_options;

/* Serves until *stop becomes nonzero (SIGINT/SIGTERM), then stops accepting, lets running requests finish for a
 * few seconds, cancels the rest and returns 0; 1 if it could not start (message printed). */
int server_run(const server_options *o, volatile sig_atomic_t *stop);

#endif
