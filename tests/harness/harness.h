/* Test harness: one Vulkan device per test program (validation layer on under CTest; any validation error
 * fails the program), deterministic random data, buffer helpers, and an op checker in the spirit of ggml's
 * test-backend-ops: an op is a few lines (sizes, a C reference, a record function) and runs at many shapes
 * against its reference with a normalized-error bound. */
#ifndef VKLLM_TEST_HARNESS_H
#define VKLLM_TEST_HARNESS_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ops/ops.h"
#include "runtime/commands.h"
#include "vkllm.h"

/* Runs the tests with a group teardown that destroys the device and fails on validation errors.  With
 * TH_TEST_FILTER set (a cmocka pattern, e.g. "test_small_*") only the matching tests run: for iterating on one
 * test of a long program. */
int th_run(const char *group, const struct CMUnitTest *tests, size_t count);
#define TH_RUN(group, tests) th_run(group, tests, sizeof(tests) / sizeof((tests)[0]))

vkr_device *th_device(void);   /* created on first use; fails the test if none */
ops_context *th_ops(void);
/* Destroys and recreates the device (after changing VKLLM_DISABLE_* in the environment). */
void th_reset_device(void);
/* Sets or clears VKLLM_DISABLE_SUBGROUP and recreates the device, so ops take their shared-memory variants
 * (disable) or the device's default again; fails the test if the device still reports subgroup arithmetic
 * after disabling it. */
void th_disable_subgroups(bool disable);
/* The _sg16 rerun of an op test (tests/CMakeLists.txt sets VKLLM_TEST_LAVAPIPE_SUBGROUP=16) is for shaders that
 * use subgroup operations: a path without any gives the same result at every subgroup size, and lavapipe's cold
 * compile of its 16-wide variants is the larger part of CI's time.  th_subgroup_rerun says whether this is that
 * run (matmul_check.h says which checks skip themselves there). */
bool th_subgroup_rerun(void);
/* On that rerun, ends the calling test as skipped (cmocka's skip()), saying why: its shaders use no subgroup
 * operations, or what they do at subgroups of 16 another check covers. */
void th_skip_on_subgroup_rerun(const char *why);

/* Reproducible random numbers (splitmix64). */
typedef struct th_rng {
    uint64_t state;
} th_rng;
uint64_t th_next(th_rng *rng);
float th_uniform(th_rng *rng, float lo, float hi);
float th_normal(th_rng *rng);
void th_fill_uniform(th_rng *rng, float *x, size_t n, float lo, float hi);

/* Device buffers; failures fail the test. */
vkr_buffer th_alloc(size_t bytes);
vkr_buffer th_upload(const void *data, size_t bytes);
void th_download(const vkr_buffer *buffer, void *data, size_t bytes);
void th_free(vkr_buffer *buffer);
/* Generated text collected by a vkllm_piece_fn (NUL-terminated; stops the generation when full). */
typedef struct th_text {
    char buf[8192];
    size_t len;
} th_text;
int th_text_append(const char *piece, size_t len, void *user);

/* Fails the test with the status name and message unless status is VKLLM_OK. */
void th_check_status(vkllm_status status, const char *what);
/* A model through the public API (a failure fails the test); freeing it fails the test if its device, under the
 * validation layer in CTest, saw any validation error. */
vkllm_model *th_load_model(const char *path);
void th_free_model(vkllm_model *model);
/* A new sequence, recording; th_end_and_free ends the recording without running it and destroys it. */
vkr_sequence *th_begin(void);
void th_end_and_free(vkr_sequence *seq);

/* sum (ref-got)^2 / sum ref^2 (or the plain sum when ref is all zero); NaN anywhere gives INFINITY. */
double th_nmse(const float *ref, const float *got, size_t n);
void th_assert_nmse(const char *what, const float *ref, const float *got, size_t n, double bound);

/* ---- op checker ---- */
typedef enum th_dtype { TH_F32, TH_F16, TH_I32 } th_dtype;

/* Generic shape: dims and float parameters mean what the op says. */
typedef struct th_shape {
    uint32_t d[6];
    float f[4];
    int flag;
} th_shape;

#define TH_MAX_INPUTS 4

typedef struct th_op {
    const char *name;
    double max_nmse;
    uint32_t n_inputs;
    th_dtype input_type[TH_MAX_INPUTS];
    th_dtype output_type;
    /* Element counts of the inputs and of the output at this shape. */
    void (*sizes)(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out);
    /* Optional: fills input i (count n, in its dtype); default: F32/F16 uniform in [-1, 1], I32 zero. */
    void (*init)(const th_shape *s, uint32_t i, void *data, size_t n, th_rng *rng);
    /* Reference on the CPU; inputs in their dtype; output as float (I32 outputs as exact floats). */
    void (*reference)(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out);
    /* Records the op. */
    vkllm_status (*record)(ops_context *ops, vkr_sequence *seq, const th_shape *s,
                           const vkr_range in[TH_MAX_INPUTS], vkr_range out);
} th_op;

/* Runs op at every shape; prints "name shape: nmse" and fails on a bound miss. */
void th_check_op(const th_op *op, const th_shape *shapes, size_t n_shapes);

/* th_check_op with the tuning's workgroup sizes (elementwise_wg, row_wg) set to wg for the call: exercises
 * workgroup shapes the device's own tuning does not pick (several subgroups, sizes not powers of two). */
void th_check_op_wg(const th_op *op, const th_shape *shapes, size_t n_shapes, uint32_t wg);

/* Half-precision helpers (in a separate object, linked when used). */
void th_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void th_f16_to_f32(const uint16_t *src, float *dst, size_t n);

#endif
