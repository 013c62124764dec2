/* Sampler chain: greedy, top-k, top-p, min-p, penalties, the seeded stream, bad logits. */
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/sampling.h"

/* A sampler with every filter off: temperature 1 draws straight from softmax(logits). */
static vkllm_sampling plain_params(void)
{
    vkllm_sampling p = vkllm_sampling_default();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    return p;
}

static sampler *create_or_fail(const vkllm_sampling *p, int32_t n_vocab)
{
    sampler *s = NULL;
    vkllm_status st = sampler_create(p, n_vocab, &s);
    if (st != VKLLM_OK) fail_msg("sampler_create: %s", vkllm_last_error());
    return s;
}

static int32_t sample_or_fail(sampler *s, const float *logits)
{
    int32_t token = -1;
    vkllm_status st = sampler_sample(s, logits, &token);
    if (st != VKLLM_OK) fail_msg("sampler_sample: %s", vkllm_last_error());
    return token;
}

/* Draws n tokens and counts how often each was chosen into counts[n_vocab]. */
static void count_samples(sampler *s, const float *logits, int32_t n_vocab, int n, int *counts)
{
    memset(counts, 0, (size_t)n_vocab * sizeof(*counts));
    for (int i = 0; i < n; i++) {
        int32_t t = sample_or_fail(s, logits);
        assert_true(t >= 0 && t < n_vocab);
        counts[t]++;
    }
}

/* Logits whose softmax is exactly the given probabilities (up to rounding). */
static void logits_from_probs(const double *probs, float *logits, int n)
{
    for (int i = 0; i < n; i++) logits[i] = (float)log(probs[i]);
}

/* The set a filter keeps shows as the support of a very hot sampler: temperature only runs after
 * the filters, and at temperature 1000 the survivors are drawn almost uniformly. */
static void expect_support(const vkllm_sampling *p, const float *logits, int32_t n_vocab,
                           const int *expected_kept)
{
    sampler *s = create_or_fail(p, n_vocab);
    int *counts = calloc((size_t)n_vocab, sizeof(*counts));
    assert_non_null(counts);
    count_samples(s, logits, n_vocab, 4000, counts);
    for (int32_t i = 0; i < n_vocab; i++) {
        if (expected_kept[i] && counts[i] == 0) fail_msg("token %d should be kept but was never drawn", i);
        if (!expected_kept[i] && counts[i] != 0) fail_msg("token %d should be cut but was drawn %d times", i, counts[i]);
    }
    free(counts);
    sampler_free(s);
}

static void test_defaults_match_llama_cpp(void **state)
{
    (void)state;
    vkllm_sampling p = vkllm_sampling_default();
    assert_true(p.temperature == 0.8f);
    assert_int_equal(p.top_k, 40);
    assert_true(p.top_p == 0.95f);
    assert_true(p.min_p == 0.05f);
    assert_true(p.repeat_penalty == 1.0f);
    assert_int_equal(p.repeat_last_n, 64);
    assert_true(p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f);
}

static void test_greedy_is_argmax(void **state)
{
    (void)state;
    const float logits[6] = { 0.5f, -1.0f, 3.0f, 2.9f, 3.0f, -INFINITY };
    vkllm_sampling p = vkllm_sampling_default();
    p.temperature = 0.0f;
    sampler *s = create_or_fail(&p, 6);
    for (int i = 0; i < 5; i++) assert_int_equal(sample_or_fail(s, logits), 2); /* first of the tied maxima */
    sampler_free(s);

    p.temperature = -1.0f;
    s = create_or_fail(&p, 6);
    assert_int_equal(sample_or_fail(s, logits), 2);
    sampler_free(s);
}

static void test_top_k_1_is_argmax_at_any_temperature(void **state)
{
    (void)state;
    const float logits[5] = { 1.0f, 4.0f, 3.99f, -2.0f, 0.0f };
    const float temperatures[] = { 0.1f, 1.0f, 5.0f, 1000.0f };
    for (size_t t = 0; t < sizeof(temperatures) / sizeof(temperatures[0]); t++) {
        vkllm_sampling p = plain_params();
        p.top_k = 1;
        p.temperature = temperatures[t];
        p.seed = 7 + t;
        sampler *s = create_or_fail(&p, 5);
        for (int i = 0; i < 200; i++) assert_int_equal(sample_or_fail(s, logits), 1);
        sampler_free(s);
    }
}

static void fill_varied_logits(float *logits, int n)
{
    for (int i = 0; i < n; i++) logits[i] = (float)sin(i * 0.7) * 2.0f;
}

static void draw_sequence(uint64_t seed, const float *logits, int n_vocab, int32_t *out, int n)
{
    vkllm_sampling p = plain_params();
    p.seed = seed;
    sampler *s = create_or_fail(&p, n_vocab);
    for (int i = 0; i < n; i++) out[i] = sample_or_fail(s, logits);
    sampler_free(s);
}

static void test_seed_determines_sequence(void **state)
{
    (void)state;
    enum { VOCAB = 50, N = 100 };
    float logits[VOCAB];
    fill_varied_logits(logits, VOCAB);
    int32_t a[N], b[N], c[N];
    draw_sequence(123, logits, VOCAB, a, N);
    draw_sequence(123, logits, VOCAB, b, N);
    draw_sequence(124, logits, VOCAB, c, N);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, c, sizeof(a));
}

static void test_reset_restarts_stream(void **state)
{
    (void)state;
    enum { VOCAB = 50, N = 20 };
    float logits[VOCAB];
    fill_varied_logits(logits, VOCAB);
    vkllm_sampling p = plain_params();
    sampler *s = create_or_fail(&p, VOCAB);
    int32_t first[N], again[N];
    for (int i = 0; i < N; i++) first[i] = sample_or_fail(s, logits);
    sampler_reset(s);
    for (int i = 0; i < N; i++) again[i] = sample_or_fail(s, logits);
    assert_memory_equal(first, again, sizeof(first));
    sampler_free(s);
}

/* With equal logits every weight is exactly 1, so the token is floor(u * n_vocab) for the stream's
 * uniform u, independent of libm.  The expected values come from an independent transcription of
 * splitmix64 + xoshiro256** (Python), pinning the stream so it cannot drift between versions. */
static void test_stream_is_pinned(void **state)
{
    (void)state;
    enum { VOCAB = 1000 };
    static float logits[VOCAB];
    const int32_t expected_seed_42[10] = { 83, 378, 680, 924, 991, 769, 719, 850, 761, 583 };
    int32_t got[10];
    draw_sequence(42, logits, VOCAB, got, 10);
    assert_memory_equal(got, expected_seed_42, sizeof(got));
}

static void test_frequencies_match_softmax(void **state)
{
    (void)state;
    enum { VOCAB = 5, N = 20000 };
    const float logits[VOCAB] = { 1.0f, 2.0f, 0.5f, 3.0f, -1.0f };
    double softmax[VOCAB], total = 0.0;
    for (int i = 0; i < VOCAB; i++) total += softmax[i] = exp(logits[i]);
    vkllm_sampling p = plain_params();
    p.seed = 2024;
    sampler *s = create_or_fail(&p, VOCAB);
    int counts[VOCAB];
    count_samples(s, logits, VOCAB, N, counts);
    for (int i = 0; i < VOCAB; i++) {
        const double expected = softmax[i] / total;
        const double observed = (double)counts[i] / N;
        /* standard error is at most sqrt(0.25 / N) = 0.0035; allow about 4 of them */
        if (fabs(observed - expected) > 0.015)
            fail_msg("token %d: drawn %.4f of the time, softmax says %.4f", i, observed, expected);
    }
    sampler_free(s);
}

static void test_temperature_sharpens(void **state)
{
    (void)state;
    enum { VOCAB = 3, N = 5000 };
    const float logits[VOCAB] = { 1.0f, 0.0f, 0.0f };
    vkllm_sampling p = plain_params();
    p.temperature = 0.25f; /* softmax(4, 0, 0): token 0 with probability e^4 / (e^4 + 2) = 0.965 */
    sampler *s = create_or_fail(&p, VOCAB);
    int counts[VOCAB];
    count_samples(s, logits, VOCAB, N, counts);
    assert_true(fabs((double)counts[0] / N - 0.9647) < 0.015);
    sampler_free(s);
}

static void test_top_p_keeps_smallest_set_reaching_p(void **state)
{
    (void)state;
    enum { VOCAB = 4 };
    const double probs[VOCAB] = { 0.15, 0.5, 0.05, 0.3 }; /* ranked: 1 (0.5), 3 (0.8), 0 (0.95), 2 (1.0) */
    float logits[VOCAB];
    logits_from_probs(probs, logits, VOCAB);
    vkllm_sampling p = plain_params();
    p.temperature = 1000.0f;

    p.top_p = 0.75f;
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 0, 1, 0, 1 });
    p.top_p = 0.85f;
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 1, 1, 0, 1 });
    p.top_p = 0.4f;
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 0, 1, 0, 0 });
    p.top_p = 0.0f; /* still keeps one token */
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 0, 1, 0, 0 });
    p.top_p = 1.0f; /* off */
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 1, 1, 1, 1 });
}

/* A wide vocabulary where the nucleus runs past the first lazily sorted block. */
static void test_top_p_large_vocab(void **state)
{
    (void)state;
    enum { VOCAB = 2048, CUT = 400 };
    float *logits = malloc(VOCAB * sizeof(*logits));
    int *expected = calloc(VOCAB, sizeof(*expected));
    assert_true(logits && expected);
    /* Token ranks are scrambled (7 is coprime to VOCAB) so the sort has real work to do. */
    for (int i = 0; i < VOCAB; i++) logits[(i * 7) % VOCAB] = -0.002f * (float)i;
    double total = 0.0, cumulative[CUT + 1];
    for (int i = 0; i < VOCAB; i++) total += exp(-0.002 * i);
    double sum = 0.0;
    for (int i = 0; i <= CUT; i++) cumulative[i] = (sum += exp((double)logits[(i * 7) % VOCAB]) / total);
    for (int i = 0; i <= CUT; i++) expected[(i * 7) % VOCAB] = 1;

    vkllm_sampling p = plain_params();
    p.temperature = 1000.0f;
    p.top_p = (float)((cumulative[CUT - 1] + cumulative[CUT]) / 2.0); /* the set is ranks 0..CUT */
    sampler *s = create_or_fail(&p, VOCAB);
    int *counts = calloc(VOCAB, sizeof(*counts));
    assert_non_null(counts);
    count_samples(s, logits, VOCAB, 8000, counts);
    for (int i = 0; i < VOCAB; i++) {
        if (expected[i] && counts[i] == 0) fail_msg("token %d is inside the nucleus but was never drawn", i);
        if (!expected[i] && counts[i] != 0) fail_msg("token %d is outside the nucleus but was drawn", i);
    }
    free(counts);
    free(expected);
    free(logits);
    sampler_free(s);
}

static void test_top_k_keeps_k_best(void **state)
{
    (void)state;
    enum { VOCAB = 6 };
    const float logits[VOCAB] = { 0.1f, 2.0f, -3.0f, 1.5f, 1.9f, 0.0f };
    vkllm_sampling p = plain_params();
    p.temperature = 1000.0f;
    p.top_k = 3;
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 0, 1, 0, 1, 1, 0 });
    p.top_k = 100; /* more than the vocabulary: everything */
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 1, 1, 1, 1, 1, 1 });
}

static void test_min_p_relative_to_best(void **state)
{
    (void)state;
    enum { VOCAB = 4 };
    const double probs[VOCAB] = { 0.5, 0.3, 0.15, 0.05 };
    float logits[VOCAB];
    logits_from_probs(probs, logits, VOCAB);
    vkllm_sampling p = plain_params();
    p.temperature = 1000.0f;

    p.min_p = 0.2f; /* keep p >= 0.1 */
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 1, 1, 1, 0 });
    p.min_p = 0.5f; /* keep p >= 0.25 */
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 1, 1, 0, 0 });
    p.min_p = 0.7f; /* keep p >= 0.35 */
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 1, 0, 0, 0 });
    p.min_p = 2.0f; /* nothing reaches it; the best token stays */
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 1, 0, 0, 0 });
}

/* top-k, top-p and min-p together, on the default chain order. */
static void test_filters_compose(void **state)
{
    (void)state;
    enum { VOCAB = 6 };
    const double probs[VOCAB] = { 0.02, 0.4, 0.08, 0.25, 0.2, 0.05 };
    float logits[VOCAB];
    logits_from_probs(probs, logits, VOCAB);
    vkllm_sampling p = plain_params();
    p.temperature = 1000.0f;
    p.top_k = 4;    /* 1, 3, 4, 2 -> renormalized 0.4/0.93 = 0.43, 0.27, 0.215, 0.086 */
    p.top_p = 0.9f; /* 0.43, 0.70, 0.91: keeps 1, 3, 4 */
    p.min_p = 0.6f; /* of the untempered 0.4: >= 0.24 keeps 1, 3 */
    expect_support(&p, logits, VOCAB, (const int[VOCAB]){ 0, 1, 0, 1, 0, 0 });
}

static int32_t greedy_after_history(vkllm_sampling p, const float *logits, int32_t n_vocab,
                                    const int32_t *history, int n_history)
{
    p.temperature = 0.0f;
    sampler *s = create_or_fail(&p, n_vocab);
    for (int i = 0; i < n_history; i++) assert_int_equal(sampler_accept(s, history[i]), VKLLM_OK);
    int32_t t = sample_or_fail(s, logits);
    sampler_free(s);
    return t;
}

static void test_repeat_penalty(void **state)
{
    (void)state;
    vkllm_sampling p = plain_params();
    p.repeat_penalty = 1.5f;
    p.repeat_last_n = 2;

    const float positive[4] = { 2.0f, 1.9f, 0.0f, 0.0f };
    assert_int_equal(greedy_after_history(p, positive, 4, NULL, 0), 0);
    /* 2.0 / 1.5 = 1.33 < 1.9 */
    assert_int_equal(greedy_after_history(p, positive, 4, (const int32_t[]){ 0 }, 1), 1);
    /* repeats are penalized once, not once per occurrence */
    assert_int_equal(greedy_after_history(p, (const float[4]){ 2.0f, 1.3f, 0.0f, 0.0f }, 4,
                                          (const int32_t[]){ 0, 0 }, 2), 0);
    /* token 0 has left the two-token window */
    assert_int_equal(greedy_after_history(p, positive, 4, (const int32_t[]){ 0, 2, 3 }, 3), 0);

    /* negative logits are multiplied: -1.0 * 1.5 = -1.5 < -1.2 */
    const float negative[2] = { -1.0f, -1.2f };
    assert_int_equal(greedy_after_history(p, negative, 2, (const int32_t[]){ 0 }, 1), 1);

    p.repeat_last_n = 0; /* window off */
    assert_int_equal(greedy_after_history(p, positive, 4, (const int32_t[]){ 0 }, 1), 0);
}

static void test_frequency_and_presence_penalties(void **state)
{
    (void)state;
    const float logits[2] = { 2.0f, 1.5f };
    vkllm_sampling p = plain_params();
    p.frequency_penalty = 0.2f;
    /* one occurrence: 2.0 - 0.2 = 1.8 still wins; two: 2.0 - 0.4 = 1.6 still; three: 1.4 loses */
    assert_int_equal(greedy_after_history(p, logits, 2, (const int32_t[]){ 0, 0 }, 2), 0);
    assert_int_equal(greedy_after_history(p, logits, 2, (const int32_t[]){ 0, 0, 0 }, 3), 1);

    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.6f; /* 1.4 whatever the count */
    assert_int_equal(greedy_after_history(p, logits, 2, (const int32_t[]){ 0 }, 1), 1);
    assert_int_equal(greedy_after_history(p, logits, 2, (const int32_t[]){ 1 }, 1), 0);
}

static void test_reset_clears_history(void **state)
{
    (void)state;
    const float logits[2] = { 2.0f, 1.9f };
    vkllm_sampling p = plain_params();
    p.temperature = 0.0f;
    p.repeat_penalty = 2.0f;
    sampler *s = create_or_fail(&p, 2);
    assert_int_equal(sampler_accept(s, 0), VKLLM_OK);
    assert_int_equal(sample_or_fail(s, logits), 1);
    sampler_reset(s);
    assert_int_equal(sample_or_fail(s, logits), 0);
    sampler_free(s);
}

static void test_bad_logits_are_errors(void **state)
{
    (void)state;
    vkllm_sampling p = vkllm_sampling_default();
    sampler *s = create_or_fail(&p, 3);
    int32_t token = 0;
    assert_int_equal(sampler_sample(s, (const float[3]){ 1.0f, NAN, 0.0f }, &token), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "token 1"));
    assert_int_equal(sampler_sample(s, (const float[3]){ INFINITY, 0.0f, 0.0f }, &token),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(sampler_sample(s, (const float[3]){ -INFINITY, -INFINITY, -INFINITY }, &token),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(sampler_sample(s, NULL, &token), VKLLM_ERROR_INVALID_ARGUMENT);
    sampler_free(s);

    /* -inf masks a token: never drawn, even where it would otherwise be likely */
    vkllm_sampling plain = plain_params();
    plain.temperature = 1000.0f;
    expect_support(&plain, (const float[3]){ -INFINITY, 0.0f, 1.0f }, 3, (const int[3]){ 0, 1, 1 });
}

static void test_bad_params_are_errors(void **state)
{
    (void)state;
    sampler *s = (sampler *)&s;
    vkllm_sampling p = vkllm_sampling_default();
    p.temperature = NAN;
    assert_int_equal(sampler_create(&p, 10, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_null(s);

    p = vkllm_sampling_default();
    p.top_p = NAN;
    assert_int_equal(sampler_create(&p, 10, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    p = vkllm_sampling_default();
    p.min_p = INFINITY;
    assert_int_equal(sampler_create(&p, 10, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    p = vkllm_sampling_default();
    p.repeat_penalty = 0.0f;
    assert_int_equal(sampler_create(&p, 10, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    p = vkllm_sampling_default();
    p.repeat_last_n = -1;
    assert_int_equal(sampler_create(&p, 10, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    p = vkllm_sampling_default();
    assert_int_equal(sampler_create(&p, 0, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(sampler_create(NULL, 10, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(sampler_create(&p, 10, NULL), VKLLM_ERROR_INVALID_ARGUMENT);

    /* disabled filters are valid values, not errors */
    p.top_k = -5;
    p.top_p = 3.0f;
    p.min_p = -1.0f;
    assert_int_equal(sampler_create(&p, 10, &s), VKLLM_OK);
    assert_int_equal(sampler_accept(s, 10), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(sampler_accept(s, -1), VKLLM_ERROR_INVALID_ARGUMENT);
    sampler_free(s);
}

static void test_single_token_vocab(void **state)
{
    (void)state;
    const float logit = -7.5f;
    vkllm_sampling p = vkllm_sampling_default();
    p.repeat_penalty = 1.3f;
    sampler *s = create_or_fail(&p, 1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sample_or_fail(s, &logit), 0);
        assert_int_equal(sampler_accept(s, 0), VKLLM_OK);
    }
    sampler_free(s);
    p.temperature = 0.0f;
    s = create_or_fail(&p, 1);
    assert_int_equal(sample_or_fail(s, &logit), 0);
    sampler_free(s);
}

/* Default chain on a Qwen-sized vocabulary: exercises the partial selection at full width. */
static void test_large_vocab_default_chain(void **state)
{
    (void)state;
    enum { VOCAB = 152064 };
    float *logits = malloc(VOCAB * sizeof(*logits));
    assert_non_null(logits);
    uint32_t x = 12345;
    for (int i = 0; i < VOCAB; i++) {
        x = x * 1664525u + 1013904223u;
        logits[i] = (float)(x >> 8) / (float)(1u << 24) * 20.0f - 10.0f;
    }
    int best = 0;
    for (int i = 1; i < VOCAB; i++)
        if (logits[i] > logits[best]) best = i;
    vkllm_sampling p = vkllm_sampling_default();
    sampler *s = create_or_fail(&p, VOCAB);
    for (int i = 0; i < 20; i++) {
        int32_t t = sample_or_fail(s, logits);
        assert_true(logits[t] >= logits[best] + logf(p.min_p)); /* min-p bounds every survivor */
        assert_int_equal(sampler_accept(s, t), VKLLM_OK);
    }
    sampler_free(s);
    p.top_k = 0; /* top-p alone over the whole row */
    s = create_or_fail(&p, VOCAB);
    for (int i = 0; i < 5; i++) {
        int32_t t = sample_or_fail(s, logits);
        assert_true(logits[t] >= logits[best] + logf(p.min_p));
    }
    sampler_free(s);
    free(logits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_llama_cpp),
        cmocka_unit_test(test_greedy_is_argmax),
        cmocka_unit_test(test_top_k_1_is_argmax_at_any_temperature),
        cmocka_unit_test(test_seed_determines_sequence),
        cmocka_unit_test(test_reset_restarts_stream),
        cmocka_unit_test(test_stream_is_pinned),
        cmocka_unit_test(test_frequencies_match_softmax),
        cmocka_unit_test(test_temperature_sharpens),
        cmocka_unit_test(test_top_p_keeps_smallest_set_reaching_p),
        cmocka_unit_test(test_top_p_large_vocab),
        cmocka_unit_test(test_top_k_keeps_k_best),
        cmocka_unit_test(test_min_p_relative_to_best),
        cmocka_unit_test(test_filters_compose),
        cmocka_unit_test(test_repeat_penalty),
        cmocka_unit_test(test_frequency_and_presence_penalties),
        cmocka_unit_test(test_reset_clears_history),
        cmocka_unit_test(test_bad_logits_are_errors),
        cmocka_unit_test(test_bad_params_are_errors),
        cmocka_unit_test(test_single_token_vocab),
        cmocka_unit_test(test_large_vocab_default_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
