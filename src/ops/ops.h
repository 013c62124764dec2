/* Ops: the compute kernels of a forward pass, recorded into a vkr_sequence.  Each op checks its shapes,
 * picks its pipeline (shader variant + specialization constants from the tuning table) and records one or
 * a few dispatches.  Tensors are vkr_ranges of row-major data; shapes are passed explicitly.  Every op has
 * a plain-C reference in tests/ and is checked against it by tests/test_ops_*.c. */
#ifndef VKLLM_OPS_H
#define VKLLM_OPS_H

#include <stdint.h>

#include "runtime/commands.h"
#include "tuning.h"

typedef struct ops_context {
    vkr_device *dev;
    const vkr_caps *caps;
    const op_tuning *tuning;
} ops_context;

vkllm_status ops_create(vkr_device *dev, ops_context **out);
void ops_free(ops_context *ops);

/* Looks up (creating once) the pipeline of a shader variant; id 0 of spec is local_size_x. */
vkllm_status ops_pipeline(ops_context *ops, const char *shader, uint32_t n_bindings, uint32_t readonly_mask,
                          uint32_t push_size, const uint32_t *spec, uint32_t n_spec, const vkr_pipeline **out);

/* Element-wise, F32.  out[i] = a[i] (+|*) b[i % b_len]; b_len divides n (b_len == n: same shape; b_len ==
 * row length: a row broadcast, e.g. a bias).  out may alias a. */
typedef enum ops_binary { OPS_ADD, OPS_MUL } ops_binary;
vkllm_status ops_binary_f32(ops_context *ops, vkr_sequence *seq, ops_binary op, vkr_range a, vkr_range b,
                            vkr_range out, uint32_t n, uint32_t b_len);
/* out[i] = a[i] * scale */
vkllm_status ops_scale_f32(ops_context *ops, vkr_sequence *seq, vkr_range a, vkr_range out, uint32_t n,
                           float scale);

#endif
