/* Host side of the paged KV cache: which device page holds each block of page_size positions of each
 * sequence.  The page table mirrors into a device buffer that the KV-write and attention shaders read. */
#ifndef VKLLM_KV_PAGES_H
#define VKLLM_KV_PAGES_H

#include <stdint.h>

#include "runtime/error.h"

typedef struct kv_pages {
    uint32_t page_size;         /* positions per page (power of two) */
    uint32_t n_pages;           /* pages in the device pool */
    uint32_t n_seqs;            /* sequence slots */
    uint32_t max_pages_per_seq; /* columns of the page table */
    int32_t *page_table;        /* [n_seqs][max_pages_per_seq]; -1 = unmapped */
    uint32_t *seq_len;          /* [n_seqs] positions held */
    uint32_t *free_pages;       /* stack of free page indices */
    uint32_t n_free;
} kv_pages;

vkllm_status kv_pages_create(uint32_t n_pages, uint32_t page_size, uint32_t n_seqs, uint32_t max_pages_per_seq,
                             kv_pages **out);
void kv_pages_free(kv_pages *kv);

/* Maps pages so that seq holds positions [0, len); VKLLM_ERROR_CONTEXT_FULL if the sequence would exceed
 * its page-table row or the pool is exhausted (nothing changes then). */
vkllm_status kv_pages_grow(kv_pages *kv, uint32_t seq, uint32_t len);
/* Keeps positions [0, len) of seq and returns the pages past them to the pool. */
vkllm_status kv_pages_truncate(kv_pages *kv, uint32_t seq, uint32_t len);

#endif
