/* The id buffer and the pairwise merging shared by the SentencePiece and BPE tokenizers (tokenizer_internal.h). */
#include "tokenizer_internal.h"

#include <stdlib.h>

#include "utf8.h"

vkllm_status token_buffer_push(token_buffer *b, int32_t id)
{
    if (b->n == b->cap) {
        const size_t cap = b->cap ? b->cap * 2 : 64;
        int32_t *grown = realloc(b->ids, cap * sizeof *grown);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: no memory for %zu ids", cap);
        b->ids = grown;
        b->cap = cap;
    }
    b->ids[b->n++] = id;
    return VKLLM_OK;
}

/* Higher priority first, then the leftmost pair. */
static bool pair_before(const merge_pair *a, const merge_pair *b)
{
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

/* A binary heap, best first. */
static void heap_push(merge_state *s, merge_pair p)
{
    size_t i = s->n_heap++;
    while (i > 0 && pair_before(&p, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = p;
}

static merge_pair heap_pop(merge_state *s)
{
    const merge_pair top = s->heap[0];
    const merge_pair last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= s->n_heap) break;
        if (child + 1 < s->n_heap && pair_before(&s->heap[child + 1], &s->heap[child])) child++;
        if (!pair_before(&s->heap[child], &last)) break;
        s->heap[i] = s->heap[child];
        i = child;
    }
    if (s->n_heap > 0) s->heap[i] = last;
    return top;
}

static void try_add_pair(merge_state *s, int left, int right)
{
    if (left < 0 || right < 0) return;
    const merge_symbol *l = &s->symbols[left], *r = &s->symbols[right];
    double priority;
    if (!s->priority(s->user, s->text + l->offset, l->n, s->text + r->offset, r->n, &priority)) return;
    heap_push(s, (merge_pair){.left = left, .right = right, .priority = priority, .size = l->n + r->n});
}

void merge_text(merge_state *s, size_t len)
{
    int n = 0;
    for (size_t offset = 0; offset < len; n++) {
        size_t char_len = utf8_sequence_length((uint8_t)s->text[offset]);
        if (char_len > len - offset) char_len = len - offset;
        s->symbols[n] = (merge_symbol){.prev = n - 1, .next = offset + char_len == len ? -1 : n + 1, .offset = offset,
                                       .n = char_len};
        offset += char_len;
    }
    s->n_heap = 0;
    for (int i = 1; i < n; i++) try_add_pair(s, i - 1, i);
    while (s->n_heap > 0) {
        const merge_pair p = heap_pop(s);
        merge_symbol *left = &s->symbols[p.left], *right = &s->symbols[p.right];
        if (left->n == 0 || right->n == 0 || left->n + right->n != p.size) continue; /* stale */
        left->n += right->n;
        right->n = 0;
        left->next = right->next;
        if (right->next >= 0) s->symbols[right->next].prev = p.left;
        try_add_pair(s, left->prev, p.left);
        try_add_pair(s, p.left, left->next);
    }
}
