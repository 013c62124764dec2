/* The arithmetic and the log-probability file of `vkllm perplexity` (src/eval/), on hand-computed cases: no
 * device.  The agreement with llama-perplexity on a real model is the CLI test perplexity_stories. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/logprob_file.h"
#include "eval/ppl_stats.h"

static void test_log_softmax(void **state)
{
    (void)state;
    float logits[4] = {1.0f, 2.0f, 3.0f, 4.0f}, out[4];
    double lse = log(exp(1.0) + exp(2.0) + exp(3.0) + exp(4.0));
    for (uint32_t i = 0; i < 4; i++) assert_true(fabs(ppl_log_prob(logits, 4, i) - (1.0 + i - lse)) < 1e-12);
    ppl_log_softmax(logits, 4, out);
    for (uint32_t i = 0; i < 4; i++) assert_true(fabs(out[i] - (1.0 + i - lse)) < 1e-6);
    /* Large logits must not overflow: the maximum is taken out first. */
    float big[2] = {1e4f, 1e4f};
    assert_true(fabs(ppl_log_prob(big, 2, 0) - log(0.5)) < 1e-12);
}

static void test_perplexity_and_error(void **state)
{
    (void)state;
    ppl_accum a = {0};
    assert_true(ppl_value(&a) == 0.0 && ppl_error(&a) == 0.0);
    /* Uniform over 8: PPL 8 exactly, no spread. */
    for (int i = 0; i < 10; i++) ppl_add(&a, log(1.0 / 8));
    assert_true(fabs(ppl_value(&a) - 8.0) < 1e-9);
    assert_true(ppl_error(&a) < 1e-6); /* the variance cancels to rounding */
    /* nll 1 and 3: mean 2, variance 1 (population), error sqrt(1 / 1) * e^2 as llama-perplexity computes it. */
    ppl_accum b = {0};
    ppl_add(&b, -1.0);
    ppl_add(&b, -3.0);
    assert_true(fabs(ppl_value(&b) - exp(2.0)) < 1e-9);
    assert_true(fabs(ppl_error(&b) - exp(2.0)) < 1e-9);
}

static void test_kl_divergence(void **state)
{
    (void)state;
    kld_accum a = {0};
    float p[2] = {(float)log(0.5), (float)log(0.5)}, q[2] = {(float)log(0.25), (float)log(0.75)};
    /* Identical rows: 0 and the same top token.  Then KL(p || q) = 0.5 ln 2 + 0.5 ln(2/3). */
    assert_int_equal(kld_add(&a, p, p, 2), VKLLM_OK);
    assert_int_equal(kld_add(&a, p, q, 2), VKLLM_OK);
    double expect = 0.5 * log(0.5 / 0.25) + 0.5 * log(0.5 / 0.75);
    kld_result r = kld_finish(&a);
    assert_int_equal(r.count, 2);
    assert_true(fabs(r.mean - expect / 2) < 1e-6);
    assert_true(fabs(r.p99 - expect) < 1e-6);
    assert_true(fabs(r.top1 - 0.5) < 1e-12); /* p's top is entry 0 (ties keep the first), q's entry 1 */
    kld_free(&a);
    /* Nearest-rank 99th percentile of 1..200: the 198th value. */
    kld_accum b = {0};
    float base[2] = {0.0f, -30.0f};
    for (int i = 200; i >= 1; i--) {
        /* KL(base || run) ~= 1 - exp(-x) for run = (-x, ...): any increasing map will do for the rank. */
        float run[2] = {-(float)i * 1e-3f, -30.0f};
        assert_int_equal(kld_add(&b, base, run, 2), VKLLM_OK);
    }
    r = kld_finish(&b);
    assert_true(r.p99 > b.values[196] - 1e-12 && r.p99 == b.values[197]);
    assert_true(fabs(r.p99 - 198e-3) < 1e-5);
    assert_true(r.top1 == 1.0);
    kld_free(&b);
}

static void test_logprob_file(void **state)
{
    (void)state;
    char path[] = "/tmp/vkllm-test-logprob-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int32_t tokens[2 * 8];
    for (int i = 0; i < 16; i++) tokens[i] = i * 3;
    float rows[3 * 5]; /* n_ctx 8, first 4: rows 4, 5, 6 of each chunk */
    for (int i = 0; i < 15; i++) rows[i] = -(float)i;
    logprob_file w;
    assert_int_equal(logprob_file_create(path, 5, 8, 4, 2, tokens, &w), VKLLM_OK);
    assert_int_equal(logprob_rows_per_chunk(&w), 3);
    assert_int_equal(logprob_file_write(&w, rows, 3), VKLLM_OK);
    assert_int_equal(logprob_file_write(&w, rows, 3), VKLLM_OK);
    assert_int_equal(logprob_file_close(&w), VKLLM_OK);

    logprob_file r;
    assert_int_equal(logprob_file_open(path, &r), VKLLM_OK);
    assert_int_equal(r.n_vocab, 5);
    assert_int_equal(r.n_chunks, 2);
    assert_memory_equal(r.tokens, tokens, sizeof tokens);
    float got[15];
    for (int c = 0; c < 2; c++) {
        assert_int_equal(logprob_file_read(&r, got, 3), VKLLM_OK);
        assert_memory_equal(got, rows, sizeof rows);
    }
    assert_int_equal(logprob_file_read(&r, got, 1), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "truncated"));
    assert_int_equal(logprob_file_close(&r), VKLLM_OK);

    /* Not our file. */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("GGUF and more bytes than a header", f);
    fclose(f);
    assert_int_equal(logprob_file_open(path, &r), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "magic VKLLMLP1"));
    remove(path);
    close(fd);
    assert_int_equal(logprob_file_open("/nonexistent/base.kld", &r), VKLLM_ERROR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_softmax),
        cmocka_unit_test(test_perplexity_and_error),
        cmocka_unit_test(test_kl_divergence),
        cmocka_unit_test(test_logprob_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
