/* vkllm serve's engine (src/server/engine.c) over two replicas of stories260K, without HTTP: a request sharing a
 * long prefix with an earlier one goes to the busy replica that served it, and a stop that comes while such a
 * request waits for that replica's step ends (an idle replica waiting for a job routed elsewhere used to wait for
 * ever). */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "paths.h"
#include "server/engine.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")
#define SENTENCE "The little dog ran to the big red barn and back again. "
#define PREFIX SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE SENTENCE /* 330 characters */

static job *submit(engine *e, const char *prompt, uint32_t max_tokens)
{
    job *j = job_new();
    assert_non_null(j);
    j->prompt = strdup(prompt);
    j->params.sampling.temperature = 0;
    j->params.max_tokens = max_tokens;
    th_check_status(engine_submit(e, j), "engine_submit");
    return j;
}

static void wait_until(engine *e, job *j, bool (*ready)(const job *))
{
    engine_lock(e);
    for (int i = 0; i < 600 && !ready(j); i++) engine_wait(e, j, j->text_len, (size_t)-1, 0.1);
    bool ok = ready(j);
    engine_unlock(e);
    if (!ok) fail_msg("the job did not get there within a minute");
}

static bool done(const job *j) { return j->done; }
static bool has_text(const job *j) { return j->text_len > 0 || j->done; }

/* Until no request runs (a finished one leaves its replica's load at the replica's next loop). */
static void wait_idle(engine *e)
{
    engine_metrics m;
    for (int i = 0; i < 1000; i++) {
        engine_get_metrics(e, &m);
        if (!m.sched.n_running && !m.sched.n_waiting) return;
        struct timespec t = {0, 10 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    fail_msg("requests still running after 10 s");
}

static void *stop_engine(void *arg)
{
    engine_stop(arg, 0);
    return NULL;
}

static void test_route_and_stop(void **state)
{
    (void)state;
    vkllm_model *models[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) th_check_status(vkllm_model_load(STORIES, &models[i]), "load");
    vkllm_scheduler_params sp = vkllm_scheduler_default_params();
    sp.n_seq_max = 2;
    sp.n_ctx = 2200;
    engine *e = NULL;
    th_check_status(engine_start(models, 2, &sp, NULL, 0, &e), "engine_start");

    /* The prefix's pages go to the first replica (both idle: the first), then a long request to the same one. */
    job *a = submit(e, PREFIX "First", 1);
    wait_until(e, a, done);
    engine_release(e, a);
    wait_idle(e);
    engine_metrics m;
    job *b = submit(e, "Once upon a time", 2000);
    wait_until(e, b, has_text);
    engine_get_metrics(e, &m);
    const uint64_t hits = m.sched.prefix_hit_tokens;

    /* Sharing the prefix, it goes to the busy replica and takes the prefix from its cache. */
    job *c = submit(e, PREFIX "Second", 1);
    wait_until(e, c, done);
    engine_get_metrics(e, &m);
    printf("  prefix-cache tokens %llu -> %llu; %u replicas\n", (unsigned long long)hits,
           (unsigned long long)m.sched.prefix_hit_tokens, m.replicas);
    assert_int_equal(m.replicas, 2);
    assert_true(m.sched.prefix_hit_tokens - hits >= 48);
    engine_release(e, c);

    engine_release(e, b); /* the client goes: cancelled */
    wait_idle(e);

    /* A long prompt (prefilled in steps of 256 tokens, each several milliseconds) goes to the first replica; a
     * request sharing the prefix is routed to it and waits for its step, and the stop comes right behind: the idle
     * second replica, woken by both but with a job pending for the other, must still see the queue empty and end. */
    char long_prompt[3001] = "";
    while (strlen(long_prompt) + 40 < sizeof long_prompt) strcat(long_prompt, "Once upon a time there was a cat. ");
    job *f = submit(e, long_prompt, 1);
    engine_lock(e);
    for (int i = 0; i < 600 && !f->id && !f->done; i++) engine_wait(e, f, 0, (size_t)-1, 0.1);
    engine_unlock(e);
    job *d = submit(e, PREFIX "Third", 1);
    pthread_t stopper;
    assert_int_equal(pthread_create(&stopper, NULL, stop_engine, e), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    if (pthread_timedjoin_np(stopper, NULL, &until) != 0) fail_msg("engine_stop did not return within a minute");
    assert_true(f->done && d->done);
    engine_release(e, f);
    engine_release(e, d);
    engine_free(e);
    for (int i = 0; i < 2; i++) vkllm_model_free(models[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_and_stop),
    };
    return TH_RUN("engine", tests);
}
