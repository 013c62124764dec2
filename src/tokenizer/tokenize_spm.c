/* SentencePiece-style BPE, as llama.cpp's llm_tokenizer_spm_session: the text is cut into UTF-8
 * characters, then the adjacent pair whose concatenation is the highest-scoring token is merged until no
 * pair forms a token.  A leftover piece that is not a token is written as <0xNN> byte tokens.
 *
 * llama.cpp also keeps a "rev_merge" map to re-split such pieces, but a merged piece is always a token
 * (a pair is only queued when its text is one), so only single characters can reach the byte fallback. */
#include <stdlib.h>

#include "tokenizer_internal.h"

/* A pair merges when its concatenation is a token; the higher the token's score, the earlier. */
static bool spm_priority(const void *user, const char *left, size_t left_len, const char *right, size_t right_len,
                         double *priority)
{
    const vocab *v = user;
    const int32_t id = vocab_find_token(v, left, left_len + right_len);
    if (id == TOKEN_NONE) return false;
    *priority = v->tokens[id].score;
    return true;
}

/* The id of the byte token <0xNN>, else of the one-byte text, else unk (llama.cpp would fail there). */
static int32_t byte_token(const vocab *v, uint8_t byte)
{
    static const char hex[] = "0123456789ABCDEF";
    const char piece[6] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>'};
    int32_t id = vocab_find_token(v, piece, sizeof piece);
    if (id == TOKEN_NONE) id = vocab_find_token(v, (const char *)&byte, 1);
    return id == TOKEN_NONE ? v->unk : id;
}

static vkllm_status emit_symbol(const vocab *v, const char *text, const merge_symbol *sym, token_buffer *out)
{
    const int32_t id = vocab_find_token(v, text + sym->offset, sym->n);
    if (id != TOKEN_NONE) return token_buffer_push(out, id);
    for (size_t j = 0; j < sym->n; j++) {
        const int32_t byte_id = byte_token(v, (uint8_t)text[sym->offset + j]);
        if (byte_id != TOKEN_NONE) VKLLM_TRY(token_buffer_push(out, byte_id));
    }
    return VKLLM_OK;
}

vkllm_status spm_tokenize(const vocab *v, const char *text, size_t len, token_buffer *out)
{
    if (len == 0) return VKLLM_OK;
    if (len > (size_t)INT32_MAX / 4) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "spm: %zu bytes of text is too long", len);
    merge_state s = {.text = text, .priority = spm_priority, .user = v};
    s.symbols = malloc(len * sizeof *s.symbols);
    s.heap = malloc(3 * len * sizeof *s.heap); /* n - 1 first pairs, then at most 2 per merge */
    if (!s.symbols || !s.heap) {
        free(s.symbols);
        free(s.heap);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "spm: no memory to tokenize %zu bytes", len);
    }
    merge_text(&s, len);
    vkllm_status status = VKLLM_OK;
    for (int i = 0; i >= 0 && status == VKLLM_OK; i = s.symbols[i].next)
        status = emit_symbol(v, text, &s.symbols[i], out);
    free(s.symbols);
    free(s.heap);
    return status;
}
