/* Loads a llama2.c tokenizer file (tokenizer.bin, tok512.bin) as a SentencePiece vocabulary.
 *
 * Layout (little-endian): int32 max_token_length, then per token: float32 score, int32 length, bytes.
 * The file has no token count; tokens run to the end of the file.  llama2.c's exporter changed the
 * SentencePiece pieces in two ways that are undone here: U+2581 was replaced by a space, and BOS/EOS
 * were written as "\n<s>\n" and "\n</s>\n".  Token types are not stored: "<unk>" is unknown, <s> and
 * </s> are control, "<0xNN>" are byte tokens, the rest are normal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama2c.h"
#include "runtime/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

typedef struct llama2c_reader {
    const uint8_t *data;
    size_t size, at;
    const char *path;
} llama2c_reader;

static vkllm_status read_i32(llama2c_reader *r, const char *what, uint32_t index, int32_t *out)
{
    if (r->size - r->at < 4)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: truncated at byte %zu reading the %s of token %u", r->path,
                          r->at, what, index);
    uint32_t u = (uint32_t)r->data[r->at] | (uint32_t)r->data[r->at + 1] << 8 | (uint32_t)r->data[r->at + 2] << 16 |
                 (uint32_t)r->data[r->at + 3] << 24;
    memcpy(out, &u, 4);
    r->at += 4;
    return VKLLM_OK;
}

/* Walks one token record; returns its score and bytes. */
static vkllm_status next_token(llama2c_reader *r, uint32_t index, float *score, const char **text, size_t *len)
{
    int32_t score_bits = 0, length = 0;
    VKLLM_TRY(read_i32(r, "score", index, &score_bits));
    VKLLM_TRY(read_i32(r, "length", index, &length));
    if (length < 0 || (size_t)length > r->size - r->at)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: token %u claims %d bytes at byte %zu, %zu remain", r->path,
                          index, length, r->at, r->size - r->at);
    memcpy(score, &score_bits, 4);
    *text = (const char *)r->data + r->at;
    *len = (size_t)length;
    r->at += (size_t)length;
    return VKLLM_OK;
}

static bool is_byte_piece(const char *text, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    return len == 6 && memcmp(text, "<0x", 3) == 0 && text[5] == '>' && strchr(hex, text[3]) && strchr(hex, text[4]);
}

/* Restores one piece as SentencePiece wrote it and classifies it. */
static vkllm_status add_piece(vocab *v, uint32_t id, const char *text, size_t len, float score)
{
    if (len == 5 && memcmp(text, "\n<s>\n", 5) == 0)
        return vocab_set_token(v, id, "<s>", 3, score, TOKEN_ATTR_CONTROL);
    if (len == 6 && memcmp(text, "\n</s>\n", 6) == 0)
        return vocab_set_token(v, id, "</s>", 4, score, TOKEN_ATTR_CONTROL);
    if (len == 5 && memcmp(text, "<unk>", 5) == 0) return vocab_set_token(v, id, text, len, score, TOKEN_ATTR_UNKNOWN);
    if (is_byte_piece(text, len)) return vocab_set_token(v, id, text, len, score, TOKEN_ATTR_BYTE);

    size_t spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    char *piece = malloc(len + 2 * spaces + 1);
    if (!piece) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "llama2.c tokenizer: no memory for token %u", id);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(piece + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            piece[n++] = text[i];
        }
    }
    const vkllm_status status = vocab_set_token(v, id, piece, n, score, TOKEN_ATTR_NORMAL);
    free(piece);
    return status;
}

static vkllm_status read_file(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return vkllm_fail(VKLLM_ERROR_IO, "llama2.c tokenizer: cannot open %s", path);
    long end = -1;
    if (fseek(f, 0, SEEK_END) == 0) end = ftell(f);
    if (end < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return vkllm_fail(VKLLM_ERROR_IO, "llama2.c tokenizer: cannot measure %s", path);
    }
    *data = malloc(end > 0 ? (size_t)end : 1);
    if (!*data) {
        fclose(f);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "llama2.c tokenizer: no memory for %ld bytes of %s", end,
                          path);
    }
    const size_t got = fread(*data, 1, (size_t)end, f);
    fclose(f);
    if (got != (size_t)end) {
        free(*data);
        return vkllm_fail(VKLLM_ERROR_IO, "llama2.c tokenizer: read %zu of %ld bytes of %s", got, end, path);
    }
    *size = (size_t)end;
    return VKLLM_OK;
}

static vkllm_status parse(llama2c_reader *r, vocab **out)
{
    int32_t max_token_length = 0;
    VKLLM_TRY(read_i32(r, "header", 0, &max_token_length));
    if (max_token_length <= 0)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: max_token_length %d, expected > 0", r->path, max_token_length);
    const size_t first = r->at;
    uint32_t n_tokens = 0;
    for (; r->at < r->size; n_tokens++) {
        float score = 0.0f;
        const char *text = NULL;
        size_t len = 0;
        VKLLM_TRY(next_token(r, n_tokens, &score, &text, &len));
    }
    if (n_tokens == 0) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: no tokens after the header", r->path);

    vocab *v;
    VKLLM_TRY(vocab_create(VOCAB_SPM, n_tokens, &v));
    r->at = first;
    vkllm_status status = VKLLM_OK;
    for (uint32_t id = 0; id < n_tokens && status == VKLLM_OK; id++) {
        float score = 0.0f;
        const char *text = NULL;
        size_t len = 0;
        status = next_token(r, id, &score, &text, &len);
        if (status == VKLLM_OK) status = add_piece(v, id, text, len, score);
    }
    if (status == VKLLM_OK) status = vocab_finish(v);
    if (status != VKLLM_OK) {
        vocab_free(v);
        return status;
    }
    *out = v;
    return VKLLM_OK;
}

vkllm_status tokenizer_create_from_llama2c(const char *path, tokenizer **out)
{
    *out = NULL;
    llama2c_reader r = {.path = path};
    uint8_t *data = NULL;
    VKLLM_TRY(read_file(path, &data, &r.size));
    r.data = data;
    const vkllm_status status = parse(&r, out);
    free(data);
    return status;
}
