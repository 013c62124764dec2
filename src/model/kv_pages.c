#include "kv_pages.h"

#include <stdlib.h>

#include "runtime/error.h"

vkllm_status kv_pages_create(uint32_t n_pages, uint32_t page_size, uint32_t n_seqs, uint32_t max_pages_per_seq,
                             kv_pages **out)
{
    *out = NULL;
    if (!n_pages || !n_seqs || !max_pages_per_seq || !page_size || (page_size & (page_size - 1)))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "kv pages: %u pages of %u positions, %u sequences of up to %u pages",
                          n_pages, page_size, n_seqs, max_pages_per_seq);
    kv_pages *kv = calloc(1, sizeof *kv);
    if (!kv) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "kv pages");
    kv->page_size = page_size;
    kv->n_pages = n_pages;
    kv->n_seqs = n_seqs;
    kv->max_pages_per_seq = max_pages_per_seq;
    kv->page_table = malloc((size_t)n_seqs * max_pages_per_seq * sizeof *kv->page_table);
    kv->seq_len = calloc(n_seqs, sizeof *kv->seq_len);
    kv->free_pages = malloc(n_pages * sizeof *kv->free_pages);
    if (!kv->page_table || !kv->seq_len || !kv->free_pages) {
        kv_pages_free(kv);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "kv page table");
    }
    for (size_t i = 0; i < (size_t)n_seqs * max_pages_per_seq; i++) kv->page_table[i] = -1;
    /* Hand out low pages first. */
    for (uint32_t i = 0; i < n_pages; i++) kv->free_pages[i] = n_pages - 1 - i;
    kv->n_free = n_pages;
    *out = kv;
    return VKLLM_OK;
}

void kv_pages_free(kv_pages *kv)
{
    if (!kv) return;
    free(kv->page_table);
    free(kv->seq_len);
    free(kv->free_pages);
    free(kv);
}

static uint32_t pages_for(const kv_pages *kv, uint32_t len) { return (len + kv->page_size - 1) / kv->page_size; }

vkllm_status kv_pages_grow(kv_pages *kv, uint32_t seq, uint32_t len)
{
    if (seq >= kv->n_seqs) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "kv pages: sequence %u of %u", seq, kv->n_seqs);
    uint32_t have = pages_for(kv, kv->seq_len[seq]), need = pages_for(kv, len);
    if (need > kv->max_pages_per_seq)
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "sequence %u needs %u positions; the context holds %u", seq, len,
                          kv->max_pages_per_seq * kv->page_size);
    if (need > have && need - have > kv->n_free)
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "sequence %u needs %u more KV pages; %u of %u are free", seq,
                          need - have, kv->n_free, kv->n_pages);
    int32_t *row = kv->page_table + (size_t)seq * kv->max_pages_per_seq;
    for (uint32_t p = have; p < need; p++) row[p] = (int32_t)kv->free_pages[--kv->n_free];
    if (len > kv->seq_len[seq]) kv->seq_len[seq] = len;
    return VKLLM_OK;
}

vkllm_status kv_pages_truncate(kv_pages *kv, uint32_t seq, uint32_t len)
{
    if (seq >= kv->n_seqs) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "kv pages: sequence %u of %u", seq, kv->n_seqs);
    if (len >= kv->seq_len[seq]) return VKLLM_OK;
    uint32_t keep = pages_for(kv, len), have = pages_for(kv, kv->seq_len[seq]);
    int32_t *row = kv->page_table + (size_t)seq * kv->max_pages_per_seq;
    for (uint32_t p = keep; p < have; p++) {
        kv->free_pages[kv->n_free++] = (uint32_t)row[p];
        row[p] = -1;
    }
    kv->seq_len[seq] = len;
    return VKLLM_OK;
}
