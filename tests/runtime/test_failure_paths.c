/* Clean failure paths (issue 10), through the runtime's fault injection (runtime/fault.h): the device runs out of
 * memory at each allocation of a model's load and of a context's creation (the KV cache), the device is lost at
 * a submission, a fence wait times out.  Each returns its status with a message, leaks no Vulkan object (the
 * validation layer's object tracker reports every object alive at vkDestroyDevice / vkDestroyInstance as an
 * error, counted by vkr_validation_errors_total), and the model stays usable where that is possible. */
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "model/model.h"
#include "paths.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")
/* llama2.c's greedy continuation of "Once upon a time" with stories260K (as test_model checks at length). */
#define STORIES_START "Once upon a time, there was a little girl named Lily."

typedef struct text {
    char buf[4096];
    size_t len;
} text;

static int append(const char *piece, size_t len, void *user)
{
    text *t = user;
    if (t->len + len >= sizeof t->buf) return 0;
    memcpy(t->buf + t->len, piece, len);
    t->len += len;
    t->buf[t->len] = '\0';
    return 1;
}

/* The model generates llama2.c's text: it is usable. */
static void expect_generates(vkllm_context *c)
{
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    text t = {.buf = "Once upon a time", .len = 16};
    th_check_status(vkllm_generate(c, "Once upon a time", 0, 12, &greedy, append, &t, NULL), "generate");
    if (strncmp(t.buf, STORIES_START, strlen(STORIES_START)) != 0) fail_msg("generated '%s'", t.buf);
}

static vkllm_model *load(void)
{
    vkllm_model *m = NULL;
    th_check_status(vkllm_model_load(STORIES, &m), "load stories260K");
    return m;
}

/* Frees the model (its device with it) and fails on any validation error reported since `errors_before`,
 * leaked objects at vkDestroyDevice / vkDestroyInstance included. */
static void free_and_check_leaks(vkllm_model *m, uint32_t errors_before)
{
    vkllm_model_free(m);
    uint32_t errors = vkr_validation_errors_total() - errors_before;
    if (errors) fail_msg("%u validation errors (leaked Vulkan objects are reported at destruction)", errors);
}

static void expect_message(const char *what, const char *needle)
{
    if (!strstr(vkllm_last_error(), needle)) fail_msg("%s: '%s' lacks '%s'", what, vkllm_last_error(), needle);
}

/* Every allocation of a load fails in turn (as on a device too small for the model): the load returns
 * VKLLM_ERROR_OUT_OF_DEVICE_MEMORY naming the allocation and the tensor, no model, nothing leaked. */
static void test_out_of_memory_at_each_allocation_of_the_load(void **state)
{
    vkllm_model *m = load();
    uint64_t allocations = vkr_device_fault_calls(m->dev, VKR_FAULT_ALLOC);
    vkllm_model_free(m);
    printf("  loading stories260K makes %llu device memory allocations\n", (unsigned long long)allocations);
    assert_true(allocations >= 2);
    uint32_t errors_before = vkr_validation_errors_total();
    for (uint64_t n = 1; n <= allocations; n++) {
        char spec[32];
        snprintf(spec, sizeof spec, "alloc:%llu", (unsigned long long)n);
        setenv("VKLLM_FAIL_INJECT", spec, 1);
        m = (vkllm_model *)(uintptr_t)1;
        vkllm_status st = vkllm_model_load(STORIES, &m);
        unsetenv("VKLLM_FAIL_INJECT");
        if (n == 1 || n == allocations) printf("  %s: %s: %s\n", spec, vkllm_status_name(st), vkllm_last_error());
        assert_int_equal(st, VKLLM_ERROR_OUT_OF_DEVICE_MEMORY);
        assert_null(m);
        expect_message(spec, "failed with VK_ERROR_OUT_OF_DEVICE_MEMORY");
    }
    uint32_t errors = vkr_validation_errors_total() - errors_before;
    if (errors) fail_msg("%u validation errors (leaked Vulkan objects are reported at destruction)", errors);
}

/* The KV cache and the buffers of a context do not fit: creation fails at its first, second, ... new memory block
 * (the blocks made before the failure stay with the device's allocator, so each attempt gets further), and
 * finally succeeds.  A failed creation gives back every buffer it took: the context that then succeeds grows
 * device memory exactly as much as one made without failures, and the model generates. */
static void test_out_of_memory_creating_a_context(void **state)
{
    uint32_t errors_before = vkr_validation_errors_total();
    vkllm_context_params p = vkllm_context_default_params();
    p.n_ctx = 2048;
    vkllm_model *m = load();
    uint64_t held = vkr_memory_in_use(m->dev, VKR_MEMORY_DEVICE);
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, &p, &c), "context");
    uint64_t growth_without_failures = vkr_memory_in_use(m->dev, VKR_MEMORY_DEVICE) - held;
    vkllm_context_free(c);
    vkllm_model_free(m);

    m = load();
    held = vkr_memory_in_use(m->dev, VKR_MEMORY_DEVICE);
    uint32_t failures = 0;
    for (uint64_t n = 1;; n++) {
        assert_true(n < 1000);
        vkr_device_inject_fault(m->dev, VKR_FAULT_ALLOC, n);
        c = (vkllm_context *)(uintptr_t)1;
        vkllm_status st = vkllm_context_create(m, &p, &c);
        vkr_device_inject_fault(m->dev, VKR_FAULT_ALLOC, 0);
        if (st == VKLLM_OK) break;
        if (n == 1) printf("  allocation %llu: %s: %s\n", (unsigned long long)n, vkllm_status_name(st), vkllm_last_error());
        assert_int_equal(st, VKLLM_ERROR_OUT_OF_DEVICE_MEMORY);
        assert_null(c);
        expect_message("context", "VK_ERROR_OUT_OF_DEVICE_MEMORY");
        failures++;
    }
    printf("  a context of 2048 positions failed at %u points before it fit\n", failures);
    assert_true(failures >= 1);
    assert_int_equal(vkr_memory_in_use(m->dev, VKR_MEMORY_DEVICE) - held, growth_without_failures);
    expect_generates(c);
    vkllm_context_free(c);
    free_and_check_leaks(m, errors_before);
}

/* The device is lost at a submission during the load, and in the middle of generation: the status is
 * VKLLM_ERROR_VULKAN with a message naming the lost device and the work, and freeing leaks nothing. */
static void test_device_lost(void **state)
{
    uint32_t errors_before = vkr_validation_errors_total();
    setenv("VKLLM_FAIL_INJECT", "submit:3", 1);
    vkllm_model *m = (vkllm_model *)(uintptr_t)1;
    vkllm_status st = vkllm_model_load(STORIES, &m);
    unsetenv("VKLLM_FAIL_INJECT");
    printf("  load: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    assert_int_equal(st, VKLLM_ERROR_VULKAN);
    assert_null(m);
    expect_message("load", "was lost (VK_ERROR_DEVICE_LOST)");

    m = load();
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, NULL, &c), "context");
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    vkr_device_inject_fault(m->dev, VKR_FAULT_SUBMIT, 3); /* the prompt's pass, then generation steps */
    text t = {0};
    st = vkllm_generate(c, "Once upon a time", 0, 16, &greedy, append, &t, NULL);
    printf("  generate: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    assert_int_equal(st, VKLLM_ERROR_VULKAN);
    expect_message("generate", "was lost (VK_ERROR_DEVICE_LOST)");
    expect_message("generate", "sequence 'forward of 1 tokens");
    /* A lost device stays lost: later work fails the same way instead of hanging or crashing. */
    assert_int_equal(vkllm_generate(c, "One day", 0, 4, &greedy, NULL, NULL, NULL), VKLLM_ERROR_VULKAN);
    vkllm_context_free(c);
    free_and_check_leaks(m, errors_before);
}

/* A fence wait that times out (forced, so it does on any device) names the recorded sequence and its last
 * dispatch; the work still finishes, a later call collects it, and the model goes on generating. */
static void test_fence_timeout_names_sequence_and_last_dispatch(void **state)
{
    uint32_t errors_before = vkr_validation_errors_total();
    vkllm_model *m = load();
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, NULL, &c), "context");
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    vkr_device_inject_fault(m->dev, VKR_FAULT_TIMEOUT, 1);
    vkllm_status st = vkllm_generate(c, "Once upon a time", 0, 8, &greedy, NULL, NULL, NULL);
    printf("  %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    assert_int_equal(st, VKLLM_ERROR_VULKAN);
    expect_message("timeout", "sequence 'forward of 5 tokens");
    expect_message("timeout", "dispatches from 'get_rows");
    expect_message("timeout", "' to '");
    expect_message("timeout", "has not finished");
    expect_message("timeout", "VKLLM_FENCE_TIMEOUT_MS");
    expect_generates(c);
    vkllm_context_free(c);
    free_and_check_leaks(m, errors_before);

    /* A timeout while the weights upload: the load fails naming the transfer, and the transfer still in flight
     * is waited for before the device goes, leaking nothing. */
    errors_before = vkr_validation_errors_total();
    setenv("VKLLM_FAIL_INJECT", "timeout:3", 1);
    m = (vkllm_model *)(uintptr_t)1;
    st = vkllm_model_load(STORIES, &m);
    unsetenv("VKLLM_FAIL_INJECT");
    printf("  load: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    assert_int_equal(st, VKLLM_ERROR_VULKAN);
    assert_null(m);
    expect_message("load timeout", "one-shot transfer");
    expect_message("load timeout", "has not finished");
    uint32_t errors = vkr_validation_errors_total() - errors_before;
    if (errors) fail_msg("%u validation errors after a timed-out load", errors);
}

/* Context sizes whose page counts or positions would overflow are refused, naming the limit, and the model
 * still makes a context. */
static void test_context_parameters_out_of_range(void **state)
{
    uint32_t errors_before = vkr_validation_errors_total();
    vkllm_model *m = load();
    struct { uint32_t n_ctx, n_batch, n_seq_max; const char *needle; } cases[] = {
        {UINT32_MAX, 256, 1, "n_ctx 4294967295 (at most 1073741824)"},
        {4096, UINT32_MAX, 1, "n_batch 4294967295 (at most 1048576)"},
        {4096, 256, UINT32_MAX, "n_seq_max 4294967295 (at most 4096)"},
        {1u << 30, 256, 4096, "n_ctx 1073741824 x n_seq_max 4096 positions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        vkllm_context_params p = vkllm_context_default_params();
        p.n_ctx = cases[i].n_ctx, p.n_batch = cases[i].n_batch, p.n_seq_max = cases[i].n_seq_max;
        vkllm_context *c = (vkllm_context *)(uintptr_t)1;
        assert_int_equal(vkllm_context_create(m, &p, &c), VKLLM_ERROR_INVALID_ARGUMENT);
        assert_null(c);
        expect_message("context parameters", cases[i].needle);
    }
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, NULL, &c), "a context after the refusals");
    expect_generates(c);
    vkllm_context_free(c);
    free_and_check_leaks(m, errors_before);
}

/* A malformed VKLLM_FAIL_INJECT fails the device's creation, naming the variable and the entry. */
static void test_bad_fault_spec(void **state)
{
    const char *bad[] = {"alloc", "alloc:", "alloc:0", "alloc:x", "oom:1", ",alloc:1", "alloc:99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("VKLLM_FAIL_INJECT", bad[i], 1);
        vkllm_model *m = NULL;
        vkllm_status st = vkllm_model_load(STORIES, &m);
        unsetenv("VKLLM_FAIL_INJECT");
        if (i == 0) printf("  %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        assert_int_equal(st, VKLLM_ERROR_INVALID_ARGUMENT);
        expect_message(bad[i], "VKLLM_FAIL_INJECT='");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_memory_at_each_allocation_of_the_load),
        cmocka_unit_test(test_out_of_memory_creating_a_context),
        cmocka_unit_test(test_device_lost),
        cmocka_unit_test(test_fence_timeout_names_sequence_and_last_dispatch),
        cmocka_unit_test(test_context_parameters_out_of_range),
        cmocka_unit_test(test_bad_fault_spec),
    };
    /* Memory in blocks of 1 MiB (small enough for many, large enough for the default context's buffers): a load and a context make
     * many allocations, each one a point where the device can run out. */
    setenv("VKLLM_MAX_ALLOCATION", "1M", 1);
    return TH_RUN("failure_paths", tests);
}
