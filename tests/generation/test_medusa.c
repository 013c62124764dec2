/* Medusa heads (src/medusa/): the hidden state a pass returns times the output matrix is the pass's logits (stories260K
 * and a synthetic model, one row and several rows of a batch, greedy and not); the head's gradient against central
 * finite differences; a heads file round-trips and is refused for another model (naming what differs), accepted for a
 * quantized copy of its own; training is deterministic for a seed and its heads beat the zero heads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "medusa/medusa.h"
#include "model/model.h"
#include "paths.h"
#include "quantize/quantize.h"
#include "tools/synth.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")
#define CALIB th_shared_path("data/stories-calib.txt")

static char tmpdir[] = "/tmp/vkllm-test-medusa-XXXXXX";

static void synth_tiny(const char *name, uint64_t seed, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", tmpdir, name);
    synth_options o = {.seed = seed};
    assert_true(quant_recipe_from_name("F16", true, &o.recipe));
    th_check_status(synth_write(synth_preset_find("tiny"), &o, path), "synth_write");
}

/* hidden . out^T against the logits the pass returned, rows 0..n_out of a batch of n tokens. */
static void check_hidden(const char *path)
{
    gguf_file *f;
    th_check_status(gguf_open(path, &f), path);
    float *out;
    medusa_base base;
    th_check_status(medusa_base_from_gguf(f, &base), "medusa_base_from_gguf");
    th_check_status(medusa_output_matrix(f, &out), "medusa_output_matrix");
    gguf_close(f);
    vkllm_model *m = th_load_model(path);
    vkllm_context_params p = vkllm_context_default_params();
    p.n_ctx = 64;
    p.n_outputs_max = 5;
    p.output_hidden = 1;
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, &p, &c), "vkllm_context_create");
    uint32_t V = base.n_vocab, n = base.n_embd;
    float *ref = malloc(sizeof *ref * V), *hid = malloc(sizeof *hid * 5 * n);
    vkllm_token toks[7] = {1, 5, 9, 27, 3, 81, 40};
    int32_t pos[7], seq[7] = {0};
    int8_t want[7] = {0, 1, 0, 1, 1, 0, 1};
    for (int i = 0; i < 7; i++) pos[i] = i;
    vkllm_batch b = {.n_tokens = 7, .tokens = toks, .pos = pos, .seq = seq, .want_logits = want};
    th_check_status(vkllm_decode(c, &b), "vkllm_decode");
    for (uint32_t r = 0; r < 4; r++) {
        const float *h = vkllm_get_hidden(c, r), *lg = vkllm_get_logits(c, r);
        assert_non_null(h);
        memcpy(hid + (size_t)r * n, h, sizeof *h * n);
        medusa_head_logits(out, V, n, h, ref);
        th_assert_nmse("hidden . output = logits", ref, lg, V, 1e-8);
    }
    assert_null(vkllm_get_hidden(c, 4));
    /* greedy passes return the hidden rows too: the same pass again (after rolling back) gives the same rows */
    th_check_status(vkllm_seq_truncate(c, 0, 0), "truncate");
    vkllm_token ids[4];
    th_check_status(vkllm_decode_greedy(c, &b, ids), "vkllm_decode_greedy");
    for (uint32_t r = 0; r < 4; r++) {
        const float *h = vkllm_get_hidden(c, r);
        assert_non_null(h);
        th_assert_nmse("greedy pass's hidden", hid + (size_t)r * n, h, n, 1e-12);
    }
    /* without output_hidden there is none */
    vkllm_context *c2 = NULL;
    p.output_hidden = 0;
    th_check_status(vkllm_context_create(m, &p, &c2), "vkllm_context_create");
    th_check_status(vkllm_decode(c2, &b), "vkllm_decode");
    assert_null(vkllm_get_hidden(c2, 0));
    vkllm_context_free(c2);
    vkllm_context_free(c);
    th_free_model(m);
    free(ref), free(hid), free(out);
}

static void test_hidden_output(void **state)
{
    (void)state;
    check_hidden(STORIES);
    char path[256];
    synth_tiny("tiny-hidden.gguf", 5, path, sizeof path);
    check_hidden(path);
    remove(path);
}

/* Analytic gradient of one head against central differences in double-checked float: every W and b entry of a
 * head of 5 over a vocabulary of 7, at nonzero weights (SiLU away from its linear part). */
static void test_gradient_check(void **state)
{
    (void)state;
    enum { N = 5, V = 7 };
    float w[N * N], b[N], out[V * N], h[N], gw[N * N] = {0}, gb[N] = {0}, scratch[3 * N + V];
    uint32_t s = 12345;
    for (int i = 0; i < N * N; i++) w[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1.0f;
    for (int i = 0; i < N; i++) b[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1.0f;
    for (int i = 0; i < V * N; i++) out[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 8192.0f - 2.0f;
    for (int i = 0; i < N; i++) h[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f - 1.0f;
    int32_t target = 3;
    medusa_head_loss_grad(w, b, out, N, V, h, target, gw, gb, scratch, NULL);
    const float eps = 1e-2f;
    double worst = 0;
    for (int i = 0; i < N * N + N; i++) {
        float *p = i < N * N ? &w[i] : &b[i - N * N];
        float keep = *p;
        *p = keep + eps;
        double up = medusa_head_loss_grad(w, b, out, N, V, h, target, NULL, NULL, scratch, NULL);
        *p = keep - eps;
        double down = medusa_head_loss_grad(w, b, out, N, V, h, target, NULL, NULL, scratch, NULL);
        *p = keep;
        double num = (up - down) / (2 * eps), ana = i < N * N ? gw[i] : gb[i - N * N];
        double err = fabs(num - ana) / fmax(1e-2, fabs(num) + fabs(ana));
        worst = fmax(worst, err);
        if (err > 2e-2) fail_msg("parameter %d: analytic %g, finite differences %g", i, ana, num);
    }
    printf("gradient check: worst relative error %.2e over %d parameters\n", worst, N * N + N);
}

static medusa_base base_of(const char *path)
{
    gguf_file *f;
    medusa_base b;
    th_check_status(gguf_open(path, &f), path);
    th_check_status(medusa_base_from_gguf(f, &b), "medusa_base_from_gguf");
    gguf_close(f);
    return b;
}

static void test_heads_file(void **state)
{
    (void)state;
    medusa_base stories = base_of(STORIES);
    medusa_heads h;
    th_check_status(medusa_heads_alloc(&h, 3, stories.n_embd, stories.n_vocab, false), "alloc");
    h.base = stories;
    for (size_t i = 0; i < (size_t)3 * h.n_embd * h.n_embd; i++) h.w[i] = (float)i * 1e-3f;
    for (size_t i = 0; i < (size_t)3 * h.n_embd; i++) h.b[i] = -(float)i;
    char path[256], q8[256], other[256];
    snprintf(path, sizeof path, "%s/heads.gguf", tmpdir);
    th_check_status(medusa_heads_save(&h, path), "save");
    medusa_heads g;
    th_check_status(medusa_heads_load(path, &g), "load");
    assert_int_equal(g.n_heads, 3);
    assert_int_equal(g.n_embd, stories.n_embd);
    assert_null(g.out);
    assert_memory_equal(g.w, h.w, sizeof *h.w * 3 * h.n_embd * h.n_embd);
    assert_memory_equal(g.b, h.b, sizeof *h.b * 3 * h.n_embd);
    assert_true(g.base.vocab_hash == stories.vocab_hash && g.base.shape_hash == stories.shape_hash);
    th_check_status(medusa_heads_check(&g, &stories, path, STORIES), "check against its own model");
    /* a quantized copy of the same model: same shapes, same vocabulary */
    snprintf(q8, sizeof q8, "%s/stories-q8.gguf", tmpdir);
    quant_recipe r;
    assert_true(quant_recipe_from_name("Q8_0", true, &r));
    th_check_status(quantize_file(STORIES, q8, &r, NULL, NULL), "quantize");
    medusa_base sq = base_of(q8);
    th_check_status(medusa_heads_check(&g, &sq, path, q8), "check against its Q8_0 copy");
    /* another model: refused, naming both and what differs */
    synth_tiny("tiny-other.gguf", 2, other, sizeof other);
    medusa_base t = base_of(other);
    assert_int_equal(medusa_heads_check(&g, &t, path, other), VKLLM_ERROR_INVALID_ARGUMENT);
    printf("refused: %s\n", vkllm_last_error());
    assert_non_null(strstr(vkllm_last_error(), "trained on another model"));
    assert_non_null(strstr(vkllm_last_error(), other));
    /* same shapes, another vocabulary: the hash tells */
    medusa_base v = stories;
    v.vocab_hash ^= 1;
    assert_int_equal(medusa_heads_check(&g, &v, path, "x.gguf"), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "vocabulary (token texts' hash)"));
    /* heads with their own output matrix round-trip it */
    medusa_heads o, o2;
    th_check_status(medusa_heads_alloc(&o, 1, stories.n_embd, stories.n_vocab, true), "alloc own output");
    o.base = stories;
    for (size_t i = 0; i < (size_t)stories.n_vocab * stories.n_embd; i++) o.out[i] = (float)(i % 97) * 0.01f;
    th_check_status(medusa_heads_save(&o, path), "save own output");
    th_check_status(medusa_heads_load(path, &o2), "load own output");
    assert_non_null(o2.out);
    assert_memory_equal(o2.out, o.out, sizeof *o.out * stories.n_vocab * stories.n_embd);
    medusa_heads_free(&o), medusa_heads_free(&o2);
    /* a model file is not a heads file */
    medusa_heads bad;
    assert_int_equal(medusa_heads_load(STORIES, &bad), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "not a heads file"));
    medusa_heads_free(&g);
    medusa_heads_free(&h);
    remove(path), remove(q8), remove(other);
}

/* A short training run twice with one seed: byte-identical files; the held-out accuracy of head 0 above the zero
 * heads' (the base LM head's guess of the next token, used one token too early). */
static void test_train_deterministic(void **state)
{
    (void)state;
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/a.gguf", tmpdir);
    snprintf(b, sizeof b, "%s/b.gguf", tmpdir);
    medusa_train_params p = medusa_train_default_params();
    p.n_heads = 2;
    p.n_tokens = 2048;
    p.epochs = 2;
    p.calib = CALIB;
    vkllm_model_params mp = vkllm_model_default_params();
    medusa_train_report ra, rb;
    th_check_status(medusa_train(STORIES, &mp, &p, a, NULL, NULL, &ra), "medusa_train");
    th_check_status(medusa_train(STORIES, &mp, &p, b, NULL, NULL, &rb), "medusa_train again");
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    assert_non_null(fa);
    assert_non_null(fb);
    int ca, cb;
    long at = 0;
    do {
        ca = fgetc(fa), cb = fgetc(fb), at++;
        if (ca != cb) fail_msg("the two files differ at byte %ld", at);
    } while (ca != EOF);
    fclose(fa), fclose(fb);
    printf("held-out top-1 after 2 epochs: %.3f %.3f, loss %.3f\n", (double)ra.top1[0], (double)ra.top1[1],
           (double)ra.loss);
    medusa_heads h;
    th_check_status(medusa_heads_load(a, &h), "load");
    assert_int_equal(h.n_heads, 2);
    assert_int_equal(h.train_tokens, 2048);
    medusa_base s = base_of(STORIES);
    th_check_status(medusa_heads_check(&h, &s, a, STORIES), "check");
    medusa_heads_free(&h);
    remove(a), remove(b);
}

typedef struct text {
    char buf[8192];
    size_t len;
} text;

static int collect(const char *piece, size_t len, void *user)
{
    text *t = user;
    if (t->len + len < sizeof t->buf) memcpy(t->buf + t->len, piece, len), t->len += len;
    return 1;
}

/* n tokens from prompt at temperature temp (seeded), with the heads file (NULL: plain) and a tree (NULL: a chain). */
static vkllm_generate_stats generate_tree(vkllm_model *m, const char *heads, const char *tree, const char *prompt,
                                          uint32_t n, float temp, text *t)
{
    vkllm_context_params p = vkllm_context_default_params();
    p.n_ctx = 320;
    p.n_outputs_max = tree ? 64 : 8;
    p.output_hidden = 1; /* both: the same passes either way */
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, &p, &c), "vkllm_context_create");
    if (heads) {
        vkllm_speculation sp = vkllm_speculation_default();
        sp.medusa = heads;
        sp.medusa_tree = tree;
        sp.adaptive = 0; /* draft at every pass */
        th_check_status(vkllm_context_set_speculation(c, &sp), "vkllm_context_set_speculation");
    }
    vkllm_sampling smp = vkllm_sampling_default();
    smp.temperature = temp;
    smp.seed = 7;
    vkllm_generate_stats stats = {0};
    t->len = 0;
    th_check_status(vkllm_generate(c, prompt, 0, n, &smp, collect, t, &stats), "vkllm_generate");
    vkllm_context_free(c);
    return stats;
}

static vkllm_generate_stats generate(vkllm_model *m, const char *heads, const char *prompt, uint32_t n, float temp,
                                     text *t)
{
    return generate_tree(m, heads, NULL, prompt, n, temp, t);
}

/* Greedy text with Medusa drafting is plain greedy's, on stories260K (heads trained briefly: some drafts accepted)
 * and on a synthetic model (random heads); with sampling the run completes with every pass verified. */
static void test_medusa_decoding_same_text(void **state)
{
    (void)state;
    char heads[256], tiny[256], tiny_heads[256];
    snprintf(heads, sizeof heads, "%s/stories-heads.gguf", tmpdir);
    medusa_train_params p = medusa_train_default_params();
    p.n_tokens = 4096;
    p.epochs = 2;
    p.calib = CALIB;
    vkllm_model_params mp = vkllm_model_default_params();
    th_check_status(medusa_train(STORIES, &mp, &p, heads, NULL, NULL, NULL), "medusa_train");
    vkllm_model *m = th_load_model(STORIES);
    text plain, med;
    generate(m, NULL, "Once upon a time", 200, 0, &plain);
    vkllm_generate_stats st = generate(m, heads, "Once upon a time", 200, 0, &med);
    printf("stories260K: %u passes, %u drafted, %u accepted, %.2f tokens per pass\n", st.n_verify, st.n_drafted,
           st.n_accepted, (double)st.n_decode / st.n_verify);
    assert_int_equal(plain.len, med.len);
    assert_memory_equal(plain.buf, med.buf, plain.len);
    assert_true(st.n_accepted > 0 && st.n_verify < 200);
    st = generate(m, heads, "Once upon a time", 100, 0.8f, &med);
    assert_true(st.n_generated == 100 || st.stopped_by_eog);
    assert_true(st.n_verify > 0 && st.n_drafted > 0);
    /* tree verification: the built-in tree, a small one and a chain written as a tree give the plain text */
    const char *trees[] = {"default", "0,1,0.0,0.0.0", "0,0.0,0.0.0,0.0.0.0"};
    for (size_t i = 0; i < sizeof trees / sizeof *trees; i++) {
        st = generate_tree(m, heads, trees[i], "Once upon a time", 200, 0, &med);
        printf("stories260K, tree %s: %u passes, %u candidates, %u accepted, %.2f tokens per pass\n", trees[i],
               st.n_verify, st.n_drafted, st.n_accepted, (double)st.n_decode / st.n_verify);
        assert_int_equal(plain.len, med.len);
        assert_memory_equal(plain.buf, med.buf, plain.len);
        assert_true(st.n_accepted > 0 && st.n_verify < 200);
    }
    st = generate_tree(m, heads, "default", "Once upon a time", 100, 0.8f, &med);
    assert_true(st.n_generated == 100 || st.stopped_by_eog);
    /* bad trees are refused */
    vkllm_context_params bp = vkllm_context_default_params();
    bp.output_hidden = 1;
    bp.n_outputs_max = 64;
    vkllm_context *bc = NULL;
    th_check_status(vkllm_context_create(m, &bp, &bc), "context");
    vkllm_speculation bs = vkllm_speculation_default();
    bs.medusa = heads;
    const char *bad[] = {"0.0", "0,0.0.0.0.0", "0,x", "0,0", "99"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        bs.medusa_tree = bad[i];
        assert_int_equal(vkllm_context_set_speculation(bc, &bs), VKLLM_ERROR_INVALID_ARGUMENT);
        printf("tree '%s' refused: %s\n", bad[i], vkllm_last_error());
    }
    vkllm_context_free(bc);
    /* heads of another model are refused by set_speculation, naming both */
    synth_tiny("tiny-dec.gguf", 4, tiny, sizeof tiny);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.output_hidden = 1;
    vkllm_model *tm = th_load_model(tiny);
    vkllm_context *tc = NULL;
    th_check_status(vkllm_context_create(tm, &cp, &tc), "context");
    vkllm_speculation sp = vkllm_speculation_default();
    sp.medusa = heads;
    assert_int_equal(vkllm_context_set_speculation(tc, &sp), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "trained on another model"));
    vkllm_context_free(tc);
    /* a context without output_hidden cannot feed the heads */
    cp.output_hidden = 0;
    th_check_status(vkllm_context_create(m, &cp, &tc), "context");
    assert_int_equal(vkllm_context_set_speculation(tc, &sp), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "output_hidden"));
    vkllm_context_free(tc);
    /* the synthetic model with random heads of its own */
    gguf_file *f;
    medusa_heads h;
    th_check_status(gguf_open(tiny, &f), tiny);
    medusa_base tb;
    th_check_status(medusa_base_from_gguf(f, &tb), "base");
    gguf_close(f);
    th_check_status(medusa_heads_alloc(&h, 3, tb.n_embd, tb.n_vocab, false), "alloc");
    h.base = tb;
    uint32_t s = 99;
    for (size_t i = 0; i < (size_t)3 * tb.n_embd * tb.n_embd; i++)
        h.w[i] = (float)((s = s * 1103515245u + 12345u) >> 16 & 0x7fff) / 16384.0f * 0.1f - 0.1f;
    snprintf(tiny_heads, sizeof tiny_heads, "%s/tiny-heads.gguf", tmpdir);
    th_check_status(medusa_heads_save(&h, tiny_heads), "save");
    medusa_heads_free(&h);
    generate(tm, NULL, "Hello", 64, 0, &plain);
    st = generate(tm, tiny_heads, "Hello", 64, 0, &med);
    printf("tiny synthetic: %u passes, %u drafted, %u accepted\n", st.n_verify, st.n_drafted, st.n_accepted);
    assert_int_equal(plain.len, med.len);
    assert_memory_equal(plain.buf, med.buf, plain.len);
    st = generate_tree(tm, tiny_heads, "default", "Hello", 64, 0, &med);
    printf("tiny synthetic, default tree: %u passes, %u candidates, %u accepted\n", st.n_verify, st.n_drafted,
           st.n_accepted);
    assert_int_equal(plain.len, med.len);
    assert_memory_equal(plain.buf, med.buf, plain.len);
    th_free_model(tm);
    th_free_model(m);
    remove(heads), remove(tiny), remove(tiny_heads);
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
        cmocka_unit_test(test_hidden_output),
        cmocka_unit_test(test_gradient_check),
        cmocka_unit_test(test_heads_file),
        cmocka_unit_test(test_train_deterministic),
        cmocka_unit_test(test_medusa_decoding_same_text),
    };
    return cmocka_run_group_tests_name("medusa", tests, setup, teardown);
}
