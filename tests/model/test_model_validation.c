/* Load-time validation of the metadata a forward pass uses (issue 10): stories260K rewritten with one bad
 * value at a time must fail to load with VKLLM_ERROR_BAD_FORMAT naming the key and the value, before any
 * device exists.  And a model whose weights hold NaN loads, but generation says the model produced NaN
 * instead of naming a token id of -1; it also writes the NaN model for the sample_logits_nan CLI test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "harness.h"
#include "model/model.h"
#include "paths.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")

static char tmpdir[] = "/tmp/vkllm-test-model-validation-XXXXXX";

/* One change to the file: a key set to a value (or dropped), the vocabulary cut, a tensor filled with NaN or an
 * extra layer's norm added. */
typedef enum change_kind { SET_U32, SET_F32, SET_STR, DROP, CUT_VOCAB, NAN_TENSOR, EXTRA_LAYER_TENSOR } change_kind;

typedef struct change {
    change_kind kind;
    const char *key; /* or the tensor's name */
    uint32_t u32;
    float f32;
    const char *str;
} change;

static bool changes_key(const change *changes, size_t n, const gguf_str key)
{
    for (size_t i = 0; i < n; i++) {
        if (changes[i].kind == CUT_VOCAB && (gguf_str_eq(key, "tokenizer.ggml.tokens") ||
                                             gguf_str_eq(key, "tokenizer.ggml.scores") ||
                                             gguf_str_eq(key, "tokenizer.ggml.token_type")))
            return true;
        if (changes[i].kind <= DROP && gguf_str_eq(key, changes[i].key)) return true;
    }
    return false;
}

/* The first n entries of the tokenizer's three arrays. */
static void cut_vocab(gguf_writer *w, const gguf_file *f, uint32_t n)
{
    gguf_array tokens, scores, types;
    th_check_status(gguf_get_array(f, "tokenizer.ggml.tokens", &tokens), "tokens");
    th_check_status(gguf_get_array(f, "tokenizer.ggml.scores", &scores), "scores");
    th_check_status(gguf_get_array(f, "tokenizer.ggml.token_type", &types), "token_type");
    const char **strs = calloc(n, sizeof *strs);
    uint64_t *lens = calloc(n, sizeof *lens), cursor = 0;
    for (uint32_t i = 0; i < n; i++) {
        gguf_str s;
        assert_true(gguf_array_next_str(&tokens, &cursor, &s));
        strs[i] = s.data;
        lens[i] = s.len;
    }
    th_check_status(gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", strs, lens, n), "set tokens");
    th_check_status(gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores.data, n), "scores");
    th_check_status(gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data, n), "types");
    free(strs);
    free(lens);
}

/* stories260K with the changes, written to path. */
static void rewrite(const char *path, const change *changes, size_t n_changes)
{
    gguf_file *f = NULL;
    gguf_writer *w = NULL;
    th_check_status(gguf_open(STORIES, &f), "open stories260K");
    th_check_status(gguf_writer_create(&w), "writer");
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (!changes_key(changes, n_changes, f->kv[i].key)) th_check_status(gguf_writer_copy_kv(w, &f->kv[i]), "copy kv");
    float *filled[4] = {0};
    size_t n_filled = 0;
    for (size_t c = 0; c < n_changes; c++) {
        const change *ch = &changes[c];
        if (ch->kind == SET_U32) th_check_status(gguf_writer_set_u32(w, ch->key, ch->u32), ch->key);
        else if (ch->kind == SET_F32) th_check_status(gguf_writer_set_f32(w, ch->key, ch->f32), ch->key);
        else if (ch->kind == SET_STR) th_check_status(gguf_writer_set_str(w, ch->key, ch->str), ch->key);
        else if (ch->kind == CUT_VOCAB) cut_vocab(w, f, ch->u32);
        else if (ch->kind == EXTRA_LAYER_TENSOR) {
            const gguf_tensor_info *norm = gguf_find_tensor(f, "blk.0.attn_norm.weight");
            th_check_status(gguf_writer_add_tensor(w, ch->key, norm->type, norm->n_dims, norm->ne, norm->data,
                                                   norm->size), ch->key);
        }
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        const void *data = t->data;
        for (size_t c = 0; c < n_changes; c++)
            if (changes[c].kind == NAN_TENSOR && !strcmp(changes[c].key, name)) {
                assert_true(n_filled < 4);
                float *nan_data = filled[n_filled++] = malloc(t->size);
                for (uint64_t e = 0; e < t->size / 4; e++) nan_data[e] = NAN;
                data = nan_data;
            }
        th_check_status(gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, data, t->size), name);
    }
    th_check_status(gguf_writer_write(w, path), path);
    gguf_writer_free(w);
    for (size_t i = 0; i < n_filled; i++) free(filled[i]);
    gguf_close(f);
}

/* The load fails with BAD_FORMAT, no model, and a message holding every needle. */
static void expect_bad(const char *tag, const change *changes, size_t n_changes, const char *needle1,
                       const char *needle2)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", tmpdir, tag);
    rewrite(path, changes, n_changes);
    vkllm_model *m = (vkllm_model *)(uintptr_t)1;
    vkllm_status st = vkllm_model_load(path, &m);
    printf("  %-22s %s: %s\n", tag, vkllm_status_name(st), vkllm_last_error());
    assert_int_equal(st, VKLLM_ERROR_BAD_FORMAT);
    assert_null(m);
    if (!strstr(vkllm_last_error(), needle1) || (needle2 && !strstr(vkllm_last_error(), needle2)))
        fail_msg("%s: message lacks '%s'%s%s%s", tag, needle1, needle2 ? " or '" : "", needle2 ? needle2 : "",
                 needle2 ? "'" : "");
    unlink(path);
}

#define BAD(tag, needle1, needle2, ...)                                                                            \
    do {                                                                                                           \
        const change changes_[] = {__VA_ARGS__};                                                                   \
        expect_bad(tag, changes_, sizeof changes_ / sizeof *changes_, needle1, needle2);                          \
    } while (0)

static void test_unchanged_copy_loads(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/copy.gguf", tmpdir);
    rewrite(path, NULL, 0);
    vkllm_model *m = NULL;
    th_check_status(vkllm_model_load(path, &m), "the unchanged copy");
    vkllm_model_free(m);
    unlink(path);
}

static void test_bad_norm_and_rope_values(void **state)
{
    const char *eps = "llama.attention.layer_norm_rms_epsilon";
    BAD("eps_inf", "'llama.attention.layer_norm_rms_epsilon' = inf is outside [1e-12, 0.1]", NULL,
        {SET_F32, eps, .f32 = INFINITY});
    BAD("eps_huge", "'llama.attention.layer_norm_rms_epsilon' = 1e+30 is outside", NULL, {SET_F32, eps, .f32 = 1e30f});
    BAD("eps_nan", "'llama.attention.layer_norm_rms_epsilon' = nan", NULL, {SET_F32, eps, .f32 = NAN});
    BAD("eps_zero", "'llama.attention.layer_norm_rms_epsilon' = 0 is outside", NULL, {SET_F32, eps, .f32 = 0});
    BAD("eps_negative", "'llama.attention.layer_norm_rms_epsilon' = -1e-05", NULL, {SET_F32, eps, .f32 = -1e-5f});
    BAD("rope_base_nan", "'llama.rope.freq_base' = nan is outside", NULL, {SET_F32, "llama.rope.freq_base", .f32 = NAN});
    BAD("rope_base_zero", "'llama.rope.freq_base' = 0 is outside", NULL, {SET_F32, "llama.rope.freq_base", .f32 = 0});
    BAD("rope_base_inf", "'llama.rope.freq_base' = inf", NULL, {SET_F32, "llama.rope.freq_base", .f32 = INFINITY});
    BAD("rope_factor_zero", "'llama.rope.scaling.factor' = 0 is outside", NULL,
        {SET_STR, "llama.rope.scaling.type", .str = "linear"}, {SET_F32, "llama.rope.scaling.factor", .f32 = 0});
    BAD("rope_factor_inf", "'llama.rope.scaling.factor' = inf", NULL,
        {SET_STR, "llama.rope.scaling.type", .str = "linear"}, {SET_F32, "llama.rope.scaling.factor", .f32 = INFINITY});
    BAD("rope_scale_negative", "'llama.rope.scale_linear' = -2", NULL,
        {SET_F32, "llama.rope.scale_linear", .f32 = -2});
}

static void test_bad_shapes(void **state)
{
    BAD("kv_heads_5", "'llama.attention.head_count' = 8 is not a multiple of 'llama.attention.head_count_kv' = 5", NULL,
        {SET_U32, "llama.attention.head_count_kv", .u32 = 5});
    BAD("kv_heads_0", "'llama.attention.head_count' = 8 is not a multiple of 'llama.attention.head_count_kv' = 0", NULL,
        {SET_U32, "llama.attention.head_count_kv", .u32 = 0});
    BAD("heads_7", "'llama.attention.head_count' = 7 does not divide 'llama.embedding_length' = 64", NULL,
        {SET_U32, "llama.attention.head_count", .u32 = 7}, {SET_U32, "llama.attention.head_count_kv", .u32 = 7});
    BAD("heads_0", "'llama.attention.head_count' is 0", NULL, {SET_U32, "llama.attention.head_count", .u32 = 0});
    BAD("head_size_odd", "head size 7", "must be even", {SET_U32, "llama.attention.key_length", .u32 = 7});
    BAD("rot_odd", "'llama.rope.dimension_count' = 3 must be even", NULL,
        {SET_U32, "llama.rope.dimension_count", .u32 = 3});
    BAD("rot_wide", "'llama.rope.dimension_count' = 16 must be even and at most the head size 8", NULL,
        {SET_U32, "llama.rope.dimension_count", .u32 = 16});
    BAD("context_0", "'llama.context_length' is 0", NULL, {SET_U32, "llama.context_length", .u32 = 0});
    BAD("width_0", "'llama.embedding_length' is 0", NULL, {SET_U32, "llama.embedding_length", .u32 = 0});
    BAD("width_huge", "'llama.embedding_length' = 1073741824 is above the largest supported", NULL,
        {SET_U32, "llama.embedding_length", .u32 = 1u << 30});
    BAD("ff_0", "'llama.feed_forward_length' is 0", NULL, {SET_U32, "llama.feed_forward_length", .u32 = 0});
    BAD("ff_wrong", "blk.0.ffn_gate.weight", "expected [64, 100]", {SET_U32, "llama.feed_forward_length", .u32 = 100});
    BAD("ff_string", "llama.feed_forward_length", NULL, {SET_STR, "llama.feed_forward_length", .str = "172"});
    BAD("ff_missing", "'llama.feed_forward_length' is missing", NULL, {DROP, "llama.feed_forward_length"});
    BAD("layers_fewer", "'llama.block_count' = 4, but the file has tensor 'blk.4.attn_norm.weight'", NULL,
        {SET_U32, "llama.block_count", .u32 = 4});
    BAD("layers_more", "tensor 'blk.5.attn_norm.weight' is missing", NULL, {SET_U32, "llama.block_count", .u32 = 6});
    BAD("layers_extra_tensor", "'llama.block_count' = 5, but the file has tensor 'blk.5.attn_norm.weight'", NULL,
        {EXTRA_LAYER_TENSOR, "blk.5.attn_norm.weight"});
    BAD("layers_huge", "'llama.block_count' = 100000 is above the largest supported, 4096", NULL,
        {SET_U32, "llama.block_count", .u32 = 100000});
}

static void test_vocabulary_must_match_the_embedding(void **state)
{
    BAD("vocab_short", "'tokenizer.ggml.tokens' has 300 tokens, but token_embd.weight has 512 rows", NULL,
        {CUT_VOCAB, NULL, .u32 = 300});
}

/* NaN in the final norm's weight makes every logit NaN: greedy decoding (the GPU's argmax) and the sampler both
 * say so.  The file stays behind for the sample_logits_nan CLI test. */
static void test_nan_logits_are_named(void **state)
{
    const char *path = th_join_(th_binary_dir(), "tests/nan_logits.gguf");
    const change nan_norm[] = {{NAN_TENSOR, "output_norm.weight"}};
    rewrite(path, nan_norm, 1);
    vkllm_model *m = NULL;
    th_check_status(vkllm_model_load(path, &m), "the NaN model loads (its metadata is fine)");
    uint32_t errors_before = vkr_device_validation_errors(m->dev);
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, NULL, &c), "context");
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    vkllm_status st = vkllm_generate(c, "Once upon a time", 0, 4, &greedy, NULL, NULL, NULL);
    printf("  greedy: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    assert_int_equal(st, VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "the model produced NaN logits: every one of the 512 logits of output "
                                               "row 0 is NaN"));
    assert_null(strstr(vkllm_last_error(), "-1"));
    vkllm_sampling sampled = vkllm_sampling_default();
    sampled.temperature = 0.8f;
    st = vkllm_generate(c, "Once upon a time", 0, 4, &sampled, NULL, NULL, NULL);
    printf("  sampled: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    assert_int_equal(st, VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "NaN"));
    assert_int_equal(vkr_device_validation_errors(m->dev), errors_before);
    vkllm_context_free(c);
    vkllm_model_free(m);
}

static int setup(void **state)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unchanged_copy_loads, NULL, NULL),
        cmocka_unit_test(test_bad_norm_and_rope_values),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_vocabulary_must_match_the_embedding),
        cmocka_unit_test(test_nan_logits_are_named),
    };
    if (setup(NULL) != 0) return 1;
    int failed = TH_RUN("model_validation", tests);
    teardown(NULL);
    return failed;
}
