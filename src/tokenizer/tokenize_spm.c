/* SentencePiece-style BPE, as llama.cpp's llm_tokenizer_spm_session: the text is cut into UTF-8
 * characters, then the adjacent pair whose concatenation is the highest-scoring token is merged until no
 * pair forms a token.  A leftover piece that is not a token is written as <0xNN> byte tokens.
 *
 * llama.cpp also keeps a "rev_merge" map to re-split such pieces, but a merged piece is always a token
 * (a pair is only queued when its text is one), so only single characters can reach the byte fallback. */
#include <stdlib.h>

#include "runtime/error.h"
#include "tokenize.h"
#include "utf8.h"

typedef struct spm_symbol {
    int prev, next;
    size_t offset, n; /* bytes of the text; n == 0: merged into its left neighbour */
} spm_symbol;

typedef struct spm_bigram {
    int left, right;
    float score;
    size_t size; /* bytes of left + right when queued; a later mismatch means the pair is stale */
} spm_bigram;

/* Higher score first, then the leftmost pair. */
static bool bigram_before(const spm_bigram *a, const spm_bigram *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_state {
    const vocab *v;
    const char *text;
    spm_symbol *symbols;
    spm_bigram *heap; /* binary heap, best first */
    size_t n_heap;
} spm_state;

static void heap_push(spm_state *s, spm_bigram b)
{
    size_t i = s->n_heap++;
    while (i > 0 && bigram_before(&b, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = b;
}

static spm_bigram heap_pop(spm_state *s)
{
    const spm_bigram top = s->heap[0];
    const spm_bigram last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->n_heap) break;
        if (child + 1 < s->n_heap && bigram_before(&s->heap[child + 1], &s->heap[child])) child++;
        if (!bigram_before(&s->heap[child], &last)) break;
        s->heap[i] = s->heap[child];
        i = child;
    }
    if (s->n_heap > 0) s->heap[i] = last;
    return top;
}

static void try_add_bigram(spm_state *s, int left, int right)
{
    if (left < 0 || right < 0) return;
    const size_t size = s->symbols[left].n + s->symbols[right].n;
    const int32_t id = vocab_find_token(s->v, s->text + s->symbols[left].offset, size);
    if (id == TOKEN_NONE) return;
    heap_push(s, (spm_bigram){.left = left, .right = right, .score = s->v->tokens[id].score, .size = size});
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

static vkllm_status emit_symbol(const spm_state *s, const spm_symbol *sym, token_buffer *out)
{
    const int32_t id = vocab_find_token(s->v, s->text + sym->offset, sym->n);
    if (id != TOKEN_NONE) return token_buffer_push(out, id);
    for (size_t j = 0; j < sym->n; j++) {
        const int32_t byte_id = byte_token(s->v, (uint8_t)s->text[sym->offset + j]);
        if (byte_id != TOKEN_NONE) VKLLM_TRY(token_buffer_push(out, byte_id));
    }
    return VKLLM_OK;
}

vkllm_status spm_tokenize(const vocab *v, const char *text, size_t len, token_buffer *out)
{
    if (len == 0) return VKLLM_OK;
    if (len > (size_t)INT32_MAX / 4) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "spm: %zu bytes of text is too long", len);
    spm_state s = {.v = v, .text = text};
    s.symbols = malloc(len * sizeof *s.symbols);
    s.heap = malloc(3 * len * sizeof *s.heap); /* n - 1 first pairs, then at most 2 per merge */
    if (!s.symbols || !s.heap) {
        free(s.symbols);
        free(s.heap);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "spm: no memory to tokenize %zu bytes", len);
    }
    int n = 0;
    for (size_t offset = 0; offset < len; n++) {
        size_t char_len = utf8_sequence_length((uint8_t)text[offset]);
        if (char_len > len - offset) char_len = len - offset;
        s.symbols[n] = (spm_symbol){.prev = n - 1, .next = offset + char_len == len ? -1 : n + 1, .offset = offset,
                                    .n = char_len};
        offset += char_len;
    }
    for (int i = 1; i < n; i++) try_add_bigram(&s, i - 1, i);
    while (s.n_heap > 0) {
        const spm_bigram b = heap_pop(&s);
        spm_symbol *left = &s.symbols[b.left], *right = &s.symbols[b.right];
        if (left->n == 0 || right->n == 0 || left->n + right->n != b.size) continue; /* stale */
        left->n += right->n;
        right->n = 0;
        left->next = right->next;
        if (right->next >= 0) s.symbols[right->next].prev = b.left;
        try_add_bigram(&s, left->prev, b.left);
        try_add_bigram(&s, b.left, left->next);
    }
    vkllm_status status = VKLLM_OK;
    for (int i = 0; i >= 0 && status == VKLLM_OK; i = s.symbols[i].next) status = emit_symbol(&s, &s.symbols[i], out);
    free(s.symbols);
    free(s.heap);
    return status;
}
