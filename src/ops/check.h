/* Shape checks shared by the ops: a range must hold what the op will touch. */
#ifndef VKLLM_OPS_CHECK_H
#define VKLLM_OPS_CHECK_H

#include "runtime/memory.h"

/* VKLLM_ERROR_INVALID_ARGUMENT naming op and operand if r holds fewer than bytes. */
vkllm_status ops_check_bytes(const char *op, const char *operand, vkr_range r, uint64_t bytes);

#endif
