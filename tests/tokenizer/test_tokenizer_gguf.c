/* Tokenizers loaded from GGUF metadata: stories260K.gguf against llama.cpp's ids (the fixture) and against
 * the same vocabulary read from tok512.bin; llama.cpp's Llama 2 vocab-only GGUF and its 46 cases when the
 * peer models are present; and clear errors for metadata that is missing, mistyped or unsupported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "harness.h"
#include "paths.h"
#include "tokenizer/tokenizer.h"
#include "tools/llama2c.h"
#include "tokenizer_cases.h"
#include "tokenizer/vocab.h"


static tokenizer *load_gguf(const char *path)
{
    gguf_file *file = NULL;
    assert_int_equal(gguf_open(path, &file), VKLLM_OK);
    tokenizer *t = NULL;
    const vkllm_status status = tokenizer_create_from_gguf(file, &t);
    if (status != VKLLM_OK) printf("%s: %s\n", path, vkllm_last_error());
    assert_int_equal(status, VKLLM_OK);
    gguf_close(file);
    return t;
}

static void test_stories260K(void **state)
{
    (void)state;
    tokenizer *t = load_gguf(th_shared_path("models/stories260K.gguf"));
    assert_int_equal(tokenizer_n_vocab(t), 512);
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_int_equal(t->pad, TOKEN_NONE); /* the file says 4294967295: ignored, as llama.cpp does */

    size_t size = 0;
    char *data = read_whole_file(th_data_path("tokenizer/stories260K.txt"), &size);
    assert_non_null(data);
    vocab_cases cases;
    assert_true(load_fixture(data, size, &cases));
    assert_int_equal(run_vocab_cases(t, &cases, true, "stories260K (gguf)"), 0);
    vocab_cases_free(&cases);
    free(data);

    /* The llama2.c file holds the same vocabulary. */
    tokenizer *bin = NULL;
    assert_int_equal(tokenizer_create_from_llama2c(th_shared_path("models/tok512.bin"), &bin), VKLLM_OK);
    for (int32_t id = 0; id < 512; id++) {
        assert_int_equal(t->tokens[id].len, bin->tokens[id].len);
        assert_memory_equal(vocab_token_text(t, id), vocab_token_text(bin, id), t->tokens[id].len);
        assert_true(t->tokens[id].score == bin->tokens[id].score);
        assert_int_equal(t->tokens[id].attr, bin->tokens[id].attr);
    }
    tokenizer_free(bin);
    tokenizer_free(t);
}

static void test_llama_spm_gguf(void **state)
{
    (void)state;
    char path[1024];
    const char *dir = getenv("VKLLM_PEER_MODELS");
    const char *home = getenv("HOME");
    if (dir && *dir) snprintf(path, sizeof path, "%s/ggml-vocab-llama-spm.gguf", dir);
    else snprintf(path, sizeof path, "%s/.cache/llama-peer/llama.cpp/models/ggml-vocab-llama-spm.gguf", home ? home : "");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("skipped: %s not found (set VKLLM_PEER_MODELS to llama.cpp's models/ folder)\n", path);
        skip();
    }
    fclose(f);
    tokenizer *t = load_gguf(path);
    vocab_cases cases;
    assert_true(vocab_cases_load(th_shared_path("models/vocab/ggml-vocab-llama-spm.gguf.inp"),
                                 th_shared_path("models/vocab/ggml-vocab-llama-spm.gguf.out"), &cases));
    assert_int_equal(run_vocab_cases(t, &cases, true, "llama-spm (gguf)"), 0);
    vocab_cases_free(&cases);
    tokenizer_free(t);
}

/* ---- metadata errors, on small files written here ---- */

typedef struct tiny_vocab {
    const char *model;  /* NULL: no tokenizer.ggml.model */
    const char *pre;    /* NULL: none */
    bool merges;
    bool int_scores;    /* scores as an int32 array (accepted) */
    bool string_scores; /* scores as strings (rejected) */
} tiny_vocab;

static vkllm_status load_tiny(const tiny_vocab *spec, tokenizer **out)
{
    static const char *const texts[] = {"a", "b", "ab", "<|endoftext|>"};
    const uint64_t lens[] = {1, 1, 2, 13};
    static const char *const merges[] = {"a b"};
    const uint64_t merge_lens[] = {3};
    const float scores[] = {0, 0, 1, 0};
    const int32_t int_scores[] = {0, 0, 1, 0};
    const int32_t types[] = {1, 1, 1, 3};
    gguf_writer *w = NULL;
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    if (spec->model) assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", spec->model), VKLLM_OK);
    if (spec->pre) assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", spec->pre), VKLLM_OK);
    assert_int_equal(gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", texts, lens, 4), VKLLM_OK);
    if (spec->string_scores)
        assert_int_equal(gguf_writer_set_str_array(w, "tokenizer.ggml.scores", texts, lens, 4), VKLLM_OK);
    else if (spec->int_scores)
        assert_int_equal(gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_INT32, int_scores, 4), VKLLM_OK);
    else
        assert_int_equal(gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 4), VKLLM_OK);
    assert_int_equal(gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 4), VKLLM_OK);
    if (spec->merges)
        assert_int_equal(gguf_writer_set_str_array(w, "tokenizer.ggml.merges", merges, merge_lens, 1), VKLLM_OK);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 3), VKLLM_OK);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 99), VKLLM_OK); /* out of range */
    assert_int_equal(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true), VKLLM_OK);
    char path[] = "/tmp/vkllm-tok-gguf-XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(gguf_writer_write(w, path), VKLLM_OK);
    gguf_writer_free(w);
    gguf_file *file = NULL;
    assert_int_equal(gguf_open(path, &file), VKLLM_OK);
    *out = NULL;
    const vkllm_status status = tokenizer_create_from_gguf(file, out);
    printf("%s / %s: %s %s\n", spec->model ? spec->model : "(no model)", spec->pre ? spec->pre : "(no pre)",
           vkllm_status_name(status), status == VKLLM_OK ? "" : vkllm_last_error());
    gguf_close(file);
    remove(path);
    return status;
}

static void test_metadata(void **state)
{
    (void)state;
    tokenizer *t = NULL;
    assert_int_equal(load_tiny(&(tiny_vocab){.model = "gpt2", .pre = "qwen2", .merges = true}, &t), VKLLM_OK);
    assert_int_equal(t->pre, VOCAB_PRE_QWEN2);
    assert_false(t->clean_spaces);
    assert_true(t->add_bos);
    assert_int_equal(tokenizer_bos(t), 3);
    assert_int_equal(tokenizer_eos(t), TOKEN_NONE); /* the default 11 is out of range, and so is 99 */
    assert_true(tokenizer_is_eog(t, 3));            /* <|endoftext|> by its text */
    int32_t ids[8];
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, "ab", 2, true, false, ids, 8, &n), VKLLM_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 2);
    tokenizer_free(t);

    assert_int_equal(load_tiny(&(tiny_vocab){.model = "llama", .int_scores = true}, &t), VKLLM_OK);
    assert_int_equal(t->kind, VOCAB_SPM);
    assert_true(t->tokens[2].score == 1.0f);
    tokenizer_free(t);

    assert_int_equal(load_tiny(&(tiny_vocab){.model = NULL}, &t), VKLLM_ERROR_BAD_FORMAT);
    assert_null(t);
    assert_int_equal(load_tiny(&(tiny_vocab){.model = "bert"}, &t), VKLLM_ERROR_UNSUPPORTED);
    assert_int_equal(load_tiny(&(tiny_vocab){.model = "gpt2", .pre = "qwen2"}, &t), VKLLM_ERROR_BAD_FORMAT);
    assert_int_equal(load_tiny(&(tiny_vocab){.model = "gpt2", .pre = "no-such-pre", .merges = true}, &t),
                     VKLLM_ERROR_UNSUPPORTED);
    assert_int_equal(load_tiny(&(tiny_vocab){.model = "llama", .string_scores = true}, &t), VKLLM_ERROR_BAD_FORMAT);
    assert_null(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260K),
        cmocka_unit_test(test_llama_spm_gguf),
        cmocka_unit_test(test_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
