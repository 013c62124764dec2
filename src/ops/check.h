/* Shape checks shared by the ops: a range must hold what the op will touch. */
#ifndef VKLLM_OPS_CHECK_H
#define VKLLM_OPS_CHECK_H

#include "runtime/memory.h"

/* VKLLM_ERROR_INVALID_ARGUMENT naming op and operand if r holds fewer than bytes. */
vkllm_status ops_check_bytes(const char *op, const char *operand, vkr_range r, uint64_t bytes);

/* The first bytes of r (after ops_check_bytes): ops bind only what the shape touches, so a tensor inside a
 * larger buffer binds within maxStorageBufferRange and barriers see the true extent. */
static inline vkr_range ops_head(vkr_range r, uint64_t bytes) { return (vkr_range){r.buffer, r.offset, bytes}; }

/* VKLLM_ERROR_INVALID_ARGUMENT naming op if a row of cols walked by wg invocations needs more than 65,535
 * iterations per invocation: lavapipe silently cuts loops there. */
vkllm_status ops_check_row_loop(const char *op, uint32_t cols, uint32_t wg);

/* VKLLM_ERROR_INVALID_ARGUMENT naming op unless RoPE's freq_base is finite and > 0 and freq_scale finite. */
vkllm_status ops_check_rope_freq(const char *op, float freq_base, float freq_scale);

#endif
