#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

static vkr_device *device;
static ops_context *ops;

vkr_device *th_device(void)
{
    if (!device) {
        vkllm_status st = vkr_device_create(&device);
        if (st != VKLLM_OK) fail_msg("vkr_device_create: %s: %s", vkllm_status_name(st), vkllm_last_error());
        st = ops_create(device, &ops);
        if (st != VKLLM_OK) fail_msg("ops_create: %s", vkllm_last_error());
        /* The _sg16 runs (tests/CMakeLists.txt) mean nothing if lavapipe ignored LP_NATIVE_VECTOR_WIDTH. */
        const char *want = getenv("VKLLM_TEST_LAVAPIPE_SUBGROUP");
        const vkr_caps *caps = vkr_device_caps(device);
        if (want && caps->vendor == VKR_VENDOR_MESA_CPU && caps->subgroup_size != (uint32_t)atoi(want))
            fail_msg("lavapipe runs subgroups of %u, the test asks for %s (LP_NATIVE_VECTOR_WIDTH)",
                     caps->subgroup_size, want);
    }
    return device;
}

ops_context *th_ops(void)
{
    th_device();
    return ops;
}

static uint32_t destroy_device(void)
{
    uint32_t errors = 0;
    if (device) {
        errors = vkr_device_validation_errors(device);
        ops_free(ops);
        vkr_device_destroy(device);
        device = NULL;
        ops = NULL;
    }
    return errors;
}

void th_reset_device(void)
{
    uint32_t errors = destroy_device();
    if (errors) fail_msg("%u Vulkan validation errors", errors);
    th_device();
}

bool th_subgroup_rerun(void) { return getenv("VKLLM_TEST_LAVAPIPE_SUBGROUP") != NULL; }

void th_skip_on_subgroup_rerun(const char *why)
{
    if (!th_subgroup_rerun()) return;
    printf("  skipped on the subgroup-size rerun: %s\n", why);
    skip();
}

void th_disable_subgroups(bool disable)
{
    if (disable) setenv("VKLLM_DISABLE_SUBGROUP", "1", 1);
    else unsetenv("VKLLM_DISABLE_SUBGROUP");
    th_reset_device();
    if (disable && vkr_device_caps(device)->subgroup_arithmetic)
        fail_msg("VKLLM_DISABLE_SUBGROUP=1 left subgroup arithmetic on");
}

/* Errors the group teardown found: cmocka prints a failed teardown but leaves it out of the count it returns, so
 * th_run adds it (else a test program whose only failure is validation errors would exit 0). */
static uint32_t teardown_errors;

static int group_teardown(void **state)
{
    uint32_t errors = destroy_device();
    if (errors) {
        fprintf(stderr, "FAIL: %u Vulkan validation errors\n", errors);
        teardown_errors = errors;
        return -1;
    }
    return 0;
}

int th_run(const char *group, const struct CMUnitTest *tests, size_t count)
{
    const char *filter = getenv("TH_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    int failed = _cmocka_run_group_tests(group, tests, count, NULL, group_teardown);
    return failed ? failed : teardown_errors ? 1 : 0;
}

uint64_t th_next(th_rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float th_uniform(th_rng *rng, float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(th_next(rng) >> 11) / 9007199254740992.0);
}

float th_normal(th_rng *rng)
{
    double u1 = ((double)(th_next(rng) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(th_next(rng) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void th_fill_uniform(th_rng *rng, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = th_uniform(rng, lo, hi);
}

void th_check_status(vkllm_status status, const char *what)
{
    if (status != VKLLM_OK) fail_msg("%s: %s: %s", what, vkllm_status_name(status), vkllm_last_error());
}

vkllm_model *th_load_model(const char *path)
{
    vkllm_model *m = NULL;
    th_check_status(vkllm_model_load(path, &m), path);
    return m;
}

void th_free_model(vkllm_model *m)
{
    uint32_t errors = vkr_device_validation_errors(m->dev);
    vkllm_model_free(m);
    if (errors) fail_msg("%u Vulkan validation errors", errors);
}

vkr_sequence *th_begin(void)
{
    vkr_sequence *seq;
    th_check_status(vkr_sequence_create(th_device(), &seq), "vkr_sequence_create");
    th_check_status(vkr_sequence_begin(seq), "vkr_sequence_begin");
    return seq;
}

void th_end_and_free(vkr_sequence *seq)
{
    th_check_status(vkr_sequence_end(seq), "vkr_sequence_end");
    vkr_sequence_destroy(seq);
}

vkr_buffer th_alloc(size_t bytes)
{
    vkr_buffer b;
    th_check_status(vkr_buffer_alloc(th_device(), bytes ? bytes : 4, VKR_MEMORY_DEVICE, &b), "vkr_buffer_alloc");
    return b;
}

vkr_buffer th_upload(const void *data, size_t bytes)
{
    vkr_buffer b = th_alloc(bytes);
    th_check_status(vkr_upload(th_device(), &b, 0, data, bytes), "vkr_upload");
    return b;
}

void th_download(const vkr_buffer *buffer, void *data, size_t bytes)
{
    th_check_status(vkr_download(th_device(), buffer, 0, data, bytes), "vkr_download");
}

void th_free(vkr_buffer *buffer) { vkr_buffer_free(th_device(), buffer); }

double th_nmse(const float *ref, const float *got, size_t n)
{
    double err = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(ref[i]) || isinf(got[i]) != isinf(ref[i])) return INFINITY;
        if (isinf(ref[i])) {
            if (ref[i] != got[i]) return INFINITY;
            continue;
        }
        double d = (double)ref[i] - (double)got[i];
        err += d * d;
        norm += (double)ref[i] * (double)ref[i];
    }
    return norm > 0 ? err / norm : err;
}

void th_assert_nmse(const char *what, const float *ref, const float *got, size_t n, double bound)
{
    double e = th_nmse(ref, got, n);
    if (!(e <= bound)) {
        for (size_t i = 0, shown = 0; i < n && shown < 8; i++)
            if (ref[i] != got[i]) {
                fprintf(stderr, "  [%zu] ref %.7g got %.7g\n", i, (double)ref[i], (double)got[i]);
                shown++;
            }
        fail_msg("%s: nmse %.3g above %.3g", what, e, bound);
    }
}

int th_text_append(const char *piece, size_t len, void *user)
{
    th_text *t = user;
    if (t->len + len >= sizeof t->buf) return 0;
    memcpy(t->buf + t->len, piece, len);
    t->len += len;
    t->buf[t->len] = '\0';
    return 1;
}
