/* Replicas of a model (replicas.h). */
#define _GNU_SOURCE /* sched_getaffinity */
#include "replicas.h"

#include <sched.h>
#include <unistd.h>

/* The cores this process may run on: its affinity mask (a container's cpuset), else the online ones. */
static long usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    return sysconf(_SC_NPROCESSORS_ONLN);
}

uint32_t cli_auto_replicas(const vkllm_model_info *info, uint32_t parallel, long online_cpus)
{
    if (info->cpu_threads != 1 || online_cpus < 2) return 1;
    uint32_t n = online_cpus < (long)CLI_MAX_REPLICAS ? (uint32_t)online_cpus : CLI_MAX_REPLICAS;
    return n < parallel ? n : parallel ? parallel : 1;
}

vkllm_status cli_load_replicas(const char *path, const vkllm_model_params *params, uint32_t requested,
                               uint32_t parallel, vkllm_model *models[CLI_MAX_REPLICAS], uint32_t *n)
{
    *n = 0;
    if (requested > CLI_MAX_REPLICAS) requested = CLI_MAX_REPLICAS; /* the option parsers bound it already */
    vkllm_status st = vkllm_model_load_params(path, params, &models[0]);
    if (st != VKLLM_OK) return st;
    uint32_t want = requested;
    if (!want) {
        vkllm_model_info info;
        vkllm_model_get_info(models[0], &info);
        want = cli_auto_replicas(&info, parallel, usable_cpus());
    }
    uint32_t loaded = 1;
    for (; loaded < want && st == VKLLM_OK; loaded++) st = vkllm_model_load_params(path, params, &models[loaded]);
    if (st != VKLLM_OK) {
        cli_free_replicas(models, loaded - 1);
        return st;
    }
    *n = loaded;
    return VKLLM_OK;
}

void cli_free_replicas(vkllm_model *const *models, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) vkllm_model_free(models[i]);
}
