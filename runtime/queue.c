/* Queue submissions and fence waits.  Every submission is counted (vkr_submit_count), and a wait never blocks
 * for ever: past the timeout it fails with a message naming the work it waited for and how long ago that
 * work was submitted, so a hung GPU (or a shader that never ends) becomes an error the caller sees, not a
 * process that prints nothing. */
#include <stdlib.h>

#include "device_internal.h"
#include "queue.h"
#include "log.h"

/* Far above any single submission of a forward pass on a GPU, yet short enough that a hang is reported
 * while someone is still watching. */
#define DEFAULT_TIMEOUT_MS 60000ull
/* Software drivers (lavapipe) run the same work one or two orders of magnitude slower, on shared cores. */
#define DEFAULT_TIMEOUT_CPU_MS 600000ull

/* Lavapipe without worker threads (cpu_threads 1) computes in its queue's one thread, which leaves a core free:
 * a wait polls the fence for up to this long before it sleeps, because waking a sleeping thread costs tens of
 * microseconds on a virtual machine, a good part of a small model's pass (docs/performance.md).  With workers
 * every core computes and polling would take one from them (measured: llama-134m decoding a third slower). */
#define SPIN_WAIT_CPU_S 2e-3

/* Polling devices (above) with work submitted and not yet waited for, process-wide.  Several such devices computing
 * at once (replicas of a model, one per core: docs/serving.md) each keep a queue thread busy, so a wait polls only
 * while its device is the only one computing: a poller beside another device's work takes the core that work runs
 * on (measured: two replicas of stories260K serving 16 requests at half the rate when they polled).  A device counts
 * from a submission to the end of a wait on it; with several submissions in flight it may stop counting early,
 * which at worst lets a wait poll. */
static atomic_uint computing_devices;

static void computing_begin(vkr_device *dev)
{
    if (dev->spin_wait_s > 0 && !atomic_exchange(&dev->computing, true)) atomic_fetch_add(&computing_devices, 1u);
}

uint32_t vkr_polling_devices_computing(void) { return atomic_load(&computing_devices); }

void vkr_queue_computing_end(vkr_device *dev)
{
    if (atomic_exchange(&dev->computing, false)) atomic_fetch_sub(&computing_devices, 1u);
}

vkllm_status vkr_queue_init(vkr_device *dev)
{
    uint64_t ms = dev->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU ? DEFAULT_TIMEOUT_CPU_MS : DEFAULT_TIMEOUT_MS;
    const char *v = getenv("VKLLM_FENCE_TIMEOUT_MS");
    if (v && *v) {
        uint64_t parsed = 0;
        if (!vkr_parse_decimal(v, UINT64_MAX / 1000000, &parsed) || parsed == 0)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                              "VKLLM_FENCE_TIMEOUT_MS='%s' is not a positive number of milliseconds", v);
        ms = parsed;
    }
    dev->fence_timeout_ns = dev->fence_timeout_default_ns = ms * 1000000;
    dev->spin_wait_s = dev->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU && dev->cpu_threads == 1 ? SPIN_WAIT_CPU_S : 0;
    return VKLLM_OK;
}

void vkr_set_fence_timeout(vkr_device *dev, uint64_t ms)
{
    if (ms > UINT64_MAX / 1000000) ms = UINT64_MAX / 1000000;
    dev->fence_timeout_ns = ms ? ms * 1000000 : dev->fence_timeout_default_ns;
}

uint64_t vkr_submit_count(const vkr_device *dev) { return atomic_load(&((vkr_device *)dev)->submits); }

double vkr_fence_spin_seconds(const vkr_device *dev) { return dev->spin_wait_s; }

/* A host's queue without lock callbacks: one mutex for every runtime device on a borrowed queue, so that two
 * models sharing it never submit at once (the host itself must not use the queue during a vkllm call then). */
static pthread_mutex_t borrowed_queue_lock = PTHREAD_MUTEX_INITIALIZER;

static VkResult queue_submit(vkr_device *dev, const VkSubmitInfo *submit, VkFence fence)
{
    if (!dev->borrowed) return vkQueueSubmit(dev->queue, 1, submit, fence);
    if (dev->queue_lock) dev->queue_lock(dev->queue_lock_user);
    else pthread_mutex_lock(&borrowed_queue_lock);
    VkResult r = vkQueueSubmit(dev->queue, 1, submit, fence);
    if (dev->queue_lock) dev->queue_unlock(dev->queue_lock_user);
    else pthread_mutex_unlock(&borrowed_queue_lock);
    return r;
}

vkllm_status vkr_queue_submit(vkr_device *dev, VkCommandBuffer cmd, VkFence fence, const char *what)
{
    return vkr_queue_submit_signal(dev, cmd, fence, VK_NULL_HANDLE, 0, what);
}

vkllm_status vkr_queue_submit_signal(vkr_device *dev, VkCommandBuffer cmd, VkFence fence, VkSemaphore timeline,
                                     uint64_t value, const char *what)
{
    VkTimelineSemaphoreSubmitInfo values = {.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO,
                                            .signalSemaphoreValueCount = 1, .pSignalSemaphoreValues = &value};
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .pNext = timeline ? &values : NULL,
                           .commandBufferCount = 1, .pCommandBuffers = &cmd,
                           .signalSemaphoreCount = timeline ? 1 : 0, .pSignalSemaphores = &timeline};
    VkResult r = vkr_fault_fires(&dev->faults, VKR_FAULT_SUBMIT) ? VK_ERROR_DEVICE_LOST
                                                                 : queue_submit(dev, &submit, fence);
    if (r == VK_ERROR_DEVICE_LOST)
        return vkllm_fail(VKLLM_ERROR_VULKAN, "submitting %s: the device '%s' was lost (VK_ERROR_DEVICE_LOST): an "
                          "earlier submission hung or faulted the GPU", what, dev->caps.name);
    if (r != VK_SUCCESS)
        return vkllm_fail(r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? VKLLM_ERROR_OUT_OF_DEVICE_MEMORY : VKLLM_ERROR_VULKAN,
                          "vkQueueSubmit of %s failed with %s", what, vkr_result_name(r));
    atomic_fetch_add(&dev->submits, 1);
    computing_begin(dev);
    vkllm_log(VKLLM_LOG_DEBUG, "submit %s", what);
    return VKLLM_OK;
}

vkllm_status vkr_queue_drain(vkr_device *dev, const char *what)
{
    VkFenceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence fence;
    VKR_CHECK(vkCreateFence(dev->device, &info, NULL, &fence));
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO}; /* no work: only its place in the queue */
    pthread_mutex_lock(&dev->lock);
    double at = vkllm_log_clock();
    VkResult r = queue_submit(dev, &submit, fence);
    if (r == VK_SUCCESS) computing_begin(dev);
    pthread_mutex_unlock(&dev->lock);
    vkllm_status st = r == VK_SUCCESS ? vkr_fence_wait(dev, fence, at, what)
                                      : vkllm_fail(VKLLM_ERROR_VULKAN, "vkQueueSubmit of %s failed with %s", what,
                                                   vkr_result_name(r));
    vkDestroyFence(dev->device, fence, NULL);
    return st;
}

vkllm_status vkr_fence_wait(vkr_device *dev, VkFence fence, double submitted_at, const char *what)
{
    double begin = vkllm_log_clock();
    VkResult r = vkr_fault_fires(&dev->faults, VKR_FAULT_TIMEOUT) ? VK_TIMEOUT : VK_NOT_READY;
    while (r == VK_NOT_READY && dev->spin_wait_s > 0 && atomic_load(&computing_devices) <= 1u &&
           vkllm_log_clock() - begin < dev->spin_wait_s)
        r = vkGetFenceStatus(dev->device, fence);
    if (r == VK_NOT_READY) r = vkWaitForFences(dev->device, 1, &fence, VK_TRUE, dev->fence_timeout_ns);
    vkr_queue_computing_end(dev);
    double end = vkllm_log_clock();
    if (r == VK_SUCCESS) {
        vkllm_log(VKLLM_LOG_DEBUG, "done %s: waited %.3f ms, %.3f ms after its submit", what, 1e3 * (end - begin),
                  1e3 * (end - submitted_at));
        return VKLLM_OK;
    }
    if (r == VK_TIMEOUT)
        return vkllm_fail(VKLLM_ERROR_VULKAN, "%s has not finished %.3f s after its submission (the fence wait gave up "
                          "after %.3f s; VKLLM_FENCE_TIMEOUT_MS sets that limit): the GPU '%s' may be hung, e.g. by a "
                          "shader that never ends", what, end - submitted_at, end - begin, dev->caps.name);
    if (r == VK_ERROR_DEVICE_LOST)
        return vkllm_fail(VKLLM_ERROR_VULKAN, "the device '%s' was lost (VK_ERROR_DEVICE_LOST) while waiting for %s, "
                          "%.1f s after its submission: the GPU hung or faulted, e.g. a shader that never ends or "
                          "accesses memory out of bounds", dev->caps.name, what, end - submitted_at);
    return vkllm_fail(VKLLM_ERROR_VULKAN, "waiting for %s failed with %s (%d), %.1f s after its submission", what,
                      vkr_result_name(r), (int)r, end - submitted_at);
}
