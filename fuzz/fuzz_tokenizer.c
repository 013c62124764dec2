/* Fuzz target `tokenizer`: the fuzz input is text for real vocabularies, loaded once: SentencePiece from
 * stories260K.gguf (512 pieces) and llama.cpp's ggml-vocab-llama-spm.gguf (32000), byte-level BPE from
 * ggml-vocab-llama-bpe.gguf, ggml-vocab-gpt-2.gguf and ggml-vocab-qwen2.gguf (each pre-tokenizer).  The first
 * byte picks the vocabulary and the flags; the rest is tokenized, every id is checked, its piece and the whole
 * sequence are decoded, and where llama.cpp's algorithms make it hold, decoding gives the text back.
 *
 * Files: $VKLLM_SHARED_DIR/models/stories260K.gguf (compiled-in default, or the environment variable) and the
 * peer's vocab files from $VKLLM_PEER_MODELS or ~/.cache/llama-peer/llama.cpp/models (as the tokenizer tests
 * find them).  Those missing are skipped with a message; at least one must load. */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

#ifndef VKLLM_SHARED_DIR
#define VKLLM_SHARED_DIR "../shared"
#endif

#define MAX_VOCABS 5
static tokenizer *vocabs[MAX_VOCABS];
static size_t n_vocabs;

static void load(const char *path)
{
    gguf_file *f = NULL;
    tokenizer *t = NULL;
    if (gguf_open(path, &f) == VKLLM_OK && tokenizer_create_from_gguf(f, &t) == VKLLM_OK)
        vocabs[n_vocabs++] = t;
    else
        fprintf(stderr, "fuzz_tokenizer: skipping %s: %s\n", path, vkllm_error_message());
    gguf_close(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[4096];
    const char *shared = getenv("VKLLM_SHARED_DIR");
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", shared && *shared ? shared : VKLLM_SHARED_DIR);
    load(path);
    static const char *const peer[] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf",
                                       "ggml-vocab-gpt-2.gguf", "ggml-vocab-qwen2.gguf"};
    const char *dir = getenv("VKLLM_PEER_MODELS"), *home = getenv("HOME");
    for (size_t i = 0; i < sizeof peer / sizeof peer[0]; i++) {
        if (dir && *dir)
            snprintf(path, sizeof path, "%s/%s", dir, peer[i]);
        else
            snprintf(path, sizeof path, "%s/.cache/llama-peer/llama.cpp/models/%s", home ? home : "", peer[i]);
        load(path);
    }
    if (n_vocabs == 0) {
        fprintf(stderr, "fuzz_tokenizer: no vocabulary could be loaded\n");
        exit(1);
    }
    return 0;
}

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), where round trips are defined:
 * the byte-level BPE pre-tokenizer reads invalid bytes as U+FFFD, as llama.cpp does. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        const uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || len > n - i) return false;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1fu : len == 3 ? c & 0x0fu : c & 0x07u;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

static bool contains(const uint8_t *s, size_t n, const char *needle)
{
    const size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, needle, m) == 0) return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const tokenizer *t = vocabs[data[0] % n_vocabs];
    const bool parse_special = data[0] & 0x10, add_special = data[0] & 0x20;
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;

    /* The size query, then the real call: both must agree. */
    size_t n = 0;
    vkllm_status st = tokenizer_encode(t, text, len, add_special, parse_special, NULL, 0, &n);
    if (st != VKLLM_OK && st != VKLLM_ERROR_INVALID_ARGUMENT) return 0; /* out of memory: not a finding */
    FUZZ_CHECK(st == VKLLM_OK ? n == 0 : n > 0);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return 0;
    size_t n2 = 0;
    FUZZ_CHECK(tokenizer_encode(t, text, len, add_special, parse_special, ids, n, &n2) == VKLLM_OK);
    FUZZ_CHECK(n2 == n);
    FUZZ_CHECK(len == 0 || n > 0); /* every byte becomes part of some token */

    const uint32_t n_vocab = tokenizer_n_vocab(t);
    char piece[512];
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(ids[i] >= 0 && (uint32_t)ids[i] < n_vocab);
        size_t piece_len = 0;
        FUZZ_CHECK(tokenizer_token_piece(t, ids[i], parse_special, piece, sizeof piece, &piece_len) == VKLLM_OK);
    }

    /* Decoding: the size query is an upper bound of what the real call writes. */
    for (int mode = 0; mode < 4; mode++) {
        const bool remove_special = mode & 1, unparse_special = mode & 2;
        size_t cap = 0;
        st = tokenizer_decode(t, ids, n, remove_special, unparse_special, NULL, 0, &cap);
        FUZZ_CHECK(st == VKLLM_OK || st == VKLLM_ERROR_INVALID_ARGUMENT);
        char *out = malloc(cap ? cap : 1);
        if (!out) break;
        size_t got = 0;
        FUZZ_CHECK(tokenizer_decode(t, ids, n, remove_special, unparse_special, out, cap, &got) == VKLLM_OK);
        FUZZ_CHECK(got <= cap);
        /* Round trip: text tokenized as text (no special-token parsing, no BOS/EOS) decodes to itself when it is
         * valid UTF-8, for SentencePiece unless the text holds U+2581 (the piece form of a space), and for BPE
         * unless the vocabulary cleans up spaces (" ." -> "."). */
        const bool spm = t->kind == VOCAB_SPM;
        if (mode == 0 && !parse_special && !add_special && valid_utf8(data + 1, len) &&
            !(spm && contains(data + 1, len, "\xe2\x96\x81")) && !(!spm && t->clean_spaces)) {
            if (got != len || memcmp(out, text, len) != 0) {
                fprintf(stderr, "round trip: %zu bytes in, %zu out: '%.*s'\n", len, got, (int)got, out);
                FUZZ_CHECK(!"decode(encode(text)) == text");
            }
        }
        free(out);
    }
    free(ids);
    return 0;
}
