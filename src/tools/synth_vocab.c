/* Generated tokenizers for synthetic models: valid vocabularies that vkllm and llama.cpp load and tokenize
 * with, deterministic, of any size.
 *
 * SPM ("llama"): <unk> <s> </s>, the byte pieces <0x00>..<0xFF>, then "▁", the letters, and words over
 * a..z by length, each bare then with the "▁" prefix, scored in decreasing order.
 * BPE ("gpt2"): GPT-2's 256 byte-to-unicode tokens, then one token per merge ("Ġ a" -> "Ġa", "a b" -> "ab",
 * "Ġa b" -> "Ġab", "ab c" -> "abc", ...: every merge joins two existing tokens into a new one), then the
 * special tokens of the model family at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "synth.h"

enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_BYTE = 6 };

typedef struct vocab_lists {
    char **tokens;  /* n_vocab NUL-terminated strings */
    float *scores;
    int32_t *types;
    char **merges;  /* up to n_vocab */
    uint64_t n_tokens, n_merges;
} vocab_lists;

static vkllm_status push(char **list, uint64_t *count, char *s)
{
    if (!s) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "synth: no memory for the vocabulary");
    list[(*count)++] = s;
    return VKLLM_OK;
}

static vkllm_status add_token(vocab_lists *v, char *text, float score, int32_t type)
{
    v->scores[v->n_tokens] = score;
    v->types[v->n_tokens] = type;
    return push(v->tokens, &v->n_tokens, text);
}

static char *concat(const char *a, const char *b, const char *c)
{
    size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    char *s = malloc(na + nb + nc + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb);
    memcpy(s + na + nb, c, nc + 1);
    return s;
}

/* The index-th word of `len` letters in alphabetical order (len < 8). */
static void word_at(uint64_t index, uint32_t len, char *out)
{
    for (uint32_t i = len; i-- > 0; index /= 26) out[i] = (char)('a' + index % 26);
    out[len] = '\0';
}

static uint64_t words_of_length(uint32_t len)
{
    uint64_t n = 1;
    while (len--) n *= 26;
    return n;
}

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word boundary */

static vkllm_status spm_tokens(vocab_lists *v, uint64_t n_vocab)
{
    VKLLM_TRY(add_token(v, concat("<unk>", "", ""), 0.0f, TOKEN_UNKNOWN));
    VKLLM_TRY(add_token(v, concat("<s>", "", ""), 0.0f, TOKEN_CONTROL));
    VKLLM_TRY(add_token(v, concat("</s>", "", ""), 0.0f, TOKEN_CONTROL));
    for (int b = 0; b < 256; b++) {
        char piece[8];
        snprintf(piece, sizeof piece, "<0x%02X>", b);
        VKLLM_TRY(add_token(v, concat(piece, "", ""), 0.0f, TOKEN_BYTE));
    }
    float score = 0.0f;
    VKLLM_TRY(add_token(v, concat(SPM_SPACE, "", ""), score--, TOKEN_NORMAL));
    for (uint32_t len = 1; v->n_tokens < n_vocab; len++) {
        for (int spaced = 0; spaced < 2; spaced++) {
            for (uint64_t i = 0; i < words_of_length(len) && v->n_tokens < n_vocab; i++) {
                char word[8];
                word_at(i, len, word);
                VKLLM_TRY(add_token(v, concat(spaced ? SPM_SPACE : "", word, ""), score--, TOKEN_NORMAL));
            }
        }
    }
    return VKLLM_OK;
}

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for U+0100 onwards, in the
 * order GPT-2's vocabulary lists them. */
static void gpt2_byte_tokens(char tokens[256][3])
{
    int n = 0, extra = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < 256; b++) {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            if (printable != (pass == 0)) continue;
            unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra++;
            if (cp < 0x80) {
                tokens[n][0] = (char)cp;
                tokens[n][1] = '\0';
            } else {
                tokens[n][0] = (char)(0xC0 | (cp >> 6));
                tokens[n][1] = (char)(0x80 | (cp & 0x3F));
                tokens[n][2] = '\0';
            }
            n++;
        }
    }
}

#define GPT2_SPACE "\xc4\xa0" /* U+0120, the byte-level form of ' ' */

/* One merge "left right" and the token "leftright" it makes. */
static vkllm_status add_merge(vocab_lists *v, const char *left, const char *right)
{
    VKLLM_TRY(push(v->merges, &v->n_merges, concat(left, " ", right)));
    return add_token(v, concat(left, right, ""), 0.0f, TOKEN_NORMAL);
}

static vkllm_status bpe_tokens(vocab_lists *v, uint64_t n_regular)
{
    char bytes[256][3];
    gpt2_byte_tokens(bytes);
    for (int b = 0; b < 256; b++) VKLLM_TRY(add_token(v, concat(bytes[b], "", ""), 0.0f, TOKEN_NORMAL));
    for (uint64_t i = 0; i < 26 && v->n_tokens < n_regular; i++) {
        char letter[2] = {(char)('a' + i), '\0'};
        VKLLM_TRY(add_merge(v, GPT2_SPACE, letter));
    }
    /* Words of len letters: the first len-1 letters (a token since the previous round) plus the last. */
    for (uint32_t len = 2; v->n_tokens < n_regular; len++) {
        for (int spaced = 0; spaced < 2; spaced++) {
            for (uint64_t i = 0; i < words_of_length(len) && v->n_tokens < n_regular; i++) {
                char word[8], last[2];
                word_at(i, len, word);
                last[0] = word[len - 1];
                last[1] = '\0';
                word[len - 1] = '\0';
                char *left = concat(spaced ? GPT2_SPACE : "", word, "");
                vkllm_status status = left ? add_merge(v, left, last)
                                           : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "synth: no memory");
                free(left);
                VKLLM_TRY(status);
            }
        }
    }
    return VKLLM_OK;
}

static const char *const llama3_specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"};
static const char *const qwen2_specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
#define N_SPECIALS 3

static vkllm_status write_lists(gguf_writer *w, const vocab_lists *v, bool spm)
{
    VKLLM_TRY(gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, NULL,
                                        v->n_tokens));
    if (spm) VKLLM_TRY(gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v->scores, v->n_tokens));
    VKLLM_TRY(gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->types, v->n_tokens));
    if (!spm)
        VKLLM_TRY(gguf_writer_set_str_array(w, "tokenizer.ggml.merges", (const char *const *)v->merges, NULL,
                                            v->n_merges));
    return VKLLM_OK;
}

static vkllm_status write_vocab(const synth_preset *p, gguf_writer *w, vocab_lists *v)
{
    const uint64_t n_vocab = p->n_vocab;
    if (p->vocab == SYNTH_VOCAB_SPM) {
        VKLLM_TRY(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"));
        VKLLM_TRY(gguf_writer_set_str(w, "tokenizer.ggml.pre", "default"));
        VKLLM_TRY(spm_tokens(v, n_vocab));
        VKLLM_TRY(write_lists(w, v, true));
        VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1));
        VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2));
        VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0));
        VKLLM_TRY(gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true));
        return gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    }
    bool llama3 = p->vocab == SYNTH_VOCAB_LLAMA3;
    const char *const *specials = llama3 ? llama3_specials : qwen2_specials;
    VKLLM_TRY(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    VKLLM_TRY(gguf_writer_set_str(w, "tokenizer.ggml.pre", llama3 ? "llama-bpe" : "qwen2"));
    VKLLM_TRY(bpe_tokens(v, n_vocab - N_SPECIALS));
    const uint32_t first_special = (uint32_t)v->n_tokens;
    for (int i = 0; i < N_SPECIALS; i++) VKLLM_TRY(add_token(v, concat(specials[i], "", ""), 0.0f, TOKEN_CONTROL));
    VKLLM_TRY(write_lists(w, v, false));
    /* Base models: llama3 <|begin_of_text|> ... <|end_of_text|>; qwen2 uses <|endoftext|> for all three
     * and adds no BOS. */
    VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", first_special));
    VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", first_special + (llama3 ? 1 : 0)));
    if (!llama3) VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", first_special));
    return gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", llama3);
}

vkllm_status synth_add_vocab(const synth_preset *p, gguf_writer *w)
{
    if (p->n_vocab < 300) /* room for the fixed tokens and some words */
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "synth: vocabulary of %u tokens, at least 300 expected",
                          p->n_vocab);
    vocab_lists v = {0};
    v.tokens = calloc(p->n_vocab, sizeof *v.tokens);
    v.scores = calloc(p->n_vocab, sizeof *v.scores);
    v.types = calloc(p->n_vocab, sizeof *v.types);
    v.merges = calloc(p->n_vocab, sizeof *v.merges);
    vkllm_status status = v.tokens && v.scores && v.types && v.merges
                              ? write_vocab(p, w, &v)
                              : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "synth: no memory for the vocabulary");
    if (status == VKLLM_OK && v.n_tokens != p->n_vocab)
        status = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "synth: generated %llu tokens for a vocabulary of %u",
                            (unsigned long long)v.n_tokens, p->n_vocab);
    for (uint64_t i = 0; i < v.n_tokens; i++) free(v.tokens[i]);
    for (uint64_t i = 0; i < v.n_merges; i++) free(v.merges[i]);
    free(v.tokens);
    free(v.scores);
    free(v.types);
    free(v.merges);
    return status;
}
