/* Speculative decoding (src/speculative/): greedy output token for token that of plain greedy decoding for every
 * drafter and k = 1..8 (drafts always right, always wrong, cut by the end of generation, by n_predict and by a full
 * context); rollback leaves the cache as plain decoding would (later logits bitwise equal); a verification pass is
 * batch-invariant (every row's logits bitwise those of single-token decoding) under every tuning row; the
 * speculative sampling rule preserves the distribution (chi-square); lookup and vocabulary checks.
 * stories260K (real text) and its Q8_0 requantization (a draft with other logits, same vocabulary). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "model/context.h"
#include "model/model.h"
#include "ops/flash_attn.h"
#include "paths.h"
#include "speculative/spec.h"
#include "tokenizer/vocab.h"
#include "quantize/quantize.h"
#include "tools/synth.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")

static char tmpdir[] = "/tmp/vkllm-test-spec-XXXXXX";

static vkllm_context *context(vkllm_model *m, uint32_t n_ctx, uint32_t n_outputs)
{
    vkllm_context_params p = vkllm_context_default_params();
    p.n_ctx = n_ctx;
    p.n_outputs_max = n_outputs;
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, &p, &c), "vkllm_context_create");
    return c;
}

static vkllm_sampling greedy(void)
{
    vkllm_sampling s = vkllm_sampling_default();
    s.temperature = 0;
    return s;
}

/* Plain greedy tokens after prompt[0..n): out[0..n_out), by one-token passes of the public API. */
static void plain_tokens(vkllm_context *c, const vkllm_token *prompt, uint32_t n, vkllm_token *out, uint32_t n_out)
{
    th_check_status(vkllm_seq_truncate(c, 0, 0), "truncate");
    int32_t pos[64], seq[64] = {0};
    int8_t want[64] = {0};
    for (uint32_t i = 0; i < n; i++) pos[i] = (int32_t)i;
    want[n - 1] = 1;
    vkllm_batch b = {n, prompt, pos, seq, want};
    th_check_status(vkllm_decode_greedy(c, &b, &out[0]), "prompt");
    for (uint32_t i = 1; i < n_out; i++) {
        int32_t p = (int32_t)(n + i - 1), s0 = 0;
        int8_t w = 1;
        vkllm_batch one = {1, &out[i - 1], &p, &s0, &w};
        th_check_status(vkllm_decode_greedy(c, &one, &out[i]), "decode");
    }
}

static uint32_t tokenize(vkllm_model *m, const char *text, vkllm_token *out, size_t cap)
{
    size_t n = 0;
    th_check_status(vkllm_tokenize(m, text, strlen(text), 1, 0, out, cap, &n), "tokenize");
    return (uint32_t)n;
}

/* ---- the drafters' pieces alone ---- */

static void test_lookup(void **state)
{
    (void)state;
    vkllm_token out[8];
    uint32_t m;
    /* "1 2 3 4 | 1 2 3" -> latest "1 2 3" is at 0, followed by 4, then the proposal copies on: 4 1 2 3 4 */
    const vkllm_token h[] = {1, 2, 3, 4, 1, 2, 3};
    assert_int_equal(spec_lookup(h, 7, 3, 5, out, &m), 5);
    assert_int_equal(m, 3);
    const vkllm_token want[] = {4, 1, 2, 3, 4};
    assert_memory_equal(out, want, sizeof want);
    /* the latest occurrence wins: "5 9 | 5 7 | 5" proposes 7 */
    const vkllm_token h2[] = {5, 9, 5, 7, 5};
    assert_int_equal(spec_lookup(h2, 5, 3, 1, out, &m), 1);
    assert_int_equal(out[0], 7);
    assert_int_equal(m, 1);
    /* nothing repeats: no draft */
    const vkllm_token h3[] = {1, 2, 3, 4};
    assert_int_equal(spec_lookup(h3, 4, 3, 4, out, &m), 0);
    assert_int_equal(spec_lookup(h3, 1, 3, 4, out, &m), 0);
    assert_int_equal(spec_lookup(h3, 0, 3, 4, out, &m), 0);
    /* pass sizes: k + 1 a power of two, or draft_max + 1 */
    assert_int_equal(spec_pass_size(0, 8), 0);
    assert_int_equal(spec_pass_size(1, 8), 1);
    assert_int_equal(spec_pass_size(2, 8), 1);
    assert_int_equal(spec_pass_size(5, 8), 3);
    assert_int_equal(spec_pass_size(7, 8), 7);
    assert_int_equal(spec_pass_size(8, 8), 8);
    assert_int_equal(spec_pass_size(9, 8), 8);
    assert_int_equal(spec_pass_size(6, 6), 6);
}

/* Adaptive drafting: the draft length grows on success and shrinks on failure; by counts (sampling) a drafter
 * that keeps nothing pauses for 8, then 16 passes and drafts again; by time (greedy) plain passes come first to
 * measure them (the first untimed: a slow first pass does not make drafting look cheap), lookup passes 3x as slow
 * per token pause it after 2 passes, 1.5x as slow after 6, and its probes after a pause draft at most 2 tokens,
 * judged after 2 passes; lookup's length follows the measured cost of a row; a draft model gives up at its second
 * pause. */
static void test_adaptive(void **state)
{
    (void)state;
    spec_adaptive ad;
    spec_adaptive_start(&ad, false, true, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 1);
    spec_adaptive_update(&ad, 1, 1, 1.0, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 3);
    spec_adaptive_update(&ad, 3, 3, 1.0, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 7);
    assert_int_equal(spec_adaptive_room(&ad, 5), 5); /* never past the room */
    spec_adaptive_update(&ad, 7, 7, 1.0, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 7);
    spec_adaptive_update(&ad, 7, 0, 1.0, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 3);
    /* nothing accepted from here: once the decayed acceptance falls below 0.3 per pass, pauses of 8, 16, 32, 64
     * passes with probes of 2 between them */
    uint32_t drafting = 0;
    for (uint32_t pass = 0; pass < 200; pass++) {
        uint32_t k = spec_adaptive_room(&ad, 7);
        drafting += k > 0;
        spec_adaptive_update(&ad, k, 0, 1.0, 7);
    }
    printf("adaptive: %u of 200 passes drafted after the acceptance fell to 0\n", drafting);
    assert_true(drafting >= 8 && drafting <= 25);
    /* by time (lookup: the whole room): plain passes first, then drafting passes at more than twice the cost per
     * token pause drafting after 2 of them */
    spec_adaptive_start(&ad, true, false, 7);
    for (int i = 0; i < 3; i++) { /* the first plain pass is not timed: it may compile or warm caches */
        assert_int_equal(spec_adaptive_room(&ad, 7), 0);
        spec_adaptive_update(&ad, 0, 0, i ? 1.0 : 50.0, 7);
    }
    spec_adaptive_update(&ad, 7, 0, 3.0, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 7);
    spec_adaptive_update(&ad, 7, 0, 3.0, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 0);
    /* at 1.5x, not clearly a loss, lookup (all or nothing per draft) is judged over 6 passes */
    spec_adaptive_start(&ad, true, false, 7);
    for (int i = 0; i < 3; i++) spec_adaptive_update(&ad, 0, 0, 1.0, 7);
    for (int i = 0; i < 5; i++) {
        spec_adaptive_update(&ad, 7, 0, 1.5, 7);
        assert_int_equal(spec_adaptive_room(&ad, 7), 7);
    }
    spec_adaptive_update(&ad, 7, 0, 1.5, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 0);
    /* after the pause of 8 plain passes, lookup probes with drafts of at most 2, judged after 2 of them: failing,
     * they pause it for 16; paying, drafting goes on (at the length its costs choose) */
    for (int i = 0; i < 7; i++) {
        spec_adaptive_update(&ad, 0, 0, 1.0, 7);
        assert_int_equal(spec_adaptive_room(&ad, 7), 0);
    }
    spec_adaptive_update(&ad, 0, 0, 1.0, 7);
    assert_int_equal(spec_adaptive_room(&ad, 7), 2);
    spec_adaptive_update(&ad, 2, 0, 2.0, 7);
    assert_int_equal(spec_adaptive_room(&ad, 1), 1); /* never past the room */
    assert_true(spec_adaptive_room(&ad, 7) >= 1 && spec_adaptive_room(&ad, 7) <= 2);
    spec_adaptive_update(&ad, 2, 0, 2.0, 7);
    uint32_t paused = 0;
    while (spec_adaptive_room(&ad, 7) == 0 && paused < 100) {
        paused++;
        spec_adaptive_update(&ad, 0, 0, 1.0, 7);
    }
    assert_int_equal(paused, 16);
    spec_adaptive_update(&ad, 2, 2, 1.0, 7);
    spec_adaptive_update(&ad, 2, 2, 1.0, 7);
    assert_true(spec_adaptive_room(&ad, 7) > 0);
    /* a fast drafting pass keeps drafting */
    spec_adaptive_start(&ad, true, false, 7);
    for (int i = 0; i < 3; i++) spec_adaptive_update(&ad, 0, 0, 1.0, 7);
    for (int i = 0; i < 10; i++) {
        uint32_t k = spec_adaptive_room(&ad, 7);
        assert_true(k > 0);
        spec_adaptive_update(&ad, k, k, 1.2, 7); /* 1.2 ms for k + 1 tokens */
    }
    /* the draft length from costs: rows at 40% of a plain pass, every other first draft kept and never a second:
     * the length settles at 1 (each pass 1.4 ms for 1.5 tokens pays); rows at 1% of a pass and every draft kept:
     * the whole room */
    spec_adaptive_start(&ad, true, false, 7);
    for (int i = 0; i < 3; i++) spec_adaptive_update(&ad, 0, 0, 1.0, 7);
    uint32_t longest_late = 0;
    for (uint32_t i = 0; i < 300; i++) {
        uint32_t k = spec_adaptive_room(&ad, 7);
        if (i >= 250 && k > longest_late) longest_late = k;
        spec_adaptive_update(&ad, k, k ? i % 2 : 0, 1.0 + (k ? 0.4 * k : 0.0), 7);
    }
    assert_int_equal(longest_late, 1);
    spec_adaptive_start(&ad, true, false, 7);
    for (int i = 0; i < 3; i++) spec_adaptive_update(&ad, 0, 0, 1.0, 7);
    for (uint32_t i = 0; i < 20; i++) {
        uint32_t k = spec_adaptive_room(&ad, 7);
        spec_adaptive_update(&ad, k, k, 1.0 + 0.01 * k, 7);
    }
    assert_int_equal(spec_adaptive_room(&ad, 7), 7);
    /* a draft model gives up at its second pause: two probes */
    spec_adaptive_start(&ad, true, true, 7);
    for (int i = 0; i < 3; i++) spec_adaptive_update(&ad, 0, 0, 1.0, 7);
    drafting = 0;
    for (uint32_t i = 0; i < 2000; i++) {
        uint32_t k = spec_adaptive_room(&ad, 7);
        drafting += k > 0;
        spec_adaptive_update(&ad, k, 0, k ? 5.0 : 1.0, 7);
    }
    assert_int_equal(drafting, 2);
}

/* ---- the verification engine ---- */

/* Always-right and always-wrong drafts through vkllm_verify_greedy, k = 0..8: the targets are plain greedy's next
 * tokens, the accepted counts k and 0, and decoding continues with the same tokens. */
static void test_verify_right_and_wrong(void **state)
{
    (void)state;
    vkllm_model *m = th_load_model(STORIES);
    vkllm_context *c = context(m, 256, 9);
    vkllm_token prompt[16];
    uint32_t n = tokenize(m, "Once upon a time", prompt, 16);
    enum { N = 40 };
    vkllm_token plain[N];
    plain_tokens(c, prompt, n, plain, N);
    for (uint32_t k = 0; k <= 8; k++) {
        for (int right = 0; right <= 1; right++) {
            /* the prompt, then verification passes from plain[0] on */
            th_check_status(vkllm_seq_truncate(c, 0, 0), "truncate");
            int32_t pos[16], seq[16] = {0};
            int8_t want[16] = {0};
            for (uint32_t i = 0; i < n; i++) pos[i] = (int32_t)i;
            want[n - 1] = 1;
            vkllm_batch b = {n, prompt, pos, seq, want};
            vkllm_token first;
            th_check_status(vkllm_decode_greedy(c, &b, &first), "prompt");
            assert_int_equal(first, plain[0]);
            uint32_t at = 0; /* plain[at] is the next input */
            while (at + 1 + k < N) {
                vkllm_token draft[8], target[9];
                for (uint32_t i = 0; i < k; i++)
                    draft[i] = right ? plain[at + 1 + i] : (plain[at + 1 + i] + 1) % (vkllm_token)m->cfg.n_vocab;
                uint32_t a = 99;
                if (k == 3 && at == 4) { /* the logits version: each row's argmax is the greedy target */
                    uint32_t len = c->pages->seq_len[0];
                    th_check_status(vkllm_verify_logits(c, 0, plain[at], draft, k), "verify logits");
                    for (uint32_t i = 0; i <= k; i++) {
                        const float *l = vkllm_get_logits(c, i);
                        uint32_t best = 0;
                        for (uint32_t t = 1; t < m->cfg.n_vocab; t++) best = l[t] > l[best] ? t : best;
                        if (i == 0 || right) assert_int_equal(best, plain[at + 1 + i]);
                    }
                    assert_null(vkllm_get_logits(c, k + 1));
                    assert_int_equal(c->pages->seq_len[0], len + k + 1);
                    th_check_status(vkllm_seq_truncate(c, 0, len), "truncate");
                }
                th_check_status(vkllm_verify_greedy(c, 0, plain[at], draft, k, target, &a), "verify");
                assert_int_equal(a, right ? k : 0);
                for (uint32_t i = 0; i <= a; i++) assert_int_equal(target[i], plain[at + 1 + i]);
                assert_int_equal(c->pages->seq_len[0], n + at + 1 + a);
                at += a + 1;
            }
        }
    }
    vkllm_context_free(c);
    th_free_model(m);
}

/* After a pass that rejected everything, the cache is plain decoding's: the next token's logits are bitwise those
 * of plain decoding (the rejected keys were written into pages that stay mapped, and later overwritten). */
static void test_rollback_same_logits(void **state)
{
    (void)state;
    vkllm_model *m = th_load_model(STORIES);
    vkllm_context *c = context(m, 256, 9);
    vkllm_token prompt[16];
    uint32_t n = tokenize(m, "Once upon a time", prompt, 16);
    enum { N = 24 };
    vkllm_token plain[N];
    plain_tokens(c, prompt, n, plain, N);
    uint32_t n_vocab = m->cfg.n_vocab;
    float *want = malloc(n_vocab * sizeof *want);
    /* plain: the logits after plain[N - 2] (from its one-token pass, still the last one run) */
    {
        th_check_status(vkllm_seq_truncate(c, 0, n + N - 2), "truncate");
        int32_t p = (int32_t)(n + N - 2), s0 = 0;
        int8_t w = 1;
        vkllm_batch one = {1, &plain[N - 2], &p, &s0, &w};
        th_check_status(vkllm_decode(c, &one), "decode");
        memcpy(want, vkllm_get_logits(c, 0), n_vocab * sizeof *want);
    }
    /* speculative: from plain[4], wrong drafts of 8 (rejected, rolled back) at every step */
    th_check_status(vkllm_seq_truncate(c, 0, n + 4), "truncate");
    for (uint32_t at = 4; at < N - 2; at++) {
        vkllm_token draft[8], target[9];
        for (uint32_t i = 0; i < 8; i++) draft[i] = (vkllm_token)((plain[at] + 7 * i + 3) % n_vocab);
        if (draft[0] == plain[at + 1]) draft[0] = (draft[0] + 1) % (vkllm_token)n_vocab;
        uint32_t a;
        uint32_t room = spec_draft_room(c, n + at, 8);
        th_check_status(vkllm_verify_greedy(c, 0, plain[at], draft, room, target, &a), "verify");
        assert_int_equal(a, 0);
        assert_int_equal(target[0], plain[at + 1]);
    }
    int32_t p = (int32_t)(n + N - 2), s0 = 0;
    int8_t w = 1;
    vkllm_batch one = {1, &plain[N - 2], &p, &s0, &w};
    th_check_status(vkllm_decode(c, &one), "decode");
    assert_memory_equal(vkllm_get_logits(c, 0), want, n_vocab * sizeof *want);
    free(want);
    vkllm_context_free(c);
    th_free_model(m);
}

/* ---- batch invariance ---- */

/* Under tuning row `row`: the logits of every row of a verification pass of k + 1 tokens, k = 1..8 (every_k) or
 * k = 1, 3 and 8, are bitwise those of single-token decoding at the same position, at a position whose context
 * bucket splits the attention's keys (1024: every row splits at 256 or 512 keys).  Returns how many rows of plain
 * (not invariant) batches of 4 and 9 tokens differed, for the message. */
static uint32_t check_invariance(const char *row, bool every_k)
{
    setenv("VKLLM_TUNING", row, 1);
    vkllm_model *m = th_load_model(STORIES);
    unsetenv("VKLLM_TUNING");
    vkllm_context *c = context(m, 2048, 9);
    uint32_t n_vocab = m->cfg.n_vocab;
    enum { START = 520, K = 8 };
    static vkllm_token text[START + K + 1];
    for (uint32_t i = 0; i < START + K + 1; i++) text[i] = (vkllm_token)(1 + (i * 37 + i / 7) % (n_vocab - 1));
    int32_t pos[256], seq[256] = {0};
    int8_t want[256] = {0};
    for (uint32_t done = 0; done < START;) {
        uint32_t k = START - done < 256 ? START - done : 256;
        for (uint32_t i = 0; i < k; i++) pos[i] = (int32_t)(done + i);
        vkllm_batch b = {k, text + done, pos, seq, want};
        th_check_status(vkllm_decode(c, &b), "prefill");
        done += k;
    }
    /* single-token logits at START..START + K */
    float *single = malloc((size_t)(K + 1) * n_vocab * sizeof *single);
    for (uint32_t i = 0; i <= K; i++) {
        int32_t p = (int32_t)(START + i), s0 = 0;
        int8_t w = 1;
        vkllm_batch one = {1, &text[START + i], &p, &s0, &w};
        th_check_status(vkllm_decode(c, &one), "decode");
        memcpy(single + (size_t)i * n_vocab, vkllm_get_logits(c, 0), n_vocab * sizeof *single);
    }
    uint32_t plain_differ = 0;
    for (uint32_t k = 1; k <= K; k++) {
        if (!every_k && k != 1 && k != 3 && k != K) continue;
        th_check_status(vkllm_seq_truncate(c, 0, START), "truncate");
        th_check_status(spec_verify_pass(c, 0, text[START], text + START + 1, k, false, NULL), "verify pass");
        for (uint32_t i = 0; i <= k; i++)
            if (memcmp(vkllm_get_logits(c, i), single + (size_t)i * n_vocab, n_vocab * sizeof *single))
                fail_msg("tuning row %s: row %u of a verification pass of %u tokens differs from single-token "
                         "decoding", row, i, k + 1);
        /* the same batch as a plain vkllm_decode, for the record (two sizes: the mat-vec and the mat-mul's) */
        if (k != 3 && k != 8) continue;
        th_check_status(vkllm_seq_truncate(c, 0, START), "truncate");
        int8_t all[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
        for (uint32_t i = 0; i <= k; i++) pos[i] = (int32_t)(START + i);
        vkllm_batch b = {k + 1, text + START, pos, seq, all};
        th_check_status(vkllm_decode(c, &b), "plain batch");
        for (uint32_t i = 0; i <= k; i++)
            plain_differ += memcmp(vkllm_get_logits(c, i), single + (size_t)i * n_vocab, n_vocab * sizeof *single) != 0;
    }
    free(single);
    vkllm_context_free(c);
    th_free_model(m);
    return plain_differ;
}

/* Every pass size on lavapipe's own row; on the GPU rows passes of 2, 4 and 9 tokens (one column, a partial block
 * and a block plus one of the mat-vec's columns): each pass size is a mat-vec pipeline of its own per weight
 * product, compiled cold in CI, and the order of a column's sums does not depend on the column count by
 * construction (shaders/matvec.comp), which the CPU row's eight sizes check. */
static void test_batch_invariance_every_tuning_row(void **state)
{
    (void)state;
    const char *rows[] = {"cpu", "nvidia", "amd-wave32", "amd-wave64", "intel", "apple", "unknown"};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        uint32_t differ = check_invariance(rows[i], i == 0);
        printf("tuning row %-10s: verification passes bitwise equal to single-token decoding; rows of plain batches "
               "that differ: %u of 14\n", rows[i], differ);
    }
}

/* A verification pass of 33 tokens where the tuning row sends prompts of 32 tokens or more to the cooperative-matrix
 * attention and mat-mul (nvidia, with emulated cooperative matrices; the synthetic tiny model, heads of 64): its rows
 * stay bitwise those of single-token decoding.  On lavapipe the plain batch takes the coopmat mat-mul but not the
 * coopmat attention (printed: the emulated attention does not plan this shape there). */
static void test_batch_invariance_coopmat_prompt_paths(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/tiny-cm.gguf", tmpdir);
    synth_options o = {.seed = 3};
    assert_true(quant_recipe_from_name("F16", true, &o.recipe));
    th_check_status(synth_write(synth_preset_find("tiny"), &o, path), "synth_write"); /* head_dim 64 */
    setenv("VKLLM_TUNING", "nvidia", 1);
    setenv("VKLLM_COOPMAT", "emulate", 1);
    vkllm_model *m = th_load_model(path);
    unsetenv("VKLLM_TUNING");
    unsetenv("VKLLM_COOPMAT");
    vkllm_context *c = context(m, 256, 33);
    uint32_t n_vocab = m->cfg.n_vocab;
    enum { START = 40, K = 32 };
    vkllm_token text[START + K + 1];
    for (uint32_t i = 0; i < START + K + 1; i++) text[i] = (vkllm_token)(1 + (i * 53 + 11) % (n_vocab - 1));
    int32_t pos[START + K + 1], seq[START + K + 1] = {0};
    int8_t want[START + K + 1] = {0};
    for (uint32_t i = 0; i < START + K + 1; i++) pos[i] = (int32_t)i;
    vkllm_batch b = {START, text, pos, seq, want};
    th_check_status(vkllm_decode(c, &b), "prefill");
    float *single = malloc((size_t)(K + 1) * n_vocab * sizeof *single);
    for (uint32_t i = 0; i <= K; i++) {
        int8_t w = 1;
        vkllm_batch one = {1, &text[START + i], &pos[START + i], seq, &w};
        th_check_status(vkllm_decode(c, &one), "decode");
        memcpy(single + (size_t)i * n_vocab, vkllm_get_logits(c, 0), n_vocab * sizeof *single);
    }
    th_check_status(vkllm_seq_truncate(c, 0, START), "truncate");
    th_check_status(vkllm_verify_logits(c, 0, text[START], text + START + 1, K), "verify");
    for (uint32_t i = 0; i <= K; i++)
        if (memcmp(vkllm_get_logits(c, i), single + (size_t)i * n_vocab, n_vocab * sizeof *single))
            fail_msg("row %u of a verification pass of %u tokens differs from single-token decoding", i, K + 1);
    /* the same batch as a plain vkllm_decode, for the record */
    th_check_status(vkllm_seq_truncate(c, 0, START), "truncate");
    int8_t all[K + 1];
    memset(all, 1, sizeof all);
    vkllm_batch plain = {K + 1, text + START, pos + START, seq, all};
    th_check_status(vkllm_decode(c, &plain), "plain batch");
    uint32_t differ = 0;
    for (uint32_t i = 0; i <= K; i++)
        differ += memcmp(vkllm_get_logits(c, i), single + (size_t)i * n_vocab, n_vocab * sizeof *single) != 0;
    ops_attention_shape as = {.n_tokens = K + 1, .n_heads = m->cfg.n_head, .max_context = 256, .scale = 0.125f,
                              .kv = c->kv};
    printf("plain batch of %u tokens: cooperative-matrix attention %s\n", K + 1,
           ops_attention_uses_coopmat(m->ops, &as) ? "yes" : "no");
    printf("nvidia row, emulated cooperative matrices: a verification pass of %u tokens bitwise equal to single-token "
           "decoding; rows of the plain batch that differ: %u of %u\n", K + 1, differ, K + 1);
    free(single);
    vkllm_context_free(c);
    th_free_model(m);
    remove(path);
}

/* ---- generation: same text ---- */

typedef struct run_result {
    th_text text;
    vkllm_status status;
    vkllm_generate_stats stats;
    uint32_t cached;
} run_result;

static run_result run(vkllm_context *c, const char *prompt, uint32_t n_predict, const vkllm_sampling *s)
{
    run_result r = {0};
    th_check_status(vkllm_seq_truncate(c, 0, 0), "truncate");
    r.status = vkllm_generate(c, prompt, 0, n_predict, s, th_text_append, &r.text, &r.stats);
    r.cached = c->pages->seq_len[0];
    return r;
}

static void assert_same_run(const run_result *plain, const run_result *spec, const char *what, uint32_t k)
{
    if (strcmp(plain->text.buf, spec->text.buf))
        fail_msg("%s, k %u: the text differs:\nplain: %s\nspeculative: %s", what, k, plain->text.buf, spec->text.buf);
    assert_int_equal(plain->status, spec->status);
    assert_int_equal(plain->stats.n_generated, spec->stats.n_generated);
    assert_int_equal(plain->stats.stopped_by_eog, spec->stats.stopped_by_eog);
    assert_int_equal(plain->cached, spec->cached);
}

/* Every k with lookup (adaptive stop off, so every pass drafts): stories260K's text, cut by n_predict, by a full
 * context (VKLLM_ERROR_CONTEXT_FULL after the same text), and by an end-of-generation token. */
static void test_lookup_same_text(void **state)
{
    (void)state;
    vkllm_model *m = th_load_model(STORIES);
    vkllm_sampling s = greedy();
    struct { uint32_t n_ctx, n_predict; const char *what; } cases[] = {
        {512, 200, "n_predict 200"}, {512, 7, "n_predict 7"}, {64, 100, "full context of 64"},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        vkllm_context *c = context(m, cases[ci].n_ctx, 9);
        run_result plain = run(c, "Once upon a time", cases[ci].n_predict, &s);
        for (uint32_t k = 1; k <= 8; k++) {
            vkllm_speculation sp = vkllm_speculation_default();
            sp.lookup_ngram = 3;
            sp.draft_max = k;
            sp.adaptive = 0;
            th_check_status(vkllm_context_set_speculation(c, &sp), "set speculation");
            run_result spec = run(c, "Once upon a time", cases[ci].n_predict, &s);
            assert_same_run(&plain, &spec, cases[ci].what, k);
            if (ci == 0) assert_true(spec.stats.n_accepted > 0 && spec.stats.n_verify < plain.stats.n_generated);
            th_check_status(vkllm_context_set_speculation(c, NULL), "speculation off");
        }
        vkllm_context_free(c);
    }
    /* end of generation: make a token of the greedy text (the 40th) the model's end-of-generation token */
    vkllm_context *c = context(m, 512, 9);
    vkllm_token prompt[16], plain[48];
    plain_tokens(c, prompt, tokenize(m, "Once upon a time", prompt, 16), plain, 48);
    vocab *v = (vocab *)m->tok;
    int32_t saved = v->eog[0];
    uint32_t saved_n = v->n_eog;
    v->eog[0] = plain[40];
    v->n_eog = 1;
    run_result before = run(c, "Once upon a time", 200, &s);
    assert_true(before.stats.stopped_by_eog);
    for (uint32_t k = 1; k <= 8; k++) {
        vkllm_speculation sp = vkllm_speculation_default();
        sp.lookup_ngram = 2;
        sp.draft_max = k;
        sp.adaptive = 0;
        th_check_status(vkllm_context_set_speculation(c, &sp), "set speculation");
        run_result spec = run(c, "Once upon a time", 200, &s);
        assert_same_run(&before, &spec, "end of generation", k);
    }
    v->eog[0] = saved;
    v->n_eog = saved_n;
    vkllm_context_free(c);
    th_free_model(m);
}

/* stories260K requantized to Q8_0 in tmpdir (other logits, the same vocabulary): the tests' draft model. */
static void write_q8_draft(char *path, size_t size)
{
    snprintf(path, size, "%s/draft-q8.gguf", tmpdir);
    quant_recipe recipe;
    assert_true(quant_recipe_from_name("Q8_0", true, &recipe));
    th_check_status(quantize_file(STORIES, path, &recipe, NULL, NULL), "quantize");
}

/* A draft model: stories260K requantized to Q8_0 (other logits, same vocabulary), greedy, k = 1..8, and with
 * draft_min_p; a self-draft (the same model) accepts everything. */
static void test_draft_model_same_text(void **state)
{
    (void)state;
    char path[256];
    write_q8_draft(path, sizeof path);
    vkllm_model *m = th_load_model(STORIES), *dm = th_load_model(path);
    vkllm_context *c = context(m, 512, 9), *dc = context(dm, 512, 8);
    vkllm_sampling s = greedy();
    run_result plain = run(c, "Once upon a time", 60, &s);
    for (uint32_t k = 1; k <= 8; k++) {
        vkllm_speculation sp = vkllm_speculation_default();
        sp.draft = dc;
        sp.draft_max = k;
        sp.adaptive = 0;
        sp.draft_min_p = k == 5 ? 0.5f : 0.0f;
        th_check_status(vkllm_context_set_speculation(c, &sp), "set speculation");
        run_result spec = run(c, "Once upon a time", 60, &s);
        assert_same_run(&plain, &spec, "draft model", k);
        assert_true(spec.stats.n_accepted > spec.stats.n_drafted / 2);
    }
    /* the same model as its own draft: every draft is right */
    vkllm_context *self = context(m, 512, 8);
    vkllm_speculation sp = vkllm_speculation_default();
    sp.draft = self;
    th_check_status(vkllm_context_set_speculation(c, &sp), "set speculation");
    run_result spec = run(c, "Once upon a time", 60, &s);
    assert_same_run(&plain, &spec, "self-draft", 7);
    assert_int_equal(spec.stats.n_accepted, spec.stats.n_drafted);
    vkllm_context_free(self);
    vkllm_context_free(c);
    vkllm_context_free(dc);
    th_free_model(dm);
    th_free_model(m);
    remove(path);
}

/* A draft with another vocabulary is refused, naming the first differing token. */
static void test_draft_vocabulary_check(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/tiny.gguf", tmpdir);
    synth_options o = {.seed = 1};
    assert_true(quant_recipe_from_name("F16", true, &o.recipe));
    th_check_status(synth_write(synth_preset_find("tiny"), &o, path), "synth_write");
    vkllm_model *m = th_load_model(STORIES), *dm = th_load_model(path);
    vkllm_context *c = context(m, 128, 9), *dc = context(dm, 128, 8);
    vkllm_speculation sp = vkllm_speculation_default();
    sp.draft = dc;
    assert_int_equal(vkllm_context_set_speculation(c, &sp), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "token "));
    assert_non_null(strstr(vkllm_last_error(), "same vocabulary"));
    sp.draft = c;
    assert_int_equal(vkllm_context_set_speculation(c, &sp), VKLLM_ERROR_INVALID_ARGUMENT);
    sp.draft = NULL;
    sp.lookup_ngram = 2;
    sp.draft_max = 0;
    assert_int_equal(vkllm_context_set_speculation(c, &sp), VKLLM_ERROR_INVALID_ARGUMENT);
    vkllm_context_free(c);
    vkllm_context_free(dc);
    th_free_model(dm);
    th_free_model(m);
    remove(path);
}

/* ---- the sampling rule ---- */

/* Chi-square of counts[n] against probabilities p[n] over draws; categories with expectation < 5 are pooled. */
static double chi_square(const uint32_t *counts, const double *p, uint32_t n, uint32_t draws, uint32_t *dof)
{
    double chi = 0, pool_e = 0, pool_o = 0;
    *dof = 0;
    for (uint32_t i = 0; i < n; i++) {
        double e = p[i] * draws;
        if (e < 5) {
            pool_e += e, pool_o += counts[i];
            if (e == 0 && counts[i]) return INFINITY;
            continue;
        }
        chi += (counts[i] - e) * (counts[i] - e) / e;
        (*dof)++;
    }
    if (pool_e > 0) chi += (pool_o - pool_e) * (pool_o - pool_e) / (pool_e > 1 ? pool_e : 1), (*dof)++;
    if (*dof) (*dof)--;
    return chi;
}

/* The rule's output is distributed as p whatever q is: 200,000 draws of x ~ q then accept-or-resample, for a q
 * that differs from p, one that misses tokens p has, and a one-hot q (lookup).  Chi-square bound: the 0.999
 * quantile of chi-square with the test's degrees of freedom (<= 7: 24.3), so a correct rule fails once in a
 * thousand seeds; the seeds are fixed, so the test is deterministic. */
static void test_sampling_rule_distribution(void **state)
{
    (void)state;
    enum { V = 8, DRAWS = 200000 };
    const float p[V] = {0.30f, 0.20f, 0.15f, 0.12f, 0.10f, 0.08f, 0.05f, 0.0f};
    const float q_cases[3][V] = {
        {0.05f, 0.40f, 0.05f, 0.20f, 0.05f, 0.05f, 0.10f, 0.10f}, /* differs, puts mass where p has none */
        {0.50f, 0.50f, 0, 0, 0, 0, 0, 0},                         /* misses most of p */
        {0, 0, 0, 1, 0, 0, 0, 0},                                 /* one-hot (lookup proposes token 3) */
    };
    vkllm_sampling params = vkllm_sampling_default();
    params.seed = 7;
    sampler *smp;
    th_check_status(sampler_create(&params, V, &smp), "sampler");
    double pd[V];
    for (int i = 0; i < V; i++) pd[i] = p[i];
    for (int qi = 0; qi < 3; qi++) {
        uint32_t counts[V] = {0}, accepted = 0;
        for (uint32_t d = 0; d < DRAWS; d++) {
            float pp[V];
            memcpy(pp, p, sizeof pp);
            vkllm_token x = sampler_draw_probs(smp, q_cases[qi]), out = -1;
            bool acc = spec_sample_accept(smp, pp, qi == 2 ? NULL : q_cases[qi], V, x, &out);
            if (acc) accepted++, out = x;
            assert_true(out >= 0 && out < V);
            counts[out]++;
        }
        uint32_t dof;
        double chi = chi_square(counts, pd, V, DRAWS, &dof);
        printf("sampling rule, q case %d: chi-square %.2f with %u degrees of freedom (bound 24.3), acceptance %.3f\n",
               qi, chi, dof, (double)accepted / DRAWS);
        assert_true(dof <= 7);
        assert_true(chi < 24.3);
    }
    sampler_free(smp);
}

/* End to end: stories260K at temperature 1, the second generated token (the first one a verification pass
 * decides) over 600 seeds (3 tokens generated each) with the Q8_0 draft and with lookup, against its distribution from the logits of plain
 * decoding (the first token's distribution mixed over the seeds' first tokens). */
static void test_sampling_end_to_end(void **state)
{
    (void)state;
    char path[256];
    write_q8_draft(path, sizeof path);
    vkllm_model *m = th_load_model(STORIES), *dm = th_load_model(path);
    vkllm_context *c = context(m, 64, 9), *dc = context(dm, 64, 8);
    uint32_t n_vocab = m->cfg.n_vocab;
    vkllm_sampling s = vkllm_sampling_default();
    s.temperature = 1.0f;
    s.top_k = 0;
    s.top_p = 1.0f;
    s.min_p = 0.0f;
    /* the prompt repeats, so lookup drafts from the first pass on */
    const char *prompt = "The cat sat. The cat sat. The cat";
    vkllm_token toks[32];
    uint32_t n = tokenize(m, prompt, toks, 32);
    enum { SEEDS = 600 };
    double *expect = calloc(n_vocab, sizeof *expect);
    uint32_t *counts = calloc(n_vocab, sizeof *counts);
    float *probs = malloc(n_vocab * sizeof *probs);
    sampler *ref;
    th_check_status(sampler_create(&s, (int32_t)n_vocab, &ref), "sampler");
    for (int mode = 0; mode < 2; mode++) {
        vkllm_speculation sp = vkllm_speculation_default();
        sp.adaptive = 0;
        sp.draft_max = 3;
        if (mode == 0) sp.draft = dc;
        else sp.lookup_ngram = 2;
        memset(counts, 0, n_vocab * sizeof *counts);
        memset(expect, 0, n_vocab * sizeof *expect);
        for (uint32_t seed = 0; seed < SEEDS; seed++) {
            s.seed = 1000 + seed;
            th_check_status(vkllm_context_set_speculation(c, &sp), "set speculation");
            th_text t = {0};
            vkllm_generate_stats st;
            th_check_status(vkllm_generate(c, prompt, 0, 3, &s, th_text_append, &t, &st), "generate");
            assert_int_equal(st.n_generated, 3);
            /* plain decoding's cache after 3 tokens: the prompt and the first two */
            assert_int_equal(c->n_history, n + 2);
            vkllm_token first = c->history[n], sec = c->history[n + 1];
            counts[sec]++;
            /* the plain distribution of the second token given the first: one pass of plain decoding */
            th_check_status(vkllm_context_set_speculation(c, NULL), "off");
            int32_t p = (int32_t)n, s0 = 0;
            int8_t w = 1;
            th_check_status(vkllm_seq_truncate(c, 0, n), "truncate");
            vkllm_batch one = {1, &first, &p, &s0, &w};
            th_check_status(vkllm_decode(c, &one), "decode");
            sampler_reset(ref);
            for (uint32_t i = 0; i < n; i++) th_check_status(sampler_accept(ref, toks[i]), "accept");
            th_check_status(sampler_accept(ref, first), "accept");
            th_check_status(sampler_probs(ref, vkllm_get_logits(c, 0), probs), "probs");
            for (uint32_t i = 0; i < n_vocab; i++) expect[i] += probs[i] / SEEDS;
        }
        uint32_t dof;
        double chi = chi_square(counts, expect, n_vocab, SEEDS, &dof);
        printf("end to end (%s): chi-square %.2f with %u degrees of freedom\n", mode ? "lookup" : "draft model", chi,
               dof);
        /* the 0.999 quantile of chi-square: about dof + 3.1 sqrt(2 dof) + 7 for these dof (<= 60) */
        assert_true(dof >= 1);
        assert_true(chi < dof + 3.1 * sqrt(2.0 * dof) + 7.0);
    }
    sampler_free(ref);
    free(expect);
    free(counts);
    free(probs);
    vkllm_context_free(c);
    vkllm_context_free(dc);
    th_free_model(dm);
    th_free_model(m);
    remove(path);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_adaptive),
        cmocka_unit_test(test_verify_right_and_wrong),
        cmocka_unit_test(test_rollback_same_logits),
        cmocka_unit_test(test_batch_invariance_every_tuning_row),
        cmocka_unit_test(test_batch_invariance_coopmat_prompt_paths),
        cmocka_unit_test(test_lookup_same_text),
        cmocka_unit_test(test_draft_model_same_text),
        cmocka_unit_test(test_draft_vocabulary_check),
        cmocka_unit_test(test_sampling_rule_distribution),
        cmocka_unit_test(test_sampling_end_to_end),
    };
    return cmocka_run_group_tests_name("speculative", tests, setup, teardown);
}
