/* vkllm synth: presets, determinism, shapes that model_config accepts, the generated tokenizers, and the
 * streaming GGUF writer it relies on.  Only the tiny presets are written; the big ones are checked through
 * their plan and metadata. */
#include "harness.h"
#include "paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/error.h"
#include "gguf/gguf.h"
#include "model/model_config.h"
#include "tools/synth.h"

static void temp_path(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "%s/test_synth_%s_%ld.gguf", th_binary_dir(), tag, (long)getpid());
}

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *data = malloc(*size ? *size : 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, *size, fp), *size);
    fclose(fp);
    return data;
}

static void write_synth(const char *preset, const char *type, uint64_t seed, const char *path)
{
    synth_options o = {.seed = seed};
    assert_true(quant_recipe_from_name(type, false, &o.recipe));
    vkllm_status status = synth_write(synth_preset_find(preset), &o, path);
    if (status != VKLLM_OK) fail_msg("synth %s %s: %s", preset, type, vkllm_last_error());
}

static void test_presets(void **state)
{
    (void)state;
    static const char *const names[] = {"tiny", "tiny-qwen2", "llama-134m", "tinyllama-1.1b",
                                        "llama2-7b", "llama3-8b", "qwen2.5-0.5b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) assert_non_null(synth_preset_find(names[i]));
    assert_null(synth_preset_find("llama-9000b"));
    const synth_preset *q = synth_preset_find("qwen2.5-0.5b");
    assert_string_equal(q->arch, "qwen2");
    assert_true(q->attn_bias && q->tied_output);
    assert_int_equal(q->n_vocab, 151936);
    const synth_preset *l3 = synth_preset_find("llama3-8b");
    assert_int_equal(l3->n_head_kv, 8);
    assert_int_equal(l3->n_ff, 14336);
    assert_true(l3->rope_base == 500000.0f);
}

static void test_deterministic(void **state)
{
    (void)state;
    char a[512], b[512], c[512];
    temp_path(a, sizeof a, "a");
    temp_path(b, sizeof b, "b");
    temp_path(c, sizeof c, "c");
    write_synth("tiny", "Q4_K_M", 7, a);
    write_synth("tiny", "Q4_K_M", 7, b);
    write_synth("tiny", "Q4_K_M", 8, c);
    size_t na, nb, nc;
    uint8_t *da = read_all(a, &na), *db = read_all(b, &nb), *dc = read_all(c, &nc);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    assert_int_equal(na, nc); /* same layout, other weights */
    assert_true(memcmp(da, dc, na) != 0);
    free(da);
    free(db);
    free(dc);
    remove(a);
    remove(b);
    remove(c);
}

/* The shapes of every tensor a llama/qwen2 model needs, derived from the config (not from the plan). */
static void check_model_tensors(const gguf_file *f, const model_config *c)
{
    const gguf_tensor_info *t = NULL;
    const uint64_t embd = c->n_embd, q = (uint64_t)c->n_head * c->head_dim, kv = (uint64_t)c->n_head_kv * c->head_dim;
    assert_int_equal(model_tensor(f, "token_embd.weight", 2, (uint64_t[]){embd, c->n_vocab}, false, &t), VKLLM_OK);
    assert_int_equal(model_tensor(f, "output_norm.weight", 1, (uint64_t[]){embd}, false, &t), VKLLM_OK);
    assert_int_equal(model_tensor(f, "output.weight", 2, (uint64_t[]){embd, c->n_vocab}, true, &t), VKLLM_OK);
    assert_true((t == NULL) == c->tied_output);
    for (uint32_t il = 0; il < c->n_layer; il++) {
        char name[64];
#define CHECK(suffix, optional, n_dims, ...)                                                                   \
    do {                                                                                                       \
        snprintf(name, sizeof name, "blk.%u.%s", il, suffix);                                                  \
        if (model_tensor(f, name, n_dims, (uint64_t[]){__VA_ARGS__}, optional, &t) != VKLLM_OK)                \
            fail_msg("%s", vkllm_last_error());                                                                \
    } while (0)
        CHECK("attn_norm.weight", false, 1, embd);
        CHECK("attn_q.weight", false, 2, embd, q);
        CHECK("attn_k.weight", false, 2, embd, kv);
        CHECK("attn_v.weight", false, 2, embd, kv);
        CHECK("attn_output.weight", false, 2, q, embd);
        CHECK("ffn_norm.weight", false, 1, embd);
        CHECK("ffn_gate.weight", false, 2, embd, c->n_ff);
        CHECK("ffn_up.weight", false, 2, embd, c->n_ff);
        CHECK("ffn_down.weight", false, 2, c->n_ff, embd);
        CHECK("attn_q.bias", !c->attn_bias, 1, q);
        CHECK("attn_k.bias", !c->attn_bias, 1, kv);
        CHECK("attn_v.bias", !c->attn_bias, 1, kv);
#undef CHECK
    }
}

static void check_config(const model_config *c, const synth_preset *p)
{
    assert_string_equal(c->arch_name, p->arch);
    assert_int_equal(c->n_vocab, p->n_vocab);
    assert_int_equal(c->n_embd, p->n_embd);
    assert_int_equal(c->n_layer, p->n_layer);
    assert_int_equal(c->n_head, p->n_head);
    assert_int_equal(c->n_head_kv, p->n_head_kv);
    assert_int_equal(c->n_ff, p->n_ff);
    assert_int_equal(c->n_ctx_train, p->n_ctx);
    assert_int_equal(c->n_rot, p->n_embd / p->n_head);
    assert_true(c->rope_base == p->rope_base && c->rms_eps == p->rms_eps);
    assert_true(c->tied_output == p->tied_output && c->attn_bias == p->attn_bias);
}

static void check_file_against_plan(const gguf_file *f, const synth_plan *plan)
{
    assert_int_equal(f->n_tensors, plan->n_tensors);
    for (size_t i = 0; i < plan->n_tensors; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        assert_true(gguf_str_eq(t->name, plan->tensors[i].name));
        assert_int_equal(t->type, plan->tensors[i].type);
    }
}

static const char *const all_types[] = {"F32",  "F16",    "BF16",   "Q8_0",   "Q4_0",   "Q4_1",  "Q5_0",
                                        "Q5_1", "Q3_K",   "Q4_K",   "Q5_K",   "Q6_K",   "Q2_K",  "Q3_K_S",
                                        "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M"};

static void check_tiny(const char *preset_name, const char *type, const char *path)
{
    const synth_preset *preset = synth_preset_find(preset_name);
    write_synth(preset_name, type, 1, path);
    quant_recipe recipe;
    assert_true(quant_recipe_from_name(type, false, &recipe));
    synth_plan plan;
    assert_int_equal(synth_plan_create(preset, &recipe, &plan), VKLLM_OK);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(path, &f), VKLLM_OK);
    model_config c;
    if (model_config_read(f, &c) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    check_config(&c, preset);
    check_model_tensors(f, &c);
    check_file_against_plan(f, &plan);
    assert_int_equal(gguf_u32_or(f, "general.file_type", 999), recipe.ftype);
    gguf_close(f);
    synth_plan_free(&plan);
}

/* Every type on tiny, a few on tiny-qwen2 (K-quants are slow under the sanitizers): written, read back,
 * shapes and types as planned. */
static void test_tiny_presets_every_type(void **state)
{
    (void)state;
    static const char *const qwen_types[] = {"F32", "Q8_0", "Q2_K", "Q4_K_M"};
    char path[512];
    temp_path(path, sizeof path, "types");
    for (size_t k = 0; k < sizeof all_types / sizeof all_types[0]; k++) check_tiny("tiny", all_types[k], path);
    for (size_t k = 0; k < sizeof qwen_types / sizeof qwen_types[0]; k++) check_tiny("tiny-qwen2", qwen_types[k], path);
    remove(path);
}

/* Big presets: metadata written alone, tensors taken from the plan, checked like a real file. */
static void check_big_preset(const synth_preset *preset, const char *type, const char *path)
{
    quant_recipe recipe;
    assert_true(quant_recipe_from_name(type, false, &recipe));
    gguf_writer *w = NULL;
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    assert_int_equal(synth_add_metadata(preset, &recipe, w), VKLLM_OK);
    assert_int_equal(gguf_writer_write(w, path), VKLLM_OK);
    gguf_writer_free(w);
    synth_plan plan;
    assert_int_equal(synth_plan_create(preset, &recipe, &plan), VKLLM_OK);
    gguf_file *meta = NULL;
    assert_int_equal(gguf_open(path, &meta), VKLLM_OK);
    gguf_tensor_info *infos = calloc(plan.n_tensors, sizeof *infos);
    assert_non_null(infos);
    for (size_t i = 0; i < plan.n_tensors; i++) {
        const synth_tensor *t = &plan.tensors[i];
        infos[i] = (gguf_tensor_info){.name = {t->name, strlen(t->name)}, .n_dims = t->n_dims,
                                      .ne = {t->ne[0], t->ne[1], 1, 1}, .type = t->type,
                                      .size = quant_row_size(t->type, t->ne[0]) * t->ne[1]};
    }
    gguf_file view = *meta;
    view.tensors = infos;
    view.n_tensors = plan.n_tensors;
    model_config c;
    if (model_config_read(&view, &c) != VKLLM_OK) fail_msg("%s: %s", preset->name, vkllm_last_error());
    check_config(&c, preset);
    check_model_tensors(&view, &c);
    gguf_array tokens;
    assert_int_equal(gguf_get_array(meta, "tokenizer.ggml.tokens", &tokens), VKLLM_OK);
    assert_int_equal(tokens.count, preset->n_vocab);
    free(infos);
    gguf_close(meta);
    synth_plan_free(&plan);
}

static void test_big_presets(void **state)
{
    (void)state;
    char path[512];
    temp_path(path, sizeof path, "meta");
    for (size_t i = 0; synth_preset_at(i); i++) {
        check_big_preset(synth_preset_at(i), "F16", path);
        check_big_preset(synth_preset_at(i), "Q4_K_M", path);
    }
    remove(path);
}

/* llama.cpp's choices on qwen2.5-0.5b, whose 896-wide rows take no 256-element block. */
static void test_plan_fallbacks(void **state)
{
    (void)state;
    quant_recipe recipe;
    assert_true(quant_recipe_from_name("Q4_K_M", false, &recipe));
    synth_plan plan;
    assert_int_equal(synth_plan_create(synth_preset_find("qwen2.5-0.5b"), &recipe, &plan), VKLLM_OK);
    for (size_t i = 0; i < plan.n_tensors; i++) {
        const synth_tensor *t = &plan.tensors[i];
        int layer = -1;
        sscanf(t->name, "blk.%d.", &layer);
        bool more = layer < 3 || layer >= 21 || (layer - 3) % 3 == 2;
        quant_type want = QUANT_Q5_0;                                 /* Q4_K falls back to Q5_0 */
        if (t->n_dims == 1) want = QUANT_F32;
        else if (strcmp(t->name, "token_embd.weight") == 0) want = QUANT_Q8_0; /* tied: as output */
        else if (strstr(t->name, "ffn_down")) want = more ? QUANT_Q6_K : QUANT_Q4_K; /* 4864 = 19 * 256 */
        else if (strstr(t->name, "attn_v.weight")) want = more ? QUANT_Q8_0 : QUANT_Q5_0;
        if (t->type != want) fail_msg("%s: %s, expected %s", t->name, quant_get_traits(t->type)->name,
                                      quant_get_traits(want)->name);
    }
    synth_plan_free(&plan);
}

static int find_token(char **sorted, size_t n, const char *s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(sorted[mid], s);
        if (c == 0) return 1;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int compare_strings(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char **string_array(const gguf_file *f, const char *key, size_t *n)
{
    gguf_array arr;
    assert_int_equal(gguf_get_array(f, key, &arr), VKLLM_OK);
    char **out = calloc(arr.count, sizeof *out);
    uint64_t cursor = 0;
    gguf_str s;
    for (size_t i = 0; gguf_array_next_str(&arr, &cursor, &s); i++) out[i] = strndup(s.data, s.len);
    *n = arr.count;
    return out;
}

/* Unique tokens; every merge joins two tokens into a third; the special ids point at the right tokens. */
static void check_vocab(const char *preset, const char *path)
{
    write_synth(preset, "Q8_0", 1, path);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(path, &f), VKLLM_OK);
    size_t n_tokens, n_merges = 0;
    char **tokens = string_array(f, "tokenizer.ggml.tokens", &n_tokens);
    char **by_id = malloc(n_tokens * sizeof *by_id);
    memcpy(by_id, tokens, n_tokens * sizeof *by_id);
    qsort(tokens, n_tokens, sizeof *tokens, compare_strings);
    for (size_t i = 1; i < n_tokens; i++)
        if (strcmp(tokens[i - 1], tokens[i]) == 0) fail_msg("%s: token '%s' twice", preset, tokens[i]);
    bool bpe = gguf_find_kv(f, "tokenizer.ggml.merges") != NULL;
    if (bpe) {
        char **merges = string_array(f, "tokenizer.ggml.merges", &n_merges);
        for (size_t i = 0; i < n_merges; i++) {
            char *space = strchr(merges[i], ' ');
            assert_non_null(space);
            *space = '\0';
            char joined[64];
            snprintf(joined, sizeof joined, "%s%s", merges[i], space + 1);
            assert_true(find_token(tokens, n_tokens, merges[i]) && find_token(tokens, n_tokens, space + 1));
            assert_true(find_token(tokens, n_tokens, joined));
            free(merges[i]);
        }
        free(merges);
        assert_string_equal(by_id[gguf_u32_or(f, "tokenizer.ggml.bos_token_id", 0)], "<|endoftext|>");
        assert_int_equal(n_merges + 256 + 3, n_tokens);
    } else {
        assert_string_equal(by_id[1], "<s>");
        assert_string_equal(by_id[2], "</s>");
        assert_string_equal(by_id[3 + 0x0A], "<0x0A>");
    }
    for (size_t i = 0; i < n_tokens; i++) free(tokens[i]);
    free(tokens);
    free(by_id);
    gguf_close(f);
}

static void test_vocabularies(void **state)
{
    (void)state;
    char path[512];
    temp_path(path, sizeof path, "vocab");
    check_vocab("tiny", path);
    check_vocab("tiny-qwen2", path);
    remove(path);
}

/* ---- the streaming writer ---- */

typedef struct counted_producer {
    uint64_t bytes; /* how many to produce */
} counted_producer;

static vkllm_status produce_counted(void *ctx, gguf_sink *sink)
{
    const counted_producer *p = ctx;
    uint8_t byte = 0x5a;
    for (uint64_t i = 0; i < p->bytes; i++) VKLLM_TRY(gguf_sink_write(sink, &byte, 1));
    return VKLLM_OK;
}

static void test_stream_writer(void **state)
{
    (void)state;
    char path[512];
    temp_path(path, sizeof path, "stream");
    const uint64_t ne[1] = {10};
    for (uint64_t bytes = 39; bytes <= 41; bytes++) {
        counted_producer p = {bytes};
        gguf_writer *w = NULL;
        assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
        assert_int_equal(gguf_writer_add_tensor_stream(w, "t", QUANT_F32, 1, ne, 40, produce_counted, &p), VKLLM_OK);
        vkllm_status status = gguf_writer_write(w, path);
        gguf_writer_free(w);
        if (bytes != 40) {
            assert_int_equal(status, VKLLM_ERROR_INVALID_ARGUMENT);
            assert_non_null(strstr(vkllm_last_error(), "producer of tensor 't'"));
            assert_int_not_equal(access(path, F_OK), 0); /* a failed write leaves no file */
            continue;
        }
        assert_int_equal(status, VKLLM_OK);
        gguf_file *f = NULL;
        assert_int_equal(gguf_open(path, &f), VKLLM_OK);
        assert_int_equal(f->tensors[0].size, 40);
        assert_int_equal(((const uint8_t *)f->tensors[0].data)[39], 0x5a);
        gguf_close(f);
    }
    gguf_writer *w = NULL;
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    assert_int_equal(gguf_writer_add_tensor_stream(w, "t", QUANT_F32, 1, ne, 40, NULL, NULL),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(gguf_writer_add_tensor_stream(w, "t", QUANT_Q4_0, 1, ne, 40, produce_counted, NULL),
                     VKLLM_ERROR_INVALID_ARGUMENT); /* 10 elements are no Q4_0 row */
    gguf_writer_free(w);
    remove(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_tiny_presets_every_type),
        cmocka_unit_test(test_big_presets),
        cmocka_unit_test(test_plan_fallbacks),
        cmocka_unit_test(test_vocabularies),
        cmocka_unit_test(test_stream_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
