/* Importance-weighted quantization: the imatrix file format (written and read back, llama-quantize's derived
 * importance), the weighted quantizers lowering the importance-weighted error of round-to-nearest, the
 * errors for an imatrix made for another model, llama-quantize --imatrix's bytes for the tiny model with a
 * synthetic imatrix (as committed hashes, so CI checks them without llama.cpp's tools), and, with the llama.cpp peer (llama-imatrix and
 * llama-quantize in $PEER_HOME/cpu, default ~/.cache/llama-peer/cpu), byte equality with llama-quantize
 * --imatrix for every weighted type and three mixtures.  The peer part skips without the peer's tools
 * (../shared/peer/setup.sh --tools). */
#include "harness.h"
#include "paths.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "quant/quant.h"
#include "runtime/error.h"
#include "quantize/imatrix.h"
#include "quantize/imatrix_file.h"
#include "quantize/quantize.h"
#include "tools/synth.h"

static char g_tiny[512], g_imatrix[512], g_ours[512], g_theirs[512];

static int setup(void **state)
{
    (void)state;
    long pid = (long)getpid();
    snprintf(g_tiny, sizeof g_tiny, "%s/test_qimx_tiny_%ld.gguf", th_binary_dir(), pid);
    snprintf(g_imatrix, sizeof g_imatrix, "%s/test_qimx_imatrix_%ld.gguf", th_binary_dir(), pid);
    snprintf(g_ours, sizeof g_ours, "%s/test_qimx_ours_%ld.gguf", th_binary_dir(), pid);
    snprintf(g_theirs, sizeof g_theirs, "%s/test_qimx_theirs_%ld.gguf", th_binary_dir(), pid);
    synth_options o = {.seed = 7};
    quant_recipe_from_name("F32", false, &o.recipe);
    if (synth_write(synth_preset_find("tiny"), &o, g_tiny) != VKLLM_OK) {
        fprintf(stderr, "setup: %s\n", vkllm_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(g_tiny);
    remove(g_imatrix);
    remove(g_ours);
    remove(g_theirs);
    return 0;
}

static uint32_t g_rng = 12345;
static float uniform(void)
{
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((g_rng >> 8) & 0xffffff) / 16777216.0f;
}

/* An imatrix with one entry per 2-D weight of the tiny model (sums = column * count, so the importance
 * is the column index + 1), one entry counting nothing, written and read back. */
static void test_imatrix_roundtrip(void **state)
{
    (void)state;
    imatrix_data d = {.chunk_count = 3, .chunk_size = 128, .dataset = "calib.txt"};
    imatrix_entry e[2] = {{.name = "blk.0.attn_q.weight", .n = 4, .n_mat = 1},
                          {.name = "blk.0.ffn_down.weight", .n = 4, .n_mat = 1}};
    float sums0[4] = {10, 20, 30, 40}, counts0[1] = {10}, sums1[4] = {5, 5, 5, 5}, counts1[1] = {0};
    e[0].sums = sums0, e[0].counts = counts0, e[1].sums = sums1, e[1].counts = counts1;
    d.entries = e, d.n_entries = 2;
    if (imatrix_write(&d, g_imatrix) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    imatrix_data *r = NULL;
    if (imatrix_load(g_imatrix, &r) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    assert_int_equal(r->n_entries, 2);
    assert_int_equal(r->chunk_count, 3);
    assert_int_equal(r->chunk_size, 128);
    assert_string_equal(r->dataset, "calib.txt");
    const imatrix_entry *q = imatrix_find(r, "blk.0.attn_q.weight");
    assert_non_null(q);
    for (int i = 0; i < 4; i++) assert_true(q->values[i] == (float)(i + 1));
    const imatrix_entry *down = imatrix_find(r, "blk.0.ffn_down.weight");
    for (int i = 0; i < 4; i++) assert_true(down->values[i] == 1.0f); /* nothing counted: importance 1 */
    assert_null(imatrix_find(r, "output.weight"));
    imatrix_free(r);
}

/* The importance-weighted error sum_j w_j (x_j - q_j)^2 of the weighted quantizers is below round-to-nearest's
 * on rows whose importance spans six orders of magnitude: what the search is for. */
static void test_weighted_beats_rtn(void **state)
{
    (void)state;
    static const quant_type types[] = {QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q2_K,
                                       QUANT_Q3_K, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
    enum { N = 512, ROWS = 16 };
    float x[N], w[N], y[N];
    uint8_t packed[N * 2];
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        assert_true(quant_uses_importance(types[t]));
        double err_rtn = 0, err_weighted = 0;
        for (int r = 0; r < ROWS; r++) {
            for (int j = 0; j < N; j++) {
                x[j] = (uniform() - 0.5f) * (1 + 4 * uniform());
                w[j] = powf(10.0f, 6 * uniform() - 3);
            }
            assert_int_equal(quant_quantize_row(types[t], x, packed, N), VKLLM_OK);
            assert_int_equal(quant_dequantize_row(types[t], packed, y, N), VKLLM_OK);
            for (int j = 0; j < N; j++) err_rtn += w[j] * (double)(x[j] - y[j]) * (x[j] - y[j]);
            assert_int_equal(quant_quantize_row_weighted(types[t], x, packed, N, w), VKLLM_OK);
            assert_int_equal(quant_dequantize_row(types[t], packed, y, N), VKLLM_OK);
            for (int j = 0; j < N; j++) err_weighted += w[j] * (double)(x[j] - y[j]) * (x[j] - y[j]);
        }
        printf("%-5s weighted error %.4g, round-to-nearest %.4g (%.0f%% lower)\n", quant_get_traits(types[t])->name,
               err_weighted, err_rtn, 100 * (1 - err_weighted / err_rtn));
        assert_true(err_weighted < err_rtn);
    }
    /* Types without a weighted search ignore the importance. */
    uint8_t a[N * 2], b[N * 2];
    assert_false(quant_uses_importance(QUANT_Q8_0));
    assert_int_equal(quant_quantize_row(QUANT_Q8_0, x, a, N), VKLLM_OK);
    assert_int_equal(quant_quantize_row_weighted(QUANT_Q8_0, x, b, N, w), VKLLM_OK);
    assert_memory_equal(a, b, quant_row_size(QUANT_Q8_0, N));
}

/* An imatrix whose entries have other sizes, or name no tensor of the model: made for another model. */
static void test_imatrix_for_another_model(void **state)
{
    (void)state;
    float sums[64], counts[1] = {1};
    for (int i = 0; i < 64; i++) sums[i] = 1;
    imatrix_entry e = {.name = "blk.0.attn_q.weight", .n = 64, .n_mat = 1, .sums = sums, .counts = counts};
    imatrix_data d = {.entries = &e, .n_entries = 1, .chunk_count = 1, .chunk_size = 64, .dataset = "x"};
    assert_int_equal(imatrix_write(&d, g_imatrix), VKLLM_OK);
    imatrix_data *r = NULL;
    assert_int_equal(imatrix_load(g_imatrix, &r), VKLLM_OK);
    quant_recipe recipe;
    assert_true(quant_recipe_from_name("Q4_0", false, &recipe));
    assert_int_not_equal(quantize_file_imatrix(g_tiny, g_ours, &recipe, r, g_imatrix, NULL, NULL), VKLLM_OK);
    assert_non_null(strstr(vkllm_last_error(), "another model"));
    assert_non_null(strstr(vkllm_last_error(), "blk.0.attn_q.weight"));
    imatrix_free(r);

    e.name = "blk.0.wq.weight"; /* another naming: nothing matches */
    assert_int_equal(imatrix_write(&d, g_imatrix), VKLLM_OK);
    assert_int_equal(imatrix_load(g_imatrix, &r), VKLLM_OK);
    assert_int_not_equal(quantize_file_imatrix(g_tiny, g_ours, &recipe, r, g_imatrix, NULL, NULL), VKLLM_OK);
    assert_non_null(strstr(vkllm_last_error(), "another model"));
    imatrix_free(r);

    /* Not an imatrix at all: a model file has no imatrix metadata. */
    assert_int_not_equal(imatrix_load(g_tiny, &r), VKLLM_OK);
    assert_non_null(strstr(vkllm_last_error(), "not an importance matrix"));
}

/* ---- the peer ---- */

static char g_peer[512];

static bool find_peer(void)
{
    const char *home = getenv("PEER_HOME");
    char base[400];
    if (home && *home) snprintf(base, sizeof base, "%s", home);
    else snprintf(base, sizeof base, "%s/.cache/llama-peer", getenv("HOME") ? getenv("HOME") : "");
    snprintf(g_peer, sizeof g_peer, "%s/cpu", base);
    char tool[600];
    snprintf(tool, sizeof tool, "%s/llama-quantize", g_peer);
    if (access(tool, X_OK) != 0) return false;
    snprintf(tool, sizeof tool, "%s/llama-imatrix", g_peer);
    return access(tool, X_OK) == 0;
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) printf("command failed (%d): %s\n", rc, cmd);
    return rc;
}

/* Every tensor of the two files: same type and the same bytes.  Returns the mismatches (printed). */
static int compare_tensors(const char *ours_path, const char *theirs_path)
{
    gguf_file *a = NULL, *b = NULL;
    if (gguf_open(ours_path, &a) != VKLLM_OK || gguf_open(theirs_path, &b) != VKLLM_OK)
        fail_msg("%s", vkllm_last_error());
    int bad = 0;
    assert_int_equal(a->n_tensors, b->n_tensors);
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        const gguf_tensor_info *t = &a->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        const gguf_tensor_info *u = gguf_find_tensor(b, name);
        assert_non_null(u);
        if (t->type != u->type) {
            printf("  %s: type %s here, %s in llama-quantize's\n", name, quant_get_traits(t->type)->name,
                   quant_get_traits(u->type)->name);
            bad++;
        } else if (t->size != u->size || memcmp(t->data, u->data, (size_t)t->size) != 0) {
            uint64_t differ = 0;
            for (uint64_t k = 0; k < t->size && t->size == u->size; k++)
                differ += ((const uint8_t *)t->data)[k] != ((const uint8_t *)u->data)[k];
            printf("  %s (%s): %llu of %llu bytes differ\n", name, quant_get_traits(t->type)->name,
                   (unsigned long long)differ, (unsigned long long)t->size);
            bad++;
        }
    }
    gguf_close(a);
    gguf_close(b);
    return bad;
}

typedef struct peer_case {
    const char *type, *peer; /* vkllm's recipe name, llama-quantize's (it names pure K types by mixtures) */
    bool pure;
} peer_case;

/* llama-imatrix on `model` with the calibration text, then llama-quantize --imatrix and vkllm's quantizer
 * with the same file, for each case: the same bytes in every tensor.  Returns the mismatching tensors. */
static int peer_bytes(const char *model, const char *calib, uint64_t expect_entries, const peer_case *cases,
                      size_t n_cases)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD LD_LIBRARY_PATH='%s' '%s/llama-imatrix' -m '%s' -f '%s' -o '%s' -c 128 --chunks 4 "
             "-t 2 >/dev/null 2>&1",
             g_peer, g_peer, model, calib, g_imatrix);
    assert_int_equal(run(cmd), 0);
    imatrix_data *imatrix = NULL;
    if (imatrix_load(g_imatrix, &imatrix) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    assert_int_equal(imatrix->n_entries, expect_entries);
    int bad = 0;
    for (size_t c = 0; c < n_cases; c++) {
        quant_recipe recipe;
        assert_true(quant_recipe_from_name(cases[c].type, cases[c].pure, &recipe));
        if (quantize_file_imatrix(model, g_ours, &recipe, imatrix, g_imatrix, NULL, NULL) != VKLLM_OK)
            fail_msg("%s", vkllm_last_error());
        snprintf(cmd, sizeof cmd,
                 "env -u LD_PRELOAD LD_LIBRARY_PATH='%s' '%s/llama-quantize' %s--imatrix '%s' '%s' '%s' %s 1 "
                 ">/dev/null 2>&1",
                 g_peer, g_peer, cases[c].pure ? "--pure " : "", g_imatrix, model, g_theirs, cases[c].peer);
        assert_int_equal(run(cmd), 0);
        int mismatches = compare_tensors(g_ours, g_theirs);
        printf("%s%s: %s\n", cases[c].type, cases[c].pure ? " (pure)" : "",
               mismatches ? "DIFFERS from llama-quantize" : "same bytes as llama-quantize");
        bad += mismatches;
    }
    /* The importance matters: round-to-nearest of the last case differs from llama-quantize's. */
    quant_recipe recipe;
    assert_true(quant_recipe_from_name(cases[n_cases - 1].type, cases[n_cases - 1].pure, &recipe));
    if (quantize_file(model, g_ours, &recipe, NULL, NULL) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    printf("without the imatrix:\n");
    assert_true(compare_tensors(g_ours, g_theirs) > 0);
    imatrix_free(imatrix);
    return bad;
}

/* The calibration text, or NULL to skip: without the peer's tools or the text.  The tools come from
 * `../shared/peer/setup.sh --tools` (minutes of building), which CI's plain setup.sh does not run, so even
 * VKLLM_REQUIRE_PEER=1 (that makes peer_loads_files fail without node-llama-cpp) skips here. */
static const char *peer_calibration(void)
{
    const char *calib = th_join_(th_shared_dir(), "data/stories-calib.txt");
    if (!find_peer() || access(calib, R_OK) != 0) {
        printf("no llama.cpp peer tools in %s or no %s: skipped\n", g_peer, calib);
        return NULL;
    }
    return calib;
}

/* The tiny model (dims 256 and 512: every K-quant applies): every weighted type and three mixtures. */
static void test_peer_bytes_tiny(void **state)
{
    (void)state;
    const char *calib = peer_calibration();
    if (!calib) skip();
    static const peer_case cases[] = {
        {"Q4_0", "Q4_0", true},   {"Q4_1", "Q4_1", true},      {"Q5_0", "Q5_0", true},
        {"Q5_1", "Q5_1", true},   {"Q2_K", "Q2_K", true},      {"Q3_K", "Q3_K_M", true},
        {"Q4_K", "Q4_K_M", true}, {"Q5_K", "Q5_K_M", true},    {"Q6_K", "Q6_K", true},
        {"Q2_K", "Q2_K", false},  {"Q3_K_M", "Q3_K_M", false}, {"Q4_K_M", "Q4_K_M", false}};
    /* 2 layers x 7 matrices (llama-imatrix leaves output.weight out unless --process-output). */
    assert_int_equal(peer_bytes(g_tiny, calib, 14, cases, sizeof cases / sizeof cases[0]), 0);
}

/* stories260K (dim 64: the K-quants fall back to Q4_0, Q5_0, Q5_1, Q8_0 per tensor) with a real text. */
static void test_peer_bytes_stories(void **state)
{
    (void)state;
    const char *calib = peer_calibration();
    const char *model = th_join_(th_shared_dir(), "models/stories260K.gguf");
    if (!calib || access(model, R_OK) != 0) skip();
    static const peer_case cases[] = {{"Q4_0", "Q4_0", true},
                                      {"Q2_K", "Q2_K", false},
                                      {"Q3_K_M", "Q3_K_M", false},
                                      {"Q4_K_M", "Q4_K_M", false}};
    assert_int_equal(peer_bytes(model, calib, 35, cases, sizeof cases / sizeof cases[0]), 0);
}

/* llama-imatrix's legacy .dat output (--output-format dat) read by vkllm: the same bytes as llama-quantize with it. */
static void test_peer_bytes_legacy_dat(void **state)
{
    (void)state;
    const char *calib = peer_calibration();
    if (!calib) skip();
    char dat[600], cmd[4096];
    snprintf(dat, sizeof dat, "%s.dat", g_imatrix);
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD LD_LIBRARY_PATH='%s' '%s/llama-imatrix' -m '%s' -f '%s' -o '%s' --output-format dat "
             "-c 128 --chunks 4 -t 2 >/dev/null 2>&1",
             g_peer, g_peer, g_tiny, calib, dat);
    assert_int_equal(run(cmd), 0);
    imatrix_data *imatrix = NULL;
    if (imatrix_load(dat, &imatrix) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    assert_true(imatrix->legacy);
    assert_int_equal(imatrix->n_entries, 14);
    assert_int_equal(imatrix->chunk_count, 4);
    quant_recipe recipe;
    assert_true(quant_recipe_from_name("Q4_K_M", false, &recipe));
    if (quantize_file_imatrix(g_tiny, g_ours, &recipe, imatrix, dat, NULL, NULL) != VKLLM_OK)
        fail_msg("%s", vkllm_last_error());
    imatrix_free(imatrix);
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD LD_LIBRARY_PATH='%s' '%s/llama-quantize' --imatrix '%s' '%s' '%s' Q4_K_M 1 "
             ">/dev/null 2>&1",
             g_peer, g_peer, dat, g_tiny, g_theirs);
    assert_int_equal(run(cmd), 0);
    assert_int_equal(compare_tensors(g_ours, g_theirs), 0);
    printf("Q4_K_M with a .dat imatrix: same bytes as llama-quantize\n");
    remove(dat);
}

/* ---- llama-quantize's bytes without the peer ---- */

/* A synthetic imatrix for the tiny model's 14 block weights: skewed pseudo-random sums (a fixed seed), 10 tokens. */
static void write_synthetic_imatrix(const char *model, const char *path)
{
    gguf_file *f = NULL;
    if (gguf_open(model, &f) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    imatrix_entry e[64];
    float *sums[64], counts[1] = {10};
    uint64_t n = 0;
    uint32_t rng = 2024;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        if (t->n_dims != 2 || t->name.len < 4 || memcmp(t->name.data, "blk.", 4) != 0) continue;
        assert_true(n < 64);
        sums[n] = malloc(t->ne[0] * sizeof *sums[n]);
        assert_non_null(sums[n]);
        for (uint64_t j = 0; j < t->ne[0]; j++) {
            rng = rng * 1664525u + 1013904223u;
            float u = (float)(rng >> 8) / 16777216.0f;
            sums[n][j] = 10 * (0.05f + 4 * u * u * u);
        }
        char *name = malloc(t->name.len + 1);
        assert_non_null(name);
        memcpy(name, t->name.data, t->name.len);
        name[t->name.len] = '\0';
        e[n] = (imatrix_entry){.name = name, .n = t->ne[0], .n_mat = 1, .sums = sums[n], .counts = counts};
        n++;
    }
    gguf_close(f);
    imatrix_data d = {.entries = e, .n_entries = n, .chunk_count = 1, .chunk_size = 10, .dataset = "synthetic"};
    if (imatrix_write(&d, path) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    for (uint64_t i = 0; i < n; i++) free(sums[i]), free(e[i].name);
}

static int gguf_str_cmp(const gguf_str *a, const gguf_str *b)
{
    int c = memcmp(a->data, b->data, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* FNV-1a over every tensor's name, type and bytes, the tensors taken in name order (llama-quantize writes them in
 * another order than vkllm). */
static uint64_t tensors_hash(const char *path)
{
    gguf_file *f = NULL;
    if (gguf_open(path, &f) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    uint64_t h = 1469598103934665603ull;
    const gguf_tensor_info *prev = NULL;
    for (uint64_t done = 0; done < f->n_tensors; done++) {
        const gguf_tensor_info *next = NULL; /* the least name above prev's */
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor_info *t = &f->tensors[i];
            if (prev && gguf_str_cmp(&t->name, &prev->name) <= 0) continue;
            if (!next || gguf_str_cmp(&t->name, &next->name) < 0) next = t;
        }
        for (uint64_t k = 0; k < next->name.len; k++) h = (h ^ (uint8_t)next->name.data[k]) * 1099511628211ull;
        h = (h ^ next->type) * 1099511628211ull;
        for (uint64_t k = 0; k < next->size; k++) h = (h ^ ((const uint8_t *)next->data)[k]) * 1099511628211ull;
        prev = next;
    }
    gguf_close(f);
    return h;
}


/* llama-quantize --imatrix's output for the tiny model (synth seed 7, F32) with the synthetic imatrix, as hashes
 * of its tensors: CI has no llama-quantize (only `../shared/peer/setup.sh --tools` builds it), so these keep the
 * byte equality tested everywhere.  Where the peer's tools are installed, the test also checks llama-quantize
 * still gives these hashes, and prints them when a case is 0 (to fill in after a format change). */
static const struct {
    const char *type, *peer;
    bool pure;
    uint64_t hash;
} fixed_cases[] = {
    {"Q4_0", "Q4_0", true, 0x48f85b7523d25b06ull},
    {"Q4_1", "Q4_1", true, 0x7a927411e2cd3f22ull},
    {"Q5_0", "Q5_0", true, 0x81fc5932ff385126ull},
    {"Q5_1", "Q5_1", true, 0x590e65c6b35c16cull},
    {"Q2_K", "Q2_K", true, 0xeba342e9e868cce2ull},
    {"Q3_K", "Q3_K_M", true, 0xdc1c390bfd72dc28ull},
    {"Q4_K", "Q4_K_M", true, 0x72ae764b1e6ca3f4ull},
    {"Q5_K", "Q5_K_M", true, 0xa8053c0c50722710ull},
    {"Q6_K", "Q6_K", true, 0x417f5bedc5861e80ull},
    {"Q2_K", "Q2_K", false, 0x74cbec2cfca3e088ull},
    {"Q3_K_M", "Q3_K_M", false, 0x97ce0dd6b9878322ull},
    {"Q4_K_M", "Q4_K_M", false, 0x889871aed426288ull},
};

static void test_fixed_bytes_tiny(void **state)
{
    (void)state;
    write_synthetic_imatrix(g_tiny, g_imatrix);
    imatrix_data *imatrix = NULL;
    if (imatrix_load(g_imatrix, &imatrix) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    const bool peer = find_peer();
    int unknown = 0, bad = 0;
    for (size_t c = 0; c < sizeof fixed_cases / sizeof fixed_cases[0]; c++) {
        quant_recipe recipe;
        assert_true(quant_recipe_from_name(fixed_cases[c].type, fixed_cases[c].pure, &recipe));
        if (quantize_file_imatrix(g_tiny, g_ours, &recipe, imatrix, g_imatrix, NULL, NULL) != VKLLM_OK)
            fail_msg("%s", vkllm_last_error());
        uint64_t ours = tensors_hash(g_ours), want = fixed_cases[c].hash;
        if (peer) {
            char cmd[4096];
            snprintf(cmd, sizeof cmd,
                     "env -u LD_PRELOAD LD_LIBRARY_PATH='%s' '%s/llama-quantize' %s--imatrix '%s' '%s' '%s' %s 1 "
                     ">/dev/null 2>&1",
                     g_peer, g_peer, fixed_cases[c].pure ? "--pure " : "", g_imatrix, g_tiny, g_theirs,
                     fixed_cases[c].peer);
            assert_int_equal(run(cmd), 0);
            uint64_t theirs = tensors_hash(g_theirs);
            if (want && theirs != want) {
                printf("%s%s: llama-quantize now gives %#llx, the table says %#llx\n", fixed_cases[c].type,
                       fixed_cases[c].pure ? " (pure)" : "", (unsigned long long)theirs, (unsigned long long)want);
                bad++;
            }
            if (!want) want = theirs;
        }
        if (!fixed_cases[c].hash) {
            printf("  {\"%s\", \"%s\", %s, %#llxull},\n", fixed_cases[c].type, fixed_cases[c].peer,
                   fixed_cases[c].pure ? "true" : "false", (unsigned long long)want);
            unknown += !peer;
        }
        if (want && ours != want) {
            printf("%s%s: %#llx here, llama-quantize's %#llx\n", fixed_cases[c].type,
                   fixed_cases[c].pure ? " (pure)" : "", (unsigned long long)ours, (unsigned long long)want);
            bad++;
        }
    }
    imatrix_free(imatrix);
    assert_int_equal(unknown, 0);
    assert_int_equal(bad, 0);
}

/* vkllm imatrix against llama-imatrix on stories260K, same text and chunks: the same entries and token counts,
 * values within a tolerance (the two engines' activations differ by float rounding); and each tool's file works
 * in the other's quantizer. */
static void test_imatrix_vs_peer(void **state)
{
    (void)state;
    const char *calib = peer_calibration();
    const char *model = th_join_(th_shared_dir(), "models/stories260K.gguf");
    if (!calib || access(model, R_OK) != 0) skip();
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD LD_LIBRARY_PATH='%s' '%s/llama-imatrix' -m '%s' -f '%s' -o '%s' -c 128 --chunks 4 "
             "-t 2 >/dev/null 2>&1",
             g_peer, g_peer, model, calib, g_theirs);
    assert_int_equal(run(cmd), 0);
    imatrix_options o = {.model = model, .text_path = calib, .n_ctx = 128, .chunks = 4};
    imatrix_data *ours = NULL, *theirs = NULL;
    if (imatrix_compute(&o, NULL, NULL, &ours) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    if (imatrix_write(ours, g_imatrix) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    imatrix_free(ours);
    if (imatrix_load(g_imatrix, &ours) != VKLLM_OK || imatrix_load(g_theirs, &theirs) != VKLLM_OK)
        fail_msg("%s", vkllm_last_error());
    assert_int_equal(ours->n_entries, theirs->n_entries);
    assert_int_equal(ours->chunk_count, theirs->chunk_count);
    assert_int_equal(ours->chunk_size, theirs->chunk_size);
    double worst = 0, sum = 0;
    uint64_t n = 0;
    for (uint64_t i = 0; i < theirs->n_entries; i++) {
        const imatrix_entry *t = &theirs->entries[i], *u = imatrix_find(ours, t->name);
        assert_non_null(u);
        assert_int_equal(u->n, t->n);
        assert_true(u->counts[0] == t->counts[0]); /* the same tokens */
        for (uint64_t j = 0; j < t->n; j++, n++) {
            double rel = fabs((double)u->values[j] - t->values[j]) / fmax(fabs((double)t->values[j]), 1e-6);
            sum += rel;
            if (rel > worst) worst = rel;
        }
    }
    printf("vkllm imatrix vs llama-imatrix: %llu values, relative difference mean %.2g, max %.2g\n",
           (unsigned long long)n, sum / (double)n, worst);
    assert_true(sum / (double)n < 1e-3);
    assert_true(worst < 1e-2);
    imatrix_free(ours);
    imatrix_free(theirs);
    /* Our file in llama-quantize. */
    snprintf(cmd, sizeof cmd,
             "env -u LD_PRELOAD LD_LIBRARY_PATH='%s' '%s/llama-quantize' --imatrix '%s' '%s' '%s' Q4_K_M 1 "
             ">/dev/null 2>&1",
             g_peer, g_peer, g_imatrix, model, g_theirs);
    assert_int_equal(run(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_imatrix_roundtrip),
        cmocka_unit_test(test_weighted_beats_rtn),
        cmocka_unit_test(test_imatrix_for_another_model),
        cmocka_unit_test(test_fixed_bytes_tiny),
        cmocka_unit_test(test_peer_bytes_tiny),
        cmocka_unit_test(test_peer_bytes_stories),
        cmocka_unit_test(test_peer_bytes_legacy_dat),
        cmocka_unit_test(test_imatrix_vs_peer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
