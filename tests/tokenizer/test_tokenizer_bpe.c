/* Byte-level BPE tokenizer: the pre-tokenizer splits and merging on small hand-made cases, then
 * llama.cpp's test cases for its vocab-only GGUFs (llama-bpe, qwen2, gpt-2, mpt).  Those files are not
 * committed: they are read from $VKLLM_PEER_MODELS or ~/.cache/llama-peer/llama.cpp/models, and the tests
 * that need them are skipped (and say so) when they are absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_cases.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

/* ---- pre-tokenizer ---- */

/* Splits UTF-8 text with the pre-tokenizer and compares the words with the expected NULL-ended list. */
static void check_split(vocab_pre pre, const char *text, const char *const *expected)
{
    const size_t len = strlen(text);
    uint32_t cpts[256];
    size_t n = 0;
    for (size_t offset = 0; offset < len;) cpts[n++] = utf8_decode(text, len, &offset);
    word_lengths words;
    assert_int_equal(pretokenize(pre, cpts, n, &words), VKLLM_OK);
    size_t start = 0, i = 0;
    bool same = true;
    for (; i < words.n; i++) {
        char word[256];
        size_t word_len = 0;
        for (size_t j = start; j < start + words.len[i]; j++) word_len += utf8_encode(cpts[j], word + word_len);
        start += words.len[i];
        if (!expected[i] || strlen(expected[i]) != word_len || memcmp(expected[i], word, word_len) != 0) {
            printf("pre %d, '%s': word %zu is '%.*s', expected '%s'\n", (int)pre, text, i, (int)word_len, word,
                   expected[i] ? expected[i] : "(end)");
            same = false;
            break;
        }
    }
    if (same && expected[i]) {
        printf("pre %d, '%s': %zu words, expected more ('%s')\n", (int)pre, text, words.n, expected[i]);
        same = false;
    }
    word_lengths_free(&words);
    assert_true(same);
}

static void test_pretokenize_llama3(void **state)
{
    (void)state;
    check_split(VOCAB_PRE_LLAMA3, "Hello, world! 12345 don't\n\n  x",
                (const char *const[]){"Hello", ",", " world", "!", " ", "123", "45", " don", "'t", "\n\n", " ", " x",
                                      NULL});
    check_split(VOCAB_PRE_LLAMA3, "I'VE (x) ...\r\n",
                (const char *const[]){"I", "'VE", " (", "x", ")", " ...\r\n", NULL});
    check_split(VOCAB_PRE_QWEN2, "a 123", (const char *const[]){"a", " ", "1", "2", "3", NULL});
}

static void test_pretokenize_gpt2(void **state)
{
    (void)state;
    check_split(VOCAB_PRE_GPT2, "Hello  world's 42!!",
                (const char *const[]){"Hello", " ", " world", "'s", " 42", "!!", NULL});
    /* Case-sensitive contractions: 'VE is not one. */
    check_split(VOCAB_PRE_GPT2, "I'VE", (const char *const[]){"I", "'", "VE", NULL});
    check_split(VOCAB_PRE_GPT2, "\xd0\x9f\xd1\x80\xd0\xb8 3", /* "При 3": Cyrillic letters are \p{L} */
                (const char *const[]){"\xd0\x9f\xd1\x80\xd0\xb8", " 3", NULL});
}

static void test_pretokenize_default(void **state)
{
    (void)state;
    /* Punctuation runs first, then gpt2, then number runs, then ASCII digit triples. */
    check_split(VOCAB_PRE_DEFAULT, "a+b 12345",
                (const char *const[]){"a", "+", "b", " ", "123", "45", NULL});
}

/* ---- merging on a hand-made vocabulary ---- */

static tokenizer *tiny_bpe(void)
{
    /* GPT-2 encoded: "Ġ" (U+0120) is the space byte. */
    static const char *const texts[] = {"a", "b", "c", "\xc4\xa0", "ab", "abc", "\xc4\xa0\x61", "<|end|>"};
    static const char *const merges[] = {"a b", "ab c", "\xc4\xa0 a"};
    tokenizer *t = NULL;
    assert_int_equal(vocab_create(VOCAB_BPE, 8, &t), VKLLM_OK);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(vocab_set_token(t, i, texts[i], strlen(texts[i]), 0.0f,
                                         i == 7 ? TOKEN_ATTR_CONTROL : TOKEN_ATTR_NORMAL),
                         VKLLM_OK);
    for (size_t i = 0; i < 3; i++) assert_int_equal(vocab_add_merge(t, merges[i], strlen(merges[i])), VKLLM_OK);
    t->pre = VOCAB_PRE_GPT2;
    t->bos = t->eos = 7;
    assert_int_equal(vocab_finish(t), VKLLM_OK);
    return t;
}

static void test_merges(void **state)
{
    (void)state;
    tokenizer *t = tiny_bpe();
    int32_t ids[16];
    size_t n = 0;
    /* "abc" merges fully; in " ab", a+b (rank 0) beats Ġ+a (rank 2), leaving Ġ and ab. "z" is no token. */
    const char *text = "abc abz";
    assert_int_equal(tokenizer_encode(t, text, strlen(text), false, false, ids, 16, &n), VKLLM_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 4);

    char out[32];
    size_t len = 0;
    assert_int_equal(tokenizer_decode(t, ids, n, false, false, out, sizeof out, &len), VKLLM_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(out, "abc ab", 6);

    /* Special tokens: "<|end|>" is detected as end of generation and parsed only when asked. */
    assert_true(tokenizer_is_eog(t, 7));
    text = "a<|end|>";
    assert_int_equal(tokenizer_encode(t, text, strlen(text), false, true, ids, 16, &n), VKLLM_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], 7);
    tokenizer_free(t);
}

/* A word of code points above U+FFFF (4 UTF-8 bytes, 8 once GPT-2 encoded): the merge buffer was sized for 6 bytes
 * per code point and overflowed (found by the tokenizer fuzz target; AddressSanitizer sees it in the sanitizer
 * build).  The tiny vocabulary has no tokens for those bytes, so only the call itself is checked. */
static void test_four_byte_code_points(void **state)
{
    (void)state;
    tokenizer *t = tiny_bpe();
    const char *text = "\xf0\x9f\x99\x82\xf0\x9f\x99\x82\xf0\x9f\x99\x82"; /* three U+1F642, one word */
    int32_t ids[64];
    size_t n = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), false, false, ids, 64, &n), VKLLM_OK);
    tokenizer_free(t);
}

static void test_gpt2_byte_map(void **state)
{
    (void)state;
    /* A bijection between the 256 bytes and 256 code points below U+0144. */
    bool seen[0x144] = {false};
    for (int b = 0; b < 256; b++) {
        const uint32_t cpt = gpt2_byte_to_cpt((uint8_t)b);
        assert_true(cpt < 0x144);
        assert_false(seen[cpt]);
        seen[cpt] = true;
        assert_int_equal(gpt2_cpt_to_byte(cpt), b);
    }
    assert_int_equal(gpt2_byte_to_cpt(' '), 0x120);
    assert_int_equal(gpt2_byte_to_cpt('\n'), 0x10A);
    assert_int_equal(gpt2_cpt_to_byte(0x144), -1);
}

/* ---- llama.cpp's vocabularies ---- */

static bool peer_path(char *buf, size_t size, const char *file)
{
    const char *dir = getenv("VKLLM_PEER_MODELS");
    const char *home = getenv("HOME");
    if (dir && *dir) snprintf(buf, size, "%s/%s", dir, file);
    else if (home) snprintf(buf, size, "%s/.cache/llama-peer/llama.cpp/models/%s", home, file);
    else return false;
    FILE *f = fopen(buf, "rb");
    if (!f) return false;
    fclose(f);
    return true;
}

/* Loads ggml-vocab-NAME.gguf, or skips the test when it is absent. */
static tokenizer *load_peer_vocab(const char *name, char *gguf_path, size_t size)
{
    char file[128];
    snprintf(file, sizeof file, "ggml-vocab-%s.gguf", name);
    if (!peer_path(gguf_path, size, file)) {
        printf("skipped: %s not found (set VKLLM_PEER_MODELS to llama.cpp's models/ folder)\n", file);
        skip();
    }
    gguf_file *gguf = NULL;
    assert_int_equal(gguf_open(gguf_path, &gguf), VKLLM_OK);
    tokenizer *t = NULL;
    const vkllm_status status = tokenizer_create_from_gguf(gguf, &t);
    if (status != VKLLM_OK) printf("%s: %s\n", name, vkllm_last_error());
    assert_int_equal(status, VKLLM_OK);
    gguf_close(gguf); /* the tokenizer keeps its own copy */
    return t;
}

/* All cases must give llama.cpp's ids, and their ids must decode back to the input.  The decode check
 * turns clean_spaces off: with it, " ?" comes back as "?" by design (test_clean_spaces). */
static void run_peer_vocab(const char *name)
{
    char gguf_path[1024], inp[1100], out[1100];
    tokenizer *t = load_peer_vocab(name, gguf_path, sizeof gguf_path);
    snprintf(inp, sizeof inp, "%s.inp", gguf_path);
    snprintf(out, sizeof out, "%s.out", gguf_path);
    t->clean_spaces = false;
    vocab_cases cases;
    assert_true(vocab_cases_load(inp, out, &cases));
    const size_t failed = run_vocab_cases(t, &cases, true, name);
    vocab_cases_free(&cases);
    tokenizer_free(t);
    assert_int_equal(failed, 0);
}

static void test_llama_bpe(void **state)
{
    (void)state;
    run_peer_vocab("llama-bpe");
}

/* llama3 decodes with llama.cpp's clean_up_tokenization_spaces: " ?" -> "?", " 's" -> "'s". */
static void test_clean_spaces(void **state)
{
    (void)state;
    char path[1024];
    tokenizer *t = load_peer_vocab("llama-bpe", path, sizeof path);
    const char *text = "you ? it 's";
    int32_t ids[16];
    size_t n = 0, len = 0;
    assert_int_equal(tokenizer_encode(t, text, strlen(text), true, false, ids, 16, &n), VKLLM_OK);
    assert_int_equal(ids[0], 128000); /* llama-bpe adds <|begin_of_text|> */
    char out[32];
    assert_int_equal(tokenizer_decode(t, ids, n, true, false, out, sizeof out, &len), VKLLM_OK);
    assert_int_equal(len, 9);
    assert_memory_equal(out, "you? it's", 9);
    tokenizer_free(t);
}

static void test_qwen2(void **state)
{
    (void)state;
    run_peer_vocab("qwen2");
}

/* Random bytes, invalid UTF-8 included, through every pre-tokenizer: ids in range, decodable. */
static void encode_random_bytes(tokenizer *t)
{
    static const vocab_pre pres[] = {VOCAB_PRE_DEFAULT, VOCAB_PRE_GPT2, VOCAB_PRE_LLAMA3, VOCAB_PRE_QWEN2};
    uint32_t seed = 7;
    char text[300], back[4096];
    int32_t ids[1024];
    for (int round = 0; round < 400; round++) {
        t->pre = pres[round % 4];
        const size_t len = (size_t)round % sizeof text;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1664525u + 1013904223u;
            const uint32_t r = seed >> 24;
            text[i] = (char)(r < 100 ? 'a' + r % 26 : r < 130 ? ' ' : r < 150 ? '0' + r % 10 : r < 160 ? '\n' : r);
        }
        size_t n = 0, n_back = 0;
        assert_int_equal(tokenizer_encode(t, text, len, false, true, ids, 1024, &n), VKLLM_OK);
        for (size_t i = 0; i < n; i++) assert_true(ids[i] >= 0 && (uint32_t)ids[i] < tokenizer_n_vocab(t));
        assert_int_equal(tokenizer_decode(t, ids, n, false, true, back, sizeof back, &n_back), VKLLM_OK);
    }
}

/* On the hand-made vocabulary always, and on qwen2's when present. */
static void test_random_bytes(void **state)
{
    (void)state;
    tokenizer *t = tiny_bpe();
    encode_random_bytes(t);
    tokenizer_free(t);
    char path[1024];
    if (!peer_path(path, sizeof path, "ggml-vocab-qwen2.gguf")) {
        printf("qwen2 vocabulary absent: random bytes checked on the hand-made vocabulary only\n");
        return;
    }
    t = load_peer_vocab("qwen2", path, sizeof path);
    encode_random_bytes(t);
    tokenizer_free(t);
}

static void test_gpt2(void **state)
{
    (void)state;
    run_peer_vocab("gpt-2");
}

static void test_mpt(void **state)
{
    (void)state;
    run_peer_vocab("mpt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pretokenize_llama3), cmocka_unit_test(test_pretokenize_gpt2),
        cmocka_unit_test(test_pretokenize_default), cmocka_unit_test(test_merges),
        cmocka_unit_test(test_four_byte_code_points), cmocka_unit_test(test_gpt2_byte_map),
        cmocka_unit_test(test_llama_bpe),
        cmocka_unit_test(test_clean_spaces),
        cmocka_unit_test(test_qwen2),              cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_mpt),                cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
