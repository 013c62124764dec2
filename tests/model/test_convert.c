/* llama2.c import: stories260K.bin + tok512.bin converted to GGUF must match the stories260K.gguf that
 * ggml-org converted with llama.cpp, tensor for tensor and token for token.
 *
 * Known, intended differences from the shipped file: it repeats the shared classifier as output.weight
 * (checked here to equal token_embd.weight; vkllm omits it, as llama.cpp's loaders fall back to the
 * embedding), its llama.context_length is the converter's command-line value 2048 where vkllm writes the
 * checkpoint's seq_len 512, general.name is "llama" there and the file name here, it stores the null
 * separator/padding ids 0xFFFFFFFF that vkllm leaves out, and vkllm adds llama.rope.freq_base = 10000. */
#include "harness.h"
#include "paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/error.h"
#include "gguf/gguf.h"
#include "tools/llama2c.h"

static char g_out[512];

static int convert_once(void **state)
{
    (void)state;
    if (access(th_shared_path("models/stories260K.bin"), R_OK) != 0) return 0;
    snprintf(g_out, sizeof g_out, "%s/test_convert_%ld.gguf", th_binary_dir(), (long)getpid());
    if (llama2c_convert(th_shared_path("models/stories260K.bin"), th_shared_path("models/tok512.bin"), g_out) !=
        VKLLM_OK) {
        fprintf(stderr, "convert failed: %s\n", vkllm_last_error());
        return -1;
    }
    return 0;
}

static int remove_output(void **state)
{
    (void)state;
    if (g_out[0]) unlink(g_out);
    return 0;
}

static void open_both(gguf_file **converted, gguf_file **shipped)
{
    if (!g_out[0]) skip();
    assert_int_equal(gguf_open(g_out, converted), VKLLM_OK);
    assert_int_equal(gguf_open(th_shared_path("models/stories260K.gguf"), shipped), VKLLM_OK);
}

static void test_tensors_equal_shipped(void **state)
{
    (void)state;
    gguf_file *c, *s;
    open_both(&c, &s);
    assert_int_equal(c->n_tensors, s->n_tensors - 1);
    for (uint64_t i = 0; i < s->n_tensors; i++) {
        const gguf_tensor_info *want = &s->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)want->name.len, want->name.data);
        const gguf_tensor_info *got = gguf_find_tensor(c, name);
        if (strcmp(name, "output.weight") == 0) {
            assert_null(got);
            const gguf_tensor_info *embd = gguf_find_tensor(s, "token_embd.weight");
            assert_int_equal(want->size, embd->size);
            assert_memory_equal(want->data, embd->data, want->size);
            continue;
        }
        if (!got) fail_msg("tensor %s missing from the converted file", name);
        assert_int_equal(got->type, want->type);
        assert_int_equal(got->n_dims, want->n_dims);
        assert_memory_equal(got->ne, want->ne, sizeof got->ne);
        assert_int_equal(got->size, want->size);
        if (memcmp(got->data, want->data, got->size) != 0) fail_msg("tensor %s differs", name);
    }
    gguf_close(c);
    gguf_close(s);
}

static void expect_same_kv(const gguf_file *c, const gguf_file *s, const char *key)
{
    const gguf_kv *a = gguf_find_kv(c, key), *b = gguf_find_kv(s, key);
    if (!a || !b) fail_msg("key %s missing (converted %p, shipped %p)", key, (const void *)a, (const void *)b);
    assert_int_equal(a->type, b->type);
    if (a->type == GGUF_TYPE_ARRAY) {
        assert_int_equal(a->value.arr.type, b->value.arr.type);
        assert_int_equal(a->value.arr.count, b->value.arr.count);
        assert_int_equal(a->value.arr.size, b->value.arr.size);
        if (memcmp(a->value.arr.data, b->value.arr.data, a->value.arr.size) != 0) fail_msg("%s differs", key);
    } else if (a->type == GGUF_TYPE_STRING) {
        assert_int_equal(a->value.str.len, b->value.str.len);
        assert_memory_equal(a->value.str.data, b->value.str.data, a->value.str.len);
    } else {
        assert_memory_equal(&a->value, &b->value, sizeof a->value.u64);
    }
}

static void test_metadata_matches_shipped(void **state)
{
    (void)state;
    gguf_file *c, *s;
    open_both(&c, &s);
    static const char *const same[] = {
        "tokenizer.ggml.tokens",        "tokenizer.ggml.scores",         "tokenizer.ggml.token_type",
        "tokenizer.ggml.model",         "general.architecture",          "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.bos_token_id",  "tokenizer.ggml.eos_token_id",   "llama.embedding_length",
        "llama.feed_forward_length",    "llama.attention.head_count",    "llama.attention.head_count_kv",
        "llama.block_count",            "llama.rope.dimension_count",    "llama.attention.layer_norm_rms_epsilon",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) expect_same_kv(c, s, same[i]);
    assert_int_equal(gguf_u32_or(c, "llama.context_length", 0), 512);
    assert_true(gguf_f32_or(c, "llama.rope.freq_base", 0) == 10000.0f);
    gguf_str name;
    assert_int_equal(gguf_get_str(c, "general.name", &name), VKLLM_OK);
    assert_true(gguf_str_eq(name, "stories260K"));
    gguf_close(c);
    gguf_close(s);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    if (!g_out[0]) skip();
    char bad[512];
    snprintf(bad, sizeof bad, "%s/test_convert_bad_%ld.bin", th_binary_dir(), (long)getpid());
    /* A checkpoint cut short by one float. */
    FILE *in = fopen(th_shared_path("models/stories260K.bin"), "rb"), *out = fopen(bad, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char chunk[4096];
    size_t n, total = 0;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) {
        fwrite(chunk, 1, n, out);
        total += n;
    }
    fclose(in);
    fclose(out);
    assert_int_equal(truncate(bad, (off_t)total - 4), 0);
    llama2c_model *m;
    assert_int_equal(llama2c_model_open(bad, &m), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "file is 1056536 bytes, but the header"));
    assert_non_null(strstr(vkllm_last_error(), "implies 1056540"));
    /* A header with a zero dimension. */
    assert_int_equal(truncate(bad, 28), 0);
    out = fopen(bad, "r+b");
    int32_t zero = 0;
    fseek(out, 8, SEEK_SET);
    fwrite(&zero, 4, 1, out);
    fclose(out);
    assert_int_equal(llama2c_model_open(bad, &m), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "n_layers = 0"));
    unlink(bad);

    /* The 32000-token Llama 2 tokenizer does not belong to a 512-token model. */
    assert_int_equal(
        llama2c_convert(th_shared_path("models/stories260K.bin"), th_shared_path("models/tokenizer.bin"), bad),
        VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "bytes left after 512 tokens"));
    llama2c_vocab *v;
    assert_int_equal(llama2c_vocab_load(th_shared_path("models/tok512.bin"), 600, &v), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "ends at token 512"));
    assert_int_equal(llama2c_convert("/nonexistent.bin", th_shared_path("models/tok512.bin"), bad), VKLLM_ERROR_IO);
    assert_int_equal(access(bad, F_OK), -1);
}

static void test_model_reader(void **state)
{
    (void)state;
    if (!g_out[0]) skip();
    llama2c_model *m;
    assert_int_equal(llama2c_model_open(th_shared_path("models/stories260K.bin"), &m), VKLLM_OK);
    assert_int_equal(m->config.dim, 64);
    assert_int_equal(m->config.hidden_dim, 172);
    assert_int_equal(m->config.n_layers, 5);
    assert_int_equal(m->config.n_heads, 8);
    assert_int_equal(m->config.n_kv_heads, 4);
    assert_int_equal(m->config.vocab_size, 512);
    assert_int_equal(m->config.seq_len, 512);
    assert_true(m->config.shared_classifier);
    assert_ptr_equal(m->wcls, m->token_embedding);
    llama2c_model_close(m);
    llama2c_vocab *v;
    assert_int_equal(llama2c_vocab_load(th_shared_path("models/tok512.bin"), 512, &v), VKLLM_OK);
    assert_int_equal(v->max_token_length, 7);
    assert_string_equal(v->text[1], "\n<s>\n");
    assert_string_equal(v->text[259], " t");
    assert_true(v->score[260] == -1.0f);
    llama2c_vocab_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensors_equal_shipped),
        cmocka_unit_test(test_metadata_matches_shipped),
        cmocka_unit_test(test_model_reader),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, convert_once, remove_output);
}
