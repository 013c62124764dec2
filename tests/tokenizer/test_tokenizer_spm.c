/* SentencePiece tokenizer against llama.cpp: its 46 test cases for the Llama 2 vocabulary (loaded from
 * llama2.c's tokenizer.bin), and stories260K's vocabulary (tok512.bin) against ids llama.cpp produced
 * (tests/data/tokenizer/stories260K.txt).  Plus decoding, special tokens, buffer sizes and bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "paths.h"
#include "tokenizer/tokenizer.h"
#include "tools/llama2c.h"
#include "tokenizer_cases.h"
#include "tokenizer/vocab.h"


static tokenizer *load(const char *path)
{
    tokenizer *t = NULL;
    const vkllm_status status = tokenizer_create_from_llama2c(path, &t);
    if (status != VKLLM_OK) printf("loading %s: %s\n", path, vkllm_last_error());
    assert_int_equal(status, VKLLM_OK);
    return t;
}

static void test_llama_spm_cases(void **state)
{
    (void)state;
    tokenizer *t = load(th_shared_path("models/tokenizer.bin"));
    assert_int_equal(tokenizer_n_vocab(t), 32000);
    vocab_cases cases;
    assert_true(vocab_cases_load(th_shared_path("models/vocab/ggml-vocab-llama-spm.gguf.inp"),
                                 th_shared_path("models/vocab/ggml-vocab-llama-spm.gguf.out"), &cases));
    assert_int_equal(cases.n, 46); /* 46 inputs and 46 id lines (the .out ends with a newline) */
    assert_int_equal(run_vocab_cases(t, &cases, true, "llama-spm"), 0);
    vocab_cases_free(&cases);
    tokenizer_free(t);
}

static void test_stories260K_fixture(void **state)
{
    (void)state;
    tokenizer *t = load(th_shared_path("models/tok512.bin"));
    assert_int_equal(tokenizer_n_vocab(t), 512);
    size_t size = 0;
    char *data = read_whole_file(th_data_path("tokenizer/stories260K.txt"), &size);
    assert_non_null(data);
    vocab_cases cases;
    assert_true(load_fixture(data, size, &cases));
    assert_true(cases.n >= 20);
    assert_int_equal(run_vocab_cases(t, &cases, true, "stories260K (tok512.bin)"), 0);
    vocab_cases_free(&cases); /* cases.inp is NULL: the texts live in data */
    free(data);
    tokenizer_free(t);
}

static size_t encode(const tokenizer *t, const char *text, bool add_special, bool parse_special, int32_t *ids,
                     size_t cap)
{
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), add_special, parse_special, ids, cap, &n), VKLLM_OK);
    return n;
}

static void test_special_tokens(void **state)
{
    (void)state;
    tokenizer *t = load(th_shared_path("models/tokenizer.bin"));
    int32_t ids[64];
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_is_eog(t, 2));
    assert_false(tokenizer_is_eog(t, 1));
    assert_false(tokenizer_is_eog(t, 15043));

    /* add_special puts BOS in front (Llama adds BOS, not EOS). */
    size_t n = encode(t, "Hello", true, false, ids, 64);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043); /* "▁Hello" */

    /* Control tokens in text: ids with parse_special, plain text without. */
    n = encode(t, "<s>Hello</s>", false, true, ids, 64);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 15043); /* the space prefix follows a special token */
    assert_int_equal(ids[2], 2);
    n = encode(t, "<s>", false, false, ids, 64);
    assert_true(n > 1);
    for (size_t i = 0; i < n; i++) assert_int_not_equal(ids[i], 1);

    /* Decoding: control tokens show only when asked; the space after BOS stays, as in llama.cpp. */
    const int32_t seq[] = {1, 15043, 3186, 2};
    char text[64];
    size_t len;
    assert_int_equal(tokenizer_decode(t, seq, 4, false, false, text, sizeof text, &len), VKLLM_OK);
    assert_int_equal(len, 12);
    assert_memory_equal(text, " Hello world", 12);
    assert_int_equal(tokenizer_decode(t, seq, 4, false, true, text, sizeof text, &len), VKLLM_OK);
    assert_int_equal(len, 19);
    assert_memory_equal(text, "<s> Hello world</s>", 19);
    assert_int_equal(tokenizer_decode(t, seq + 1, 2, false, false, text, sizeof text, &len), VKLLM_OK);
    assert_int_equal(len, 11);
    assert_memory_equal(text, "Hello world", 11);

    /* Pieces. */
    assert_int_equal(tokenizer_token_piece(t, 15043, false, text, sizeof text, &len), VKLLM_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(text, " Hello", 6);
    assert_int_equal(tokenizer_token_piece(t, 13, false, text, sizeof text, &len), VKLLM_OK); /* <0x0A> */
    assert_int_equal(len, 1);
    assert_int_equal(text[0], '\n');
    assert_int_equal(tokenizer_token_piece(t, 1, false, text, sizeof text, &len), VKLLM_OK);
    assert_int_equal(len, 0);
    assert_int_equal(tokenizer_token_piece(t, 0, true, text, sizeof text, &len), VKLLM_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(text, "<unk>", 5);
    tokenizer_free(t);
}

static void test_byte_fallback(void **state)
{
    (void)state;
    tokenizer *t = load(th_shared_path("models/tokenizer.bin"));
    /* Invalid UTF-8 and a character outside the vocabulary go out as <0xNN> tokens and come back exactly. */
    const char input[] = "a\xff\xfe\xf0\x9f\xa6\x99z";
    int32_t ids[32];
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, input, sizeof input - 1, false, false, ids, 32, &n), VKLLM_OK);
    bool saw_ff = false;
    for (size_t i = 0; i < n; i++) saw_ff |= ids[i] == 3 + 0xFF;
    assert_true(saw_ff);
    char text[64];
    size_t len;
    assert_int_equal(tokenizer_decode(t, ids, n, false, false, text, sizeof text, &len), VKLLM_OK);
    assert_int_equal(len, sizeof input - 1);
    assert_memory_equal(text, input, len);
    tokenizer_free(t);
}

/* Random text with stray continuation bytes encodes, and SentencePiece's byte fallback brings it back.
 * (A stray lead byte is not exact in llama.cpp either: it swallows the next byte, and when that begins a
 * U+2581 the space comes back as U+2581.) */
static void test_random_bytes_round_trip(void **state)
{
    (void)state;
    tokenizer *t = load(th_shared_path("models/tok512.bin"));
    uint32_t seed = 42;
    char text[200], back[400];
    int32_t ids[512];
    for (int round = 0; round < 500; round++) {
        const size_t len = (size_t)round % sizeof text;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1664525u + 1013904223u;
            const uint32_t r = seed >> 24;
            text[i] = (char)(r < 150 ? 'a' + r % 26 : r < 200 ? ' ' : 0x80 + r % 64);
        }
        size_t n = 0, n_back = 0;
        assert_int_equal(tokenizer_encode(t, text, len, round % 2 == 0, false, ids, 512, &n), VKLLM_OK);
        assert_int_equal(tokenizer_decode(t, ids, n, true, false, back, sizeof back, &n_back), VKLLM_OK);
        /* With BOS removed by remove_special, llama.cpp keeps the encoder's prefix space. */
        const size_t skip_space = round % 2 == 0 && len > 0 ? 1 : 0;
        assert_int_equal(n_back, len + skip_space);
        if (skip_space) assert_int_equal(back[0], ' ');
        assert_memory_equal(back + skip_space, text, len);
    }
    tokenizer_free(t);
}

static void test_buffer_sizes(void **state)
{
    (void)state;
    tokenizer *t = load(th_shared_path("models/tokenizer.bin"));
    const char *text = "Hello world, this is a test";
    size_t needed = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), true, false, NULL, 0, &needed),
                     VKLLM_ERROR_BUFFER_TOO_SMALL);
    assert_true(needed > 2);
    int32_t ids[64];
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), true, false, ids, needed - 1, &n),
                     VKLLM_ERROR_BUFFER_TOO_SMALL);
    assert_int_equal(n, needed);
    assert_int_equal(tokenizer_encode(t, text, strlen(text), true, false, ids, needed, &n), VKLLM_OK);
    assert_int_equal(n, needed);

    char out[64];
    size_t len = 0;
    assert_int_equal(tokenizer_decode(t, ids, n, true, false, out, 4, &len), VKLLM_ERROR_BUFFER_TOO_SMALL);
    assert_true(len > 4);
    const size_t want = len;
    assert_int_equal(tokenizer_decode(t, ids, n, true, false, out, want, &len), VKLLM_OK);
    assert_int_equal(len, want);
    assert_int_equal(tokenizer_token_piece(t, 15043, false, out, 2, &len), VKLLM_ERROR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 6);

    /* Empty text: nothing, or just BOS. */
    assert_int_equal(tokenizer_encode(t, "", 0, false, false, ids, 64, &n), VKLLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tokenizer_encode(t, "", 0, true, false, ids, 64, &n), VKLLM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    tokenizer_free(t);
}

static void test_bad_input(void **state)
{
    (void)state;
    tokenizer *t = NULL;
    assert_int_equal(tokenizer_create_from_llama2c(th_shared_path("models/no-such-tokenizer.bin"), &t), VKLLM_ERROR_IO);
    assert_null(t);

    /* A truncated file: the header, then a token that claims more bytes than remain. */
    char path[] = "/tmp/vkllm-tok-XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    const int32_t header = 8;
    const float score = 0.0f;
    const int32_t length = 100;
    fwrite(&header, 4, 1, f);
    fwrite(&score, 4, 1, f);
    fwrite(&length, 4, 1, f);
    fwrite("abc", 1, 3, f);
    fclose(f);
    assert_int_equal(tokenizer_create_from_llama2c(path, &t), VKLLM_ERROR_BAD_FORMAT);
    printf("truncated file: %s\n", vkllm_last_error());
    remove(path);

    t = load(th_shared_path("models/tok512.bin"));
    const int32_t bad[] = {1, 512};
    char text[16];
    size_t len;
    assert_int_equal(tokenizer_decode(t, bad, 2, false, false, text, sizeof text, &len), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(tokenizer_token_piece(t, -1, false, text, sizeof text, &len), VKLLM_ERROR_INVALID_ARGUMENT);
    tokenizer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_spm_cases),  cmocka_unit_test(test_stories260K_fixture),
        cmocka_unit_test(test_special_tokens),   cmocka_unit_test(test_byte_fallback),
        cmocka_unit_test(test_random_bytes_round_trip),
        cmocka_unit_test(test_buffer_sizes),     cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
