/* Asynchronous decoding (issue 17): vkllm_decode_submit with polls and waits gives vkllm_decode's logits and
 * signals the context's timeline semaphore to the ticket's value; vkllm_generate_begin/_step gives
 * vkllm_generate's text, with and without a max_submit_us budget (which splits each pass into submissions of
 * layers: more submissions than passes), one non-blocking step at a time. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "model/context.h"
#include "paths.h"
#include "runtime/device_internal.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")
#define STORIES_TEXT "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

static vkllm_model *model;

/* Between polls: a spinning test would take the CPU from lavapipe's threads doing the work. */
static void nap(void)
{
    struct timespec t = {0, 100000};
    nanosleep(&t, NULL);
}

static int setup(void **state)
{
    (void)state;
    return vkllm_model_load(STORIES, &model) == VKLLM_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    uint32_t errors = vkr_device_validation_errors(model->dev);
    vkllm_model_free(model);
    if (errors) fprintf(stderr, "FAIL: %u validation errors\n", errors);
    return errors ? -1 : 0;
}

static void test_submit_poll_wait(void **state)
{
    (void)state;
    vkllm_context *sync = NULL, *async = NULL;
    th_check_status(vkllm_context_create(model, NULL, &sync), "context");
    th_check_status(vkllm_context_create(model, NULL, &async), "context");
    vkllm_token tokens[4] = {1, 403, 407, 261};
    int32_t pos[4] = {0, 1, 2, 3}, seq[4] = {0, 0, 0, 0};
    int8_t want[4] = {0, 0, 0, 1};
    vkllm_batch b = {4, tokens, pos, seq, want};
    th_check_status(vkllm_decode(sync, &b), "vkllm_decode");
    vkllm_ticket t;
    th_check_status(vkllm_decode_submit(async, &b, &t), "vkllm_decode_submit");
    assert_int_equal(t.value, 1);
    int done = 0;
    uint32_t polls = 0;
    while (!done) {
        th_check_status(vkllm_ticket_poll(&t, &done), "vkllm_ticket_poll");
        polls++;
        if (!done) nap();
    }
    printf("  done after %u polls\n", polls);
    uint64_t value = 0;
    VkSemaphore timeline = VK_NULL_HANDLE;
    th_check_status(vkllm_context_timeline(async, &timeline), "vkllm_context_timeline");
    assert_int_equal(vkGetSemaphoreCounterValue(model->dev->device, timeline, &value), VK_SUCCESS);
    assert_int_equal(value, 1);
    const float *a = vkllm_get_logits(sync, 0), *c = vkllm_get_logits(async, 0);
    assert_non_null(a);
    assert_non_null(c);
    for (uint32_t i = 0; i < model->cfg.n_vocab; i++) assert_true(a[i] == c[i]);

    /* The next position through a wait; an old ticket is done; a ticket never handed out is refused. */
    vkllm_token next = 301;
    int32_t p4 = 4, s0 = 0;
    vkllm_batch one = {1, &next, &p4, &s0, NULL};
    vkllm_ticket t2;
    th_check_status(vkllm_decode_submit(async, &one, &t2), "vkllm_decode_submit");
    th_check_status(vkllm_ticket_wait(&t2), "vkllm_ticket_wait");
    assert_non_null(vkllm_get_logits(async, 0));
    th_check_status(vkllm_ticket_poll(&t, &done), "old ticket");
    assert_int_equal(done, 1);
    vkllm_ticket bogus = {async, 99};
    assert_int_equal(vkllm_ticket_poll(&bogus, &done), VKLLM_ERROR_INVALID_ARGUMENT);
    vkllm_context_free(sync);
    vkllm_context_free(async);
}

/* Two contexts of one model (which share the model's ops scratch) with passes in flight at once, split by layer:
 * each gives the logits of a pass run alone. */
static void test_two_contexts_in_flight(void **state)
{
    (void)state;
    vkllm_context_params cp = vkllm_context_default_params();
    cp.max_submit_us = 1;
    vkllm_context *alone = NULL, *a = NULL, *b = NULL;
    th_check_status(vkllm_context_create(model, NULL, &alone), "context");
    th_check_status(vkllm_context_create(model, &cp, &a), "context a");
    th_check_status(vkllm_context_create(model, &cp, &b), "context b");
    vkllm_token ta[3] = {1, 403, 407}, tb[2] = {1, 261};
    int32_t pos[3] = {0, 1, 2}, seq[3] = {0, 0, 0};
    vkllm_batch ba = {3, ta, pos, seq, NULL}, bb = {2, tb, pos, seq, NULL};
    vkllm_ticket xa, xb;
    th_check_status(vkllm_decode_submit(a, &ba, &xa), "submit a");
    th_check_status(vkllm_decode_submit(b, &bb, &xb), "submit b");
    int done_a = 0, done_b = 0;
    while (!done_a || !done_b) { /* their parts interleave on the queue */
        if (!done_a) th_check_status(vkllm_ticket_poll(&xa, &done_a), "poll a");
        if (!done_b) th_check_status(vkllm_ticket_poll(&xb, &done_b), "poll b");
        nap();
    }
    const vkllm_batch *batches[2] = {&ba, &bb};
    vkllm_context *ctxs[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        th_check_status(vkllm_seq_truncate(alone, 0, 0), "truncate");
        th_check_status(vkllm_decode(alone, batches[k]), "decode alone");
        for (uint32_t row = 0; row < batches[k]->n_tokens; row++) {
            const float *x = vkllm_get_logits(alone, row), *y = vkllm_get_logits(ctxs[k], row);
            assert_non_null(x);
            assert_non_null(y);
            for (uint32_t i = 0; i < model->cfg.n_vocab; i++) assert_true(x[i] == y[i]);
        }
    }
    vkllm_context_free(alone);
    vkllm_context_free(a);
    vkllm_context_free(b);
}

/* Greedy text through steps of budget 0 (never waiting); *passes and *submits: forward passes and submissions. */
static void generate_in_steps(uint32_t max_submit_us, uint32_t *steps, uint64_t *submits)
{
    vkllm_context_params cp = vkllm_context_default_params();
    cp.max_submit_us = max_submit_us;
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(model, &cp, &c), "context");
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    th_check_status(vkllm_generate_begin(c, "Once upon a time", 0, 32, &greedy), "vkllm_generate_begin");
    th_text t = {.len = 0};
    th_text_append("Once upon a time", 16, &t);
    vkllm_generate_step_result r = {0};
    uint64_t before = vkr_submit_count(model->dev);
    *steps = 0;
    do {
        th_check_status(vkllm_generate_step(c, 0, &r), "vkllm_generate_step");
        if (r.len) th_text_append(r.text, r.len, &t);
        ++*steps;
        if (!r.done) nap();
    } while (!r.done);
    *submits = vkr_submit_count(model->dev) - before;
    if (strncmp(t.buf, STORIES_TEXT, strlen(STORIES_TEXT)) != 0)
        fail_msg("max_submit_us %u: got '%s'", max_submit_us, t.buf);
    assert_int_equal(r.stats.n_generated, 32);
    printf("  max_submit_us %u: %u tokens in %u steps, %llu submissions\n", max_submit_us, r.stats.n_generated, *steps,
           (unsigned long long)*submits);
    assert_int_equal(vkllm_generate_step(c, 0, &r), VKLLM_ERROR_INVALID_ARGUMENT); /* ended */
    vkllm_context_free(c);
}

static void test_generate_steps(void **state)
{
    (void)state;
    uint32_t steps = 0, budget_steps = 0;
    uint64_t submits = 0, budget_submits = 0;
    generate_in_steps(0, &steps, &submits);
    /* One pass per token: the prompt and 31 generated tokens (the 32nd is not evaluated). */
    assert_int_equal(submits, 32);
    /* 1 us: below any layer's time, so one layer per submission; 5 layers, so more submissions than passes. */
    generate_in_steps(1, &budget_steps, &budget_submits);
    assert_int_equal(budget_submits, 32 * model->cfg.n_layer);
    /* 10 s: the first pass of each shape (the prompt's, the first token's) is split by layer until measured, then
     * every later pass is one submission (where the device has timestamps). */
    generate_in_steps(10000000, &budget_steps, &budget_submits);
    if (vkr_device_caps(model->dev)->timestamps) assert_int_equal(budget_submits, 30 + 2 * model->cfg.n_layer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_poll_wait),
        cmocka_unit_test(test_two_contexts_in_flight),
        cmocka_unit_test(test_generate_steps),
    };
    return cmocka_run_group_tests_name("decode_async", tests, setup, teardown);
}
