/* Byte-level BPE, as llama.cpp's llm_tokenizer_bpe_session: the text is split into words by the
 * pre-tokenizer, each word's bytes are written as GPT-2's printable code points, then the adjacent pair
 * with the lowest merge rank is merged until no pair has a rank. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"
#include "utf8.h"

/* GPT-2 keeps the printable bytes ! .. ~, ¡ .. ¬, ® .. ÿ as their own code points and moves the other
 * 68 bytes, in order, to U+0100 .. U+0143. */
static bool gpt2_byte_is_printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

uint32_t gpt2_byte_to_cpt(uint8_t byte)
{
    if (gpt2_byte_is_printable(byte)) return byte;
    if (byte <= 0x20) return 0x100u + byte;             /* 33 bytes: 0x00 .. 0x20 */
    if (byte <= 0xA0) return 0x100u + 33 + (byte - 0x7F); /* 34 bytes: 0x7F .. 0xA0 */
    return 0x100u + 67;                                 /* 0xAD */
}

int gpt2_cpt_to_byte(uint32_t cpt)
{
    if (cpt < 0x100) return gpt2_byte_is_printable(cpt) ? (int)cpt : -1;
    if (cpt < 0x100 + 33) return (int)(cpt - 0x100);
    if (cpt < 0x100 + 67) return (int)(cpt - 0x100 - 33 + 0x7F);
    if (cpt == 0x100 + 67) return 0xAD;
    return -1;
}

/* A pair merges when "left right" is a merge; the lower its rank, the earlier. */
static bool bpe_priority(const void *user, const char *left, size_t left_len, const char *right, size_t right_len,
                         double *priority)
{
    const int32_t rank = vocab_find_merge(user, left, left_len, right, right_len);
    if (rank < 0) return false;
    *priority = -(double)rank;
    return true;
}

/* Writes the tokens of a finished word.  A symbol that is not a token (possible only with odd merges)
 * falls back to its single bytes, and bytes that are not tokens either are dropped, as in llama.cpp. */
static vkllm_status emit_symbols(const vocab *v, const merge_state *w, token_buffer *out)
{
    for (int i = 0; i >= 0; i = w->symbols[i].next) {
        const merge_symbol *s = &w->symbols[i];
        const int32_t id = vocab_find_token(v, w->text + s->offset, s->n);
        if (id != TOKEN_NONE) {
            VKLLM_TRY(token_buffer_push(out, id));
            continue;
        }
        for (size_t j = 0; j < s->n; j++) {
            const int32_t byte_id = vocab_find_token(v, w->text + s->offset + j, 1);
            if (byte_id != TOKEN_NONE) VKLLM_TRY(token_buffer_push(out, byte_id));
        }
    }
    return VKLLM_OK;
}

/* Merges one encoded word (len > 0 bytes); symbols and heap have room for len and 3 * len entries. */
static vkllm_status merge_word(const vocab *v, merge_state *w, size_t len, token_buffer *out)
{
    if (v->ignore_merges) {
        const int32_t id = vocab_find_token(v, w->text, len);
        if (id != TOKEN_NONE) return token_buffer_push(out, id);
    }
    merge_text(w, len);
    return emit_symbols(v, w, out);
}

/* Writes the code points of one word as GPT-2 encoded UTF-8 into buf (room for 2 bytes per input byte). */
static size_t encode_word(const uint32_t *cpts, size_t n, char *buf)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char utf8[4];
        const size_t k = utf8_encode(cpts[i], utf8);
        for (size_t j = 0; j < k; j++) len += utf8_encode(gpt2_byte_to_cpt((uint8_t)utf8[j]), buf + len);
    }
    return len;
}

static vkllm_status decode_text(const char *text, size_t len, uint32_t **cpts, size_t *n)
{
    *cpts = malloc((len ? len : 1) * sizeof **cpts);
    if (!*cpts) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "bpe: no memory for %zu code points", len);
    *n = 0;
    for (size_t offset = 0; offset < len;) (*cpts)[(*n)++] = utf8_decode(text, len, &offset);
    return VKLLM_OK;
}

vkllm_status bpe_tokenize(const vocab *v, const char *text, size_t len, token_buffer *out)
{
    uint32_t *cpts = NULL;
    size_t n_cpts = 0;
    word_lengths words = {0};
    merge_state w = {.priority = bpe_priority, .user = v};
    char *encoded = NULL;
    vkllm_status status = decode_text(text, len, &cpts, &n_cpts);
    if (status == VKLLM_OK) status = pretokenize(v->pre, cpts, n_cpts, &words);
    if (status == VKLLM_OK) {
        /* A code point is at most 4 UTF-8 bytes (an invalid byte becomes U+FFFD, 3; U+10000 and above are 4),
         * each 2 bytes once GPT-2 encoded. */
        const size_t most = 8 * n_cpts + 1;
        encoded = malloc(most);
        w.symbols = malloc(most * sizeof *w.symbols);
        w.heap = malloc(3 * most * sizeof *w.heap);
        if (!encoded || !w.symbols || !w.heap)
            status = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "bpe: no memory to merge %zu bytes", len);
    }
    size_t start = 0;
    for (size_t i = 0; i < words.n && status == VKLLM_OK; i++) {
        const size_t encoded_len = encode_word(cpts + start, words.len[i], encoded);
        start += words.len[i];
        w.text = encoded;
        status = merge_word(v, &w, encoded_len, out);
    }
    free(encoded);
    free(w.symbols);
    free(w.heap);
    word_lengths_free(&words);
    free(cpts);
    return status;
}
