/* Fault injection for the failure-path tests: VKLLM_FAIL_INJECT names Vulkan calls of a device that fail as
 * a real device would fail them, so out-of-memory, device-lost and hung-GPU paths run on any machine.  Always
 * compiled in and inert unless the variable is set (one relaxed atomic increment per guarded call: the calls are
 * counted either way).
 *
 *   VKLLM_FAIL_INJECT=KIND:N[,KIND:N...]   counts from the device's creation, N >= 1
 *     alloc:N    the N-th vkAllocateMemory reports VK_ERROR_OUT_OF_DEVICE_MEMORY (that one only: an
 *                allocation that does not fit, the device stays usable)
 *     submit:N   the N-th vkQueueSubmit and every later one report VK_ERROR_DEVICE_LOST (a lost device stays
 *                lost); nothing is submitted
 *     timeout:N  the N-th fence wait reports VK_TIMEOUT at once (the work still runs; a later wait collects it)
 *
 * Read once per device, at vkr_device_create; a malformed value fails the creation naming it. */
#ifndef VKLLM_RUNTIME_FAULT_H
#define VKLLM_RUNTIME_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef enum vkr_fault_kind { VKR_FAULT_ALLOC = 0, VKR_FAULT_SUBMIT, VKR_FAULT_TIMEOUT, VKR_FAULT_KIND_COUNT } vkr_fault_kind;

typedef struct vkr_faults {
    uint64_t at[VKR_FAULT_KIND_COUNT];          /* the call that fails, 1-based; 0: never */
    _Atomic uint64_t calls[VKR_FAULT_KIND_COUNT]; /* guarded calls made so far */
} vkr_faults;

/* Parses spec (NULL or "": no faults) into *faults, counts zeroed.  Errors name the variable and the entry. */
vkllm_status vkr_faults_parse(const char *spec, vkr_faults *faults);
/* Arms a fault from now on: the n-th call of this kind after this one fails (n >= 1; 0 disarms), as the
 * variable would have.  For tests that reach a state (a loaded model) before the failure they exercise. */
void vkr_faults_arm(vkr_faults *faults, vkr_fault_kind kind, uint64_t n);
/* Counts one call of this kind; true when it is to fail. */
bool vkr_fault_fires(vkr_faults *faults, vkr_fault_kind kind);

#endif
