/* Queue submissions and fence waits (queue.c): every submit is counted, every wait has a timeout and names what
 * it waited for ("what") in its error.  Runtime-internal (memory.c's one-shot transfers, commands.c). */
#ifndef VKLLM_RUNTIME_QUEUE_H
#define VKLLM_RUNTIME_QUEUE_H

#include "device_internal.h"

vkllm_status vkr_queue_init(vkr_device *dev); /* reads VKLLM_FENCE_TIMEOUT_MS */
/* The caller holds dev->lock (the queue must be externally synchronized). */
vkllm_status vkr_queue_submit(vkr_device *dev, VkCommandBuffer cmd, VkFence fence, const char *what);
/* The same, also signalling timeline to value (timeline VK_NULL_HANDLE: none). */
vkllm_status vkr_queue_submit_signal(vkr_device *dev, VkCommandBuffer cmd, VkFence fence, VkSemaphore timeline,
                                     uint64_t value, const char *what);
/* An empty submission, waited for: every earlier submission to the queue is then done with on the host too.  A
 * fence's signal says the work completed, but Mesa's emulated timelines (lavapipe 22.3) still touch a submission's
 * semaphores in the queue thread after it; so an object such a submission signalled is destroyed only after this.
 * Takes dev->lock itself. */
vkllm_status vkr_queue_drain(vkr_device *dev, const char *what);
/* The device no longer counts as computing for other devices' fence waits (queue.c): after a wait, and when it
 * closes. */
void vkr_queue_computing_end(vkr_device *dev);
/* submitted_at: vkllm_log_clock() at the submission, for the elapsed time an error reports. */
vkllm_status vkr_fence_wait(vkr_device *dev, VkFence fence, double submitted_at, const char *what);

#endif
