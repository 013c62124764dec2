/* The scheduler (include/vkllm.h, "Serving") on stories260K: many greedy requests at once give the text each
 * gives alone (vkllm_generate), also through preemption in a tiny KV pool, chunked prefill, cancellation,
 * stop strings and the prefix cache; pages all return to the pool. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/model.h"
#include "paths.h"
#include "serving/request.h"
#include "tokenizer/utf8.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")
#define MAX_REQ 16
#define N_GEN 40

static const char *prompts[MAX_REQ] = {
    "Once upon a time", "Lily and Tom", "The cat", "One day, a little boy named Tim went to the park with his mom",
    "The sun was", "Sue had a red ball", "Max", "In the forest there lived a big bear who liked honey",
    "Once upon a time, there was a girl", "The dog ran", "Ben saw a bird", "A little fish swam in the sea",
    "Mom said", "The tree was tall and green", "Sam and Anna played with blocks", "It was a rainy day",
};

static vkllm_model *model;
static char *reference[MAX_REQ];

static vkllm_token *tokenize(const char *text, size_t *n)
{
    vkllm_token *t = malloc(512 * sizeof *t);
    assert_non_null(t);
    th_check_status(vkllm_tokenize(model, text, strlen(text), 1, 0, t, 512, n), "tokenize");
    return t;
}

static int setup(void **state)
{
    (void)state;
    th_check_status(vkllm_model_load(STORIES, &model), "load stories260K");
    vkllm_context *c;
    th_check_status(vkllm_context_create(model, NULL, &c), "context");
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    for (int i = 0; i < MAX_REQ; i++) {
        th_text t = {.len = 0};
        th_check_status(vkllm_generate(c, prompts[i], 0, N_GEN, &greedy, th_text_append, &t, NULL), "generate");
        reference[i] = strdup(t.buf);
    }
    vkllm_context_free(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uint32_t errors = vkr_device_validation_errors(model->dev);
    for (int i = 0; i < MAX_REQ; i++) free(reference[i]);
    vkllm_model_free(model);
    assert_int_equal(errors, 0);
    return 0;
}

typedef struct run_state {
    uint64_t ids[MAX_REQ];
    th_text text[MAX_REQ];
    vkllm_finish_reason finish[MAX_REQ];
    int n;
} run_state;

static vkllm_request_params greedy_params(void)
{
    vkllm_request_params p = vkllm_request_default_params();
    p.sampling.temperature = 0;
    p.max_tokens = N_GEN;
    return p;
}

static void submit(vkllm_scheduler *s, run_state *rs, int prompt, const vkllm_request_params *p)
{
    size_t n;
    vkllm_token *t = tokenize(prompts[prompt], &n);
    th_check_status(vkllm_scheduler_submit(s, t, n, p, &rs->ids[rs->n]), "submit");
    rs->text[rs->n].len = 0;
    rs->text[rs->n].buf[0] = '\0';
    rs->finish[rs->n] = VKLLM_FINISH_NONE;
    rs->n++;
    free(t);
}

/* Steps until every request finished (or max_steps); returns the steps taken. */
static int run(vkllm_scheduler *s, run_state *rs, int max_steps)
{
    int steps = 0;
    for (; steps < max_steps; steps++) {
        vkllm_scheduler_stats st;
        vkllm_scheduler_get_stats(s, &st);
        if (!st.n_running && !st.n_waiting) break;
        const vkllm_step_output *out;
        size_t n;
        th_check_status(vkllm_scheduler_step(s, &out, &n), "step");
        for (size_t i = 0; i < n; i++)
            for (int j = 0; j < rs->n; j++)
                if (rs->ids[j] == out[i].id) {
                    th_text_append(out[i].text ? out[i].text : "", out[i].text_len, &rs->text[j]);
                    if (out[i].finish) rs->finish[j] = out[i].finish;
                }
    }
    return steps;
}

/* A scheduler with the default parameters but these (0: the default). */
static vkllm_scheduler *scheduler_with(uint32_t n_ctx, uint32_t n_seq_max, uint32_t token_budget, uint32_t n_kv_pages,
                                       int prefix_cache)
{
    vkllm_scheduler_params sp = vkllm_scheduler_default_params();
    sp.n_ctx = n_ctx;
    if (n_seq_max) sp.n_seq_max = n_seq_max;
    if (token_budget) sp.token_budget = token_budget;
    sp.n_kv_pages = n_kv_pages;
    sp.prefix_cache = prefix_cache;
    vkllm_scheduler *s;
    th_check_status(vkllm_scheduler_create(model, &sp, &s), "create");
    return s;
}

static void check_all(const run_state *rs, const int *prompt_of, const char *what)
{
    for (int j = 0; j < rs->n; j++) {
        const char *want = reference[prompt_of ? prompt_of[j] : j];
        if (strcmp(rs->text[j].buf, want) != 0)
            fail_msg("%s: request %d ('%s'):\n  alone:   '%s'\n  batched: '%s'", what, j,
                     prompts[prompt_of ? prompt_of[j] : j], want, rs->text[j].buf);
        assert_int_equal(rs->finish[j], VKLLM_FINISH_LENGTH);
    }
}

static void check_pool_empty(vkllm_scheduler *s)
{
    vkllm_scheduler_stats st;
    vkllm_scheduler_get_stats(s, &st);
    assert_int_equal(st.n_running, 0);
    assert_int_equal(st.n_waiting, 0);
    assert_int_equal(st.kv_pages_used, 0);
}

/* 16 requests at once, prompts chunked through a budget of 24 tokens: each one's text is its text alone. */
static void test_batch_invariance(void **state)
{
    (void)state;
    vkllm_scheduler *s = scheduler_with(256, MAX_REQ, 24, 0, 0);
    run_state rs = {.n = 0};
    vkllm_request_params p = greedy_params();
    for (int i = 0; i < MAX_REQ; i++) submit(s, &rs, i, &p);
    int steps = run(s, &rs, 1000);
    printf("  16 requests in %d steps\n", steps);
    check_all(&rs, NULL, "16 concurrent requests");
    check_pool_empty(s);
    vkllm_scheduler_free(s);
}

/* A pool of 10 pages (160 positions) for 6 requests of up to ~55 positions each: the newest are preempted and
 * recomputed, and the text is still each one's alone. */
static void test_preemption(void **state)
{
    (void)state;
    vkllm_scheduler *s = scheduler_with(128, 6, 32, 10, 0);
    run_state rs = {.n = 0};
    vkllm_request_params p = greedy_params();
    int which[6] = {3, 7, 0, 1, 2, 11};
    for (int i = 0; i < 6; i++) submit(s, &rs, which[i], &p);
    run(s, &rs, 2000);
    vkllm_scheduler_stats st;
    vkllm_scheduler_get_stats(s, &st);
    printf("  %llu preemptions in %llu steps\n", (unsigned long long)st.n_preemptions, (unsigned long long)st.n_steps);
    assert_true(st.n_preemptions > 0);
    check_all(&rs, which, "preemption");
    check_pool_empty(s);
    vkllm_scheduler_free(s);

    /* A request longer than the whole pool (3 pages) ends with "length" and the text that fit. */
    s = scheduler_with(128, 6, 32, 3, 0);
    run_state one = {.n = 0};
    p.max_tokens = 100;
    submit(s, &one, 0, &p);
    run(s, &one, 1000);
    assert_int_equal(one.finish[0], VKLLM_FINISH_LENGTH);
    assert_true(one.text[0].len > 0);
    assert_memory_equal(one.text[0].buf, reference[0], one.text[0].len < strlen(reference[0]) ? one.text[0].len : strlen(reference[0]));
    check_pool_empty(s);
    vkllm_scheduler_free(s);
}

/* Cancelling frees pages at once; the others go on unchanged; unknown ids and overlong prompts are errors. */
static void test_cancel_and_errors(void **state)
{
    (void)state;
    vkllm_scheduler *s = scheduler_with(128, 4, 0, 0, 0);
    run_state rs = {.n = 0};
    vkllm_request_params p = greedy_params();
    for (int i = 0; i < 4; i++) submit(s, &rs, i, &p);
    run(s, &rs, 5);
    vkllm_scheduler_stats before, after;
    vkllm_scheduler_get_stats(s, &before);
    th_check_status(vkllm_scheduler_cancel(s, rs.ids[1]), "cancel");
    th_check_status(vkllm_scheduler_cancel(s, rs.ids[3]), "cancel");
    vkllm_scheduler_get_stats(s, &after);
    printf("  pages used %u -> %u after cancelling 2 of 4\n", before.kv_pages_used, after.kv_pages_used);
    assert_true(after.kv_pages_used < before.kv_pages_used);
    assert_int_equal(after.n_running, 2);
    assert_int_equal(vkllm_scheduler_cancel(s, rs.ids[1]), VKLLM_ERROR_INVALID_ARGUMENT);
    run(s, &rs, 1000);
    assert_string_equal(rs.text[0].buf, reference[0]);
    assert_string_equal(rs.text[2].buf, reference[2]);
    check_pool_empty(s);
    vkllm_token long_prompt[200] = {1};
    uint64_t id;
    assert_int_equal(vkllm_scheduler_submit(s, long_prompt, 200, &p, &id), VKLLM_ERROR_CONTEXT_FULL);
    long_prompt[1] = 1 << 30;
    assert_int_equal(vkllm_scheduler_submit(s, long_prompt, 2, &p, &id), VKLLM_ERROR_INVALID_ARGUMENT);
    vkllm_scheduler_free(s);
}

/* A stop string ends the text where it first appears, and it is not part of the output. */
static void test_stop_string(void **state)
{
    (void)state;
    const char *ref = reference[0];
    const char *word = strstr(ref, "Lily");
    assert_non_null(word);
    vkllm_scheduler *s;
    vkllm_scheduler_params sp = vkllm_scheduler_default_params();
    sp.n_ctx = 128;
    th_check_status(vkllm_scheduler_create(model, &sp, &s), "create");
    run_state rs = {.n = 0};
    vkllm_request_params p = greedy_params();
    const char *stop[] = {"zzz", "Lily"};
    p.stop = stop;
    p.n_stop = 2;
    submit(s, &rs, 0, &p);
    run(s, &rs, 1000);
    assert_int_equal(rs.finish[0], VKLLM_FINISH_STOP);
    assert_int_equal(strlen(rs.text[0].buf), (size_t)(word - ref));
    assert_memory_equal(rs.text[0].buf, ref, (size_t)(word - ref));
    check_pool_empty(s);
    vkllm_scheduler_free(s);
}

/* Log-probabilities: a greedy request asking for them beside three that do not gives its text alone, its token is
 * its top token, and the first step's values are the log-softmax of the logits a plain context computes. */
static void test_logprobs(void **state)
{
    (void)state;
    vkllm_scheduler *s = scheduler_with(128, 4, 0, 0, 0);
    run_state rs = {.n = 0};
    vkllm_request_params p = greedy_params(), lp = greedy_params();
    lp.logprobs = 1;
    lp.top_logprobs = 5;
    submit(s, &rs, 0, &lp);
    for (int i = 1; i < 4; i++) submit(s, &rs, i, &p);
    float first_lp = 0, first_top[5];
    vkllm_token first_token = -1;
    uint32_t seen = 0;
    for (int steps = 0; steps < 1000; steps++) {
        vkllm_scheduler_stats st;
        vkllm_scheduler_get_stats(s, &st);
        if (!st.n_running && !st.n_waiting) break;
        const vkllm_step_output *out;
        size_t n;
        th_check_status(vkllm_scheduler_step(s, &out, &n), "step");
        for (size_t i = 0; i < n; i++) {
            for (int j = 0; j < rs.n; j++)
                if (rs.ids[j] == out[i].id) th_text_append(out[i].text ? out[i].text : "", out[i].text_len, &rs.text[j]);
            if (out[i].id != rs.ids[0]) {
                assert_int_equal(out[i].n_top, 0);
                continue;
            }
            if (out[i].token < 0) continue;
            assert_int_equal(out[i].n_top, 5);
            assert_int_equal(out[i].top_tokens[0], out[i].token); /* greedy */
            assert_true(out[i].logprob == out[i].top_logprobs[0] && out[i].logprob <= 0);
            for (int k = 1; k < 5; k++) assert_true(out[i].top_logprobs[k] <= out[i].top_logprobs[k - 1]);
            if (!seen++) {
                first_token = out[i].token;
                first_lp = out[i].logprob;
                memcpy(first_top, out[i].top_logprobs, sizeof first_top);
            }
        }
    }
    assert_int_equal(seen, N_GEN);
    assert_string_equal(rs.text[0].buf, reference[0]);
    vkllm_scheduler_free(s);

    /* The reference: the prompt decoded on a context, log-softmax in double. */
    size_t n_prompt;
    vkllm_token *t = tokenize(prompts[0], &n_prompt);
    vkllm_context *c;
    th_check_status(vkllm_context_create(model, NULL, &c), "context");
    int32_t pos[64], seq[64];
    int8_t want[64];
    assert_true(n_prompt <= 64);
    for (size_t i = 0; i < n_prompt; i++) pos[i] = (int32_t)i, seq[i] = 0, want[i] = i + 1 == n_prompt;
    vkllm_batch b = {(uint32_t)n_prompt, t, pos, seq, want};
    th_check_status(vkllm_decode(c, &b), "decode");
    const float *logits = vkllm_get_logits(c, 0);
    const uint32_t n_vocab = model->cfg.n_vocab;
    double max = logits[0], sum = 0;
    for (uint32_t i = 1; i < n_vocab; i++) max = logits[i] > max ? logits[i] : max;
    for (uint32_t i = 0; i < n_vocab; i++) sum += exp(logits[i] - max);
    assert_float_equal(first_lp, logits[first_token] - max - log(sum), 1e-4);
    int above = 0; /* tokens more likely than the fifth */
    for (uint32_t i = 0; i < n_vocab; i++) above += logits[i] - max - log(sum) > first_top[4] + 1e-4;
    assert_true(above <= 4);
    vkllm_context_free(c);
    free(t);

    vkllm_request_params bad = greedy_params();
    bad.logprobs = 1;
    bad.top_logprobs = VKLLM_MAX_TOP_LOGPROBS + 1;
    s = scheduler_with(128, 4, 0, 0, 0);
    uint64_t id;
    const vkllm_token one = 1;
    assert_int_equal(vkllm_scheduler_submit(s, &one, 1, &bad, &id), VKLLM_ERROR_INVALID_ARGUMENT);
    vkllm_scheduler_free(s);
}

/* A character split over byte tokens (<0xE2><0x82><0xAC> is the euro sign) is streamed whole, once its last
 * byte arrives; text that is not UTF-8 reaches JSON as U+FFFD. */
static void test_utf8_streaming(void **state)
{
    (void)state;
    const vkllm_token prompt[] = {1};
    vkllm_request_params p = greedy_params();
    request *r;
    th_check_status(request_create(1, 0, prompt, 1, 64, 512, &p, &r), "request");
    const uint8_t euro[] = {0xE2, 0x82, 0xAC};
    const char *text;
    size_t len;
    for (int i = 0; i < 3; i++) {
        const vkllm_token byte_token = 3 + euro[i]; /* stories260K: <0x00>..<0xFF> are ids 3..258 */
        th_check_status(request_accept(r, model, byte_token, 64, &text, &len), "accept");
        if (i < 2) {
            assert_int_equal(len, 0);
        } else {
            assert_int_equal(len, 3);
            assert_memory_equal(text, euro, 3);
        }
    }
    request_free(r);

    char out[3 * 8 + 1];
    assert_int_equal(utf8_incomplete_tail("ab\xE2\x82", 4), 2);
    assert_int_equal(utf8_incomplete_tail("ab\xE2\x82\xAC", 5), 0);
    assert_int_equal(utf8_incomplete_tail("\xF0", 1), 1);
    assert_int_equal(utf8_sanitize("a\xFF\xE2\x82\xAC", 5, out), 7); /* a, U+FFFD, euro */
    assert_string_equal(out, "a\xEF\xBF\xBD\xE2\x82\xAC");
    assert_int_equal(utf8_sanitize("\xC0\xAF\xED\xA0\x80", 5, out), 6); /* overlong '/', a surrogate */
    assert_string_equal(out, "\xEF\xBF\xBD\xEF\xBF\xBD");
}

/* A second request whose prompt starts with the first's maps its full pages from the cache (the counters say
 * so) and gives the same text as without the cache. */
static void test_prefix_cache(void **state)
{
    (void)state;
    vkllm_scheduler_params sp = vkllm_scheduler_default_params();
    sp.n_ctx = 256;
    vkllm_scheduler *s;
    th_check_status(vkllm_scheduler_create(model, &sp, &s), "create");
    /* A prompt of reference[7]'s prompt and text: its tokens are the prompt's plus the output's. */
    char *long_text = malloc(strlen(prompts[7]) + strlen(reference[7]) + 1);
    assert_non_null(long_text);
    strcpy(long_text, prompts[7]);
    strcat(long_text, reference[7]);
    size_t n;
    vkllm_token *t = tokenize(long_text, &n);
    assert_true(n > 40);
    vkllm_request_params p = greedy_params();
    p.max_tokens = 16;
    const vkllm_step_output *out;
    size_t n_out;
    th_text first = {.len = 0}, second = {.len = 0};
    th_text *texts[2] = {&first, &second};
    uint32_t hits[2] = {0, 0};
    for (int round = 0; round < 2; round++) {
        uint64_t id;
        th_check_status(vkllm_scheduler_submit(s, t, n, &p, &id), "submit");
        for (int k = 0; k < 100; k++) {
            th_check_status(vkllm_scheduler_step(s, &out, &n_out), "step");
            bool done = false;
            for (size_t i = 0; i < n_out; i++) {
                th_text_append(out[i].text ? out[i].text : "", out[i].text_len, texts[round]);
                hits[round] = out[i].n_cached_prompt;
                done |= out[i].finish != VKLLM_FINISH_NONE;
            }
            if (done) break;
        }
    }
    vkllm_scheduler_stats st;
    vkllm_scheduler_get_stats(s, &st);
    printf("  prompt of %zu tokens: %u then %u taken from the cache; %u pages cached, hits %llu of %llu\n", n, hits[0],
           hits[1], st.kv_pages_cached, (unsigned long long)st.prefix_hit_tokens,
           (unsigned long long)st.prefix_queried_tokens);
    assert_int_equal(hits[0], 0);
    assert_int_equal(hits[1], (uint32_t)((n - 1) / 16 * 16));
    assert_true(st.kv_pages_cached > 0);
    assert_string_equal(first.buf, second.buf);
    check_pool_empty(s);
    vkllm_scheduler_free(s);
    free(long_text);
    free(t);
}

/* Sampled requests with their own seeds, four at once beside greedy ones: each gives vkllm_generate's text for
 * its seed (the sampler sees the same logits, and each request has its own random stream). */
static void test_seeded_sampling(void **state)
{
    (void)state;
    vkllm_context *c;
    th_check_status(vkllm_context_create(model, NULL, &c), "context");
    char *want[4];
    vkllm_request_params p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = greedy_params();
        p[i].sampling.temperature = 0.9f;
        p[i].sampling.seed = 1000u + (uint64_t)i;
        th_text t = {.len = 0};
        th_check_status(vkllm_generate(c, prompts[i], 0, N_GEN, &p[i].sampling, th_text_append, &t, NULL), "generate");
        want[i] = strdup(t.buf);
    }
    vkllm_context_free(c);
    vkllm_scheduler_params sp = vkllm_scheduler_default_params();
    sp.n_ctx = 256;
    vkllm_scheduler *s;
    th_check_status(vkllm_scheduler_create(model, &sp, &s), "create");
    run_state rs = {.n = 0};
    vkllm_request_params g = greedy_params();
    for (int i = 0; i < 4; i++) {
        submit(s, &rs, i, &p[i]);
        submit(s, &rs, 4 + i, &g);
    }
    run(s, &rs, 1000);
    for (int i = 0; i < 4; i++) {
        if (strcmp(rs.text[2 * i].buf, want[i]) != 0)
            fail_msg("seed %d: alone '%s', batched '%s'", 1000 + i, want[i], rs.text[2 * i].buf);
        assert_string_equal(rs.text[2 * i + 1].buf, reference[4 + i]);
        free(want[i]);
    }
    check_pool_empty(s);
    vkllm_scheduler_free(s);
}

/* The reason the texts agree: a row's logits are bitwise the same in a pass alone and beside other sequences,
 * for prompt chunks (8 tokens per sequence, 8..256 tokens per pass) and decode tokens.  Another model:
 * VKLLM_TEST_INVARIANCE_MODEL=path (docs/serving.md lists the ones measured). */
static void test_logits_batch_invariance(void **state)
{
    (void)state;
    const char *path = getenv("VKLLM_TEST_INVARIANCE_MODEL");
    vkllm_model *m = model;
    if (path && *path) th_check_status(vkllm_model_load(path, &m), path);
    vkllm_model_info info;
    vkllm_model_get_info(m, &info);
    static const uint32_t ns[] = {1, 2, 5, 16, 32};
    float *ref = malloc(4ull * info.n_vocab);
    assert_non_null(ref);
    for (int decode = 0; decode < 2; decode++)
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            uint32_t n = ns[k];
            vkllm_context_params cp = vkllm_context_default_params();
            cp.n_seq_max = n, cp.n_ctx = 64, cp.n_outputs_max = n, cp.n_batch = 256;
            vkllm_context *c;
            th_check_status(vkllm_context_create(m, &cp, &c), "context");
            vkllm_token tok[256];
            int32_t pos[256], seq[256];
            int8_t want[256];
            uint32_t nt = 0;
            for (uint32_t s = 0; s < n; s++)
                for (int i = 0; i < 8; i++, nt++) {
                    tok[nt] = (vkllm_token)(s == 0 ? 1u + (uint32_t)i * 7 : 1u + (s * 31 + (uint32_t)i * 13) % 400);
                    pos[nt] = i, seq[nt] = (int32_t)s, want[nt] = i == 7;
                }
            if (decode) { /* each prompt alone, then one token of every sequence in one pass */
                for (uint32_t s = 0; s < n; s++) {
                    vkllm_batch b = {8, tok + 8 * s, pos + 8 * s, seq + 8 * s, want + 8 * s};
                    th_check_status(vkllm_decode(c, &b), "prefill");
                }
                for (nt = 0; nt < n; nt++)
                    tok[nt] = (vkllm_token)(nt == 0 ? 42 : (nt * 17) % 400), pos[nt] = 8, seq[nt] = (int32_t)nt,
                    want[nt] = 1;
            }
            vkllm_batch b = {nt, tok, pos, seq, want};
            th_check_status(vkllm_decode(c, &b), "decode");
            const float *l = vkllm_get_logits(c, 0);
            assert_non_null(l);
            if (k == 0) memcpy(ref, l, 4ull * info.n_vocab);
            else if (memcmp(ref, l, 4ull * info.n_vocab) != 0)
                fail_msg("%s: the logits of sequence 0 beside %u others (%u tokens in the pass) differ from alone",
                         decode ? "decode" : "prefill", n - 1, nt);
            vkllm_context_free(c);
        }
    free(ref);
    if (m != model) vkllm_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_batch_invariance),
        cmocka_unit_test(test_batch_invariance),
        cmocka_unit_test(test_preemption),
        cmocka_unit_test(test_cancel_and_errors),
        cmocka_unit_test(test_stop_string),
        cmocka_unit_test(test_utf8_streaming),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_prefix_cache),
        cmocka_unit_test(test_seeded_sampling),
    };
    return cmocka_run_group_tests_name("scheduler", tests, setup, teardown);
}
