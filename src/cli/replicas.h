/* Replicas of a model for vkllm serve and vkllm bench --parallel (docs/serving.md "Replicas"): the same file loaded
 * several times, each copy on a device of its own with its own scheduler and thread. */
#ifndef VKLLM_CLI_REPLICAS_H
#define VKLLM_CLI_REPLICAS_H

#include <stdint.h>

#include "vkllm.h"

#define CLI_MAX_REPLICAS 16u

/* The replicas to run when not told: on a CPU device that computes the model in one thread (lavapipe without
 * worker threads, the automatic choice for small models, whose copies cost little memory) one per core, at most one
 * per running request (parallel); else one. */
uint32_t cli_auto_replicas(const vkllm_model_info *info, uint32_t parallel, long online_cpus);

/* Loads path `requested` times (0: cli_auto_replicas of the first copy, for parallel requests, over the cores of the
 * process's CPU affinity) into models[0..*n);
 * on failure every copy loaded is freed again and *n is 0. */
vkllm_status cli_load_replicas(const char *path, const vkllm_model_params *params, uint32_t requested,
                               uint32_t parallel, vkllm_model *models[CLI_MAX_REPLICAS], uint32_t *n);
void cli_free_replicas(vkllm_model *const *models, uint32_t n);

#endif
