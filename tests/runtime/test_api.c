/* The public API's model parameters and device list: choosing the device by index and by name, turning
 * features off, validation on and off, clear errors for a device or feature bits that do not exist, and the
 * size queries' VKLLM_ERROR_BUFFER_TOO_SMALL. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/model.h"
#include "paths.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")
#define STORIES_TEXT "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

/* Greedy text of stories260K on a model loaded with params; fails on any validation error. */
static void check_stories(const vkllm_model_params *params, const char *what)
{
    vkllm_model *m = NULL;
    th_check_status(vkllm_model_load_params(STORIES, params, &m), what);
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, NULL, &c), what);
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    th_text t = {.len = 0};
    th_text_append("Once upon a time", 16, &t);
    th_check_status(vkllm_generate(c, "Once upon a time", 0, 32, &greedy, th_text_append, &t, NULL), what);
    if (strncmp(t.buf, STORIES_TEXT, strlen(STORIES_TEXT)) != 0) fail_msg("%s: got '%s'", what, t.buf);
    uint32_t errors = vkr_device_validation_errors(m->dev);
    vkllm_context_free(c);
    vkllm_model_free(m);
    if (errors) fail_msg("%s: %u Vulkan validation errors", what, errors);
}

static void test_device_list(void **state)
{
    (void)state;
    uint32_t count = 0;
    th_check_status(vkllm_device_count(&count), "vkllm_device_count");
    assert_true(count >= 1);
    uint32_t defaults = 0;
    for (uint32_t i = 0; i < count; i++) {
        vkllm_device_properties p;
        th_check_status(vkllm_device_info(i, &p), "vkllm_device_info");
        printf("  device %u: %s (%s, %s), subgroup %u, coopmat %s%s\n", i, p.name, p.type, p.vendor, p.subgroup_size,
               p.cooperative_matrix, p.is_default ? ", default" : "");
        assert_true(p.name[0] != '\0' && p.type && p.vendor && p.cooperative_matrix && p.subgroup_size > 0);
        defaults += p.is_default != 0;

        /* The description: a size query, a buffer one byte short, then the whole text. */
        size_t len = 0, again = 0;
        assert_int_equal(vkllm_device_describe(i, NULL, 0, &len), VKLLM_ERROR_BUFFER_TOO_SMALL);
        assert_true(len > 0);
        char *buf = malloc(len + 1);
        assert_non_null(buf);
        assert_int_equal(vkllm_device_describe(i, buf, len, &again), VKLLM_ERROR_BUFFER_TOO_SMALL);
        assert_int_equal(again, len);
        th_check_status(vkllm_device_describe(i, buf, len + 1, &again), "vkllm_device_describe");
        assert_int_equal(strlen(buf), len);
        assert_non_null(strstr(buf, p.name));
        free(buf);
    }
    assert_int_equal(defaults, 1);

    vkllm_device_properties p;
    assert_int_equal(vkllm_device_info(count, &p), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "does not exist"));
    assert_int_equal(vkllm_device_count(NULL), VKLLM_ERROR_INVALID_ARGUMENT);
}

static void test_model_params_choose_device(void **state)
{
    (void)state;
    vkllm_device_properties first;
    th_check_status(vkllm_device_info(0, &first), "vkllm_device_info");

    vkllm_model_params params = vkllm_model_default_params();
    assert_null(params.device);
    assert_int_equal(params.disable_features, 0);
    assert_int_equal(params.validation, -1);

    params.device = "0";
    params.validation = 1;
    check_stories(&params, "device 0");

    /* A name substring, in another case than the device's own. */
    char name[8];
    size_t n = strlen(first.name) < 4 ? strlen(first.name) : 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)first.name[i];
        name[i] = (char)(islower(ch) ? toupper(ch) : tolower(ch));
    }
    name[n] = '\0';
    params.device = name;
    check_stories(&params, name);

    vkllm_model *m = NULL;
    params.device = "no such device";
    assert_int_equal(vkllm_model_load_params(STORIES, &params, &m), VKLLM_ERROR_NO_DEVICE);
    assert_null(m);
    assert_non_null(strstr(vkllm_last_error(), "'no such device' matches none"));
    params.device = "99";
    assert_int_equal(vkllm_model_load_params(STORIES, &params, &m), VKLLM_ERROR_NO_DEVICE);
}

/* Every feature off at once: the fallbacks give the same text (validation on). */
static void test_model_params_disable_features(void **state)
{
    (void)state;
    vkllm_model_params params = vkllm_model_default_params();
    params.validation = 1;
    params.disable_features = VKLLM_FEATURE_F16 | VKLLM_FEATURE_STORAGE16 | VKLLM_FEATURE_STORAGE8 |
                              VKLLM_FEATURE_SUBGROUP | VKLLM_FEATURE_INT_DOT | VKLLM_FEATURE_TEXEL |
                              VKLLM_FEATURE_COOPMAT;
    check_stories(&params, "every feature off");

    vkllm_model *m = NULL;
    params.disable_features = 1u << 20;
    assert_int_equal(vkllm_model_load_params(STORIES, &params, &m), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "name no feature"));
    assert_int_equal(vkllm_model_load_params(STORIES, NULL, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkllm_model_load_params(NULL, NULL, &m), VKLLM_ERROR_INVALID_ARGUMENT);
}

/* Validation 0 turns the layer off whatever VKLLM_VALIDATION says; the text is the same. */
static void test_model_params_validation_off(void **state)
{
    (void)state;
    vkllm_model_params params = vkllm_model_default_params();
    params.validation = 0;
    check_stories(&params, "validation off");
}

/* Logits of every row of one pass over the prompt, copied out (n_rows x n_vocab floats), on a model loaded with
 * cpu_threads `threads`. */
static float *stories_logits(int threads, size_t *n_floats)
{
    vkllm_model_params params = vkllm_model_default_params();
    params.cpu_threads = threads;
    vkllm_model *m = NULL;
    th_check_status(vkllm_model_load_params(STORIES, &params, &m), "cpu_threads load");
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_outputs_max = 64;
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, &cp, &c), "cpu_threads context");
    vkllm_token toks[64];
    size_t n = 0;
    th_check_status(vkllm_tokenize(m, STORIES_TEXT, strlen(STORIES_TEXT), 1, 0, toks, 64, &n), "tokenize");
    int32_t pos[64], seq[64];
    int8_t want[64];
    for (size_t i = 0; i < n; i++) pos[i] = (int32_t)i, seq[i] = 0, want[i] = 1;
    vkllm_batch b = {(uint32_t)n, toks, pos, seq, want};
    th_check_status(vkllm_decode(c, &b), "cpu_threads decode");
    vkllm_model_info info;
    vkllm_model_get_info(m, &info);
    float *all = malloc(n * info.n_vocab * sizeof *all);
    assert_non_null(all);
    for (size_t i = 0; i < n; i++) memcpy(all + i * info.n_vocab, vkllm_get_logits(c, (uint32_t)i), info.n_vocab * 4);
    *n_floats = n * info.n_vocab;
    /* without workers lavapipe leaves a core free: waits poll before they sleep; with workers they sleep at once */
    const bool cpu = vkr_device_caps(m->dev)->type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (threads == 1 && cpu) assert_true(vkr_fence_spin_seconds(m->dev) > 0);
    else assert_true(vkr_fence_spin_seconds(m->dev) == 0);
    /* ... and the model says how many threads compute it (what vkllm serve's default replicas go by) */
    assert_int_equal(info.cpu_threads, cpu ? (uint32_t)threads : 0u);
    uint32_t errors = vkr_device_validation_errors(m->dev);
    vkllm_context_free(c);
    vkllm_model_free(m);
    if (errors) fail_msg("cpu_threads %d: %u Vulkan validation errors", threads, errors);
    return all;
}

/* cpu_threads: the automatic choice by shape; no worker threads and two of them give the same bits; LP_NUM_THREADS
 * is as it was after the load (set or not); out-of-range values and a bad VKLLM_CPU_THREADS are clear errors. */
static void test_model_params_cpu_threads(void **state)
{
    (void)state;
    assert_int_equal(vkllm_cpu_threads_auto(64, 172), 1);    /* stories260K */
    assert_int_equal(vkllm_cpu_threads_auto(768, 2048), 0);  /* llama-134m */
    assert_int_equal(vkllm_cpu_threads_auto(288, 768), 0);   /* stories15M */
    assert_int_equal(vkllm_cpu_threads_auto(362, 362), 1);   /* 131,044 weights: just under */
    assert_int_equal(vkllm_cpu_threads_auto(363, 363), 0);
    assert_int_equal(vkllm_cpu_threads_auto(4096, 0), 0);    /* n_ff 0: n_embd squared */

    char *saved = getenv("LP_NUM_THREADS") ? strdup(getenv("LP_NUM_THREADS")) : NULL;
    unsetenv("LP_NUM_THREADS");
    size_t n1 = 0, n2 = 0;
    float *one = stories_logits(1, &n1);
    assert_null(getenv("LP_NUM_THREADS"));
    setenv("LP_NUM_THREADS", "5", 1);
    float *two = stories_logits(2, &n2);
    assert_string_equal(getenv("LP_NUM_THREADS"), "5");
    assert_int_equal(n1, n2);
    assert_memory_equal(one, two, n1 * sizeof *one);
    free(one);
    free(two);

    vkllm_model *m = NULL;
    vkllm_model_params params = vkllm_model_default_params();
    params.cpu_threads = -2;
    assert_int_equal(vkllm_model_load_params(STORIES, &params, &m), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "cpu_threads -2 is outside -1..1024"));
    params.cpu_threads = -1;
    setenv("VKLLM_CPU_THREADS", "two", 1);
    assert_int_equal(vkllm_model_load_params(STORIES, &params, &m), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_null(m);
    assert_non_null(strstr(vkllm_last_error(), "VKLLM_CPU_THREADS='two' is not a thread count"));
    unsetenv("VKLLM_CPU_THREADS");
    if (saved) setenv("LP_NUM_THREADS", saved, 1);
    else unsetenv("LP_NUM_THREADS");
    free(saved);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(vkllm_status_name(VKLLM_ERROR_BUFFER_TOO_SMALL), "VKLLM_ERROR_BUFFER_TOO_SMALL");
    for (int s = 0; s < VKLLM_STATUS_COUNT; s++)
        assert_string_not_equal(vkllm_status_name((vkllm_status)s), "VKLLM_STATUS_UNKNOWN");
    assert_string_equal(vkllm_status_name(VKLLM_STATUS_COUNT), "VKLLM_STATUS_UNKNOWN");
    assert_string_equal(vkllm_version(), VKLLM_VERSION_STRING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_device_list),
        cmocka_unit_test(test_model_params_choose_device),
        cmocka_unit_test(test_model_params_disable_features),
        cmocka_unit_test(test_model_params_validation_off),
        cmocka_unit_test(test_model_params_cpu_threads),
    };
    return th_run("api", tests, sizeof tests / sizeof tests[0]);
}
