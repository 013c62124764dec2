/* vkr_device_create / vkr_device_destroy: the one place that assembles a device from its parts, in the runtime's
 * order (device_internal.h): the device itself, its queue, memory, shader checks and pipeline cache. */
#include <stdlib.h>

#include "device_internal.h"
#include "pipeline.h"
#include "queue.h"
#include "shader_checks.h"

vkllm_status vkr_device_create(vkr_device **out) { return vkr_device_create_with(NULL, out); }

vkllm_status vkr_device_create_with(const vkr_device_options *options, vkr_device **out)
{
    *out = NULL;
    vkr_device *dev = calloc(1, sizeof *dev);
    if (!dev) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "allocating the device");
    pthread_mutex_init(&dev->lock, NULL);
    atomic_init(&dev->validation_errors, 0);
    vkllm_status st = vkr_faults_parse(getenv("VKLLM_FAIL_INJECT"), &dev->faults);
    if (st == VKLLM_OK) st = vkr_device_open(dev, options);
    if (st == VKLLM_OK) st = vkr_queue_init(dev);
    if (st == VKLLM_OK) st = vkr_memory_init(dev);
    if (st == VKLLM_OK) st = vkr_shader_checks_init(dev);
    if (st == VKLLM_OK) st = vkr_pipeline_cache_open(dev);
    if (st != VKLLM_OK) {
        vkr_device_destroy(dev);
        vkr_device_restore_live();
        return st;
    }
    vkr_device_set_live(dev);
    *out = dev;
    return VKLLM_OK;
}

void vkr_device_destroy(vkr_device *dev)
{
    if (!dev) return;
    if (dev->device) {
        /* A host's device runs the host's work too (and vkDeviceWaitIdle would need every one of its queues
         * locked): each sequence and transfer of the runtime's own was waited for by its owner. */
        if (!dev->borrowed) vkDeviceWaitIdle(dev->device);
        vkr_pipelines_destroy(dev);
        vkr_shader_checks_destroy(dev);
        vkr_memory_destroy(dev);
    }
    vkr_device_close(dev);
    pthread_mutex_destroy(&dev->lock);
    free(dev);
}
