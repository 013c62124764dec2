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
    /* Prefix caching (src/serving): a page holding a full block of known tokens carries the hash of them and of
     * all before them.  Pages are reference counted (a cached page may sit in several rows); a hashed page whose
     * count drops to 0 stays cached (n_cached) until a page is needed and none is free: then the least recently
     * used cached page is evicted. */
    uint32_t *ref;              /* [n_pages] rows mapping the page */
    uint64_t *hash;             /* [n_pages] valid where has_hash */
    uint8_t *has_hash;          /* [n_pages] */
    uint64_t *last_used;        /* [n_pages] clock of its last release or lookup */
    uint64_t clock;
    uint32_t n_cached;          /* hashed pages with no reference */
    uint32_t n_usable;          /* pages handed out at most (<= n_pages; a limit for tests and small pools) */
} kv_pages;

vkllm_status kv_pages_create(uint32_t n_pages, uint32_t page_size, uint32_t n_seqs, uint32_t max_pages_per_seq,
                             kv_pages **out);
void kv_pages_free(kv_pages *kv);

/* Maps pages so that seq holds positions [0, len); VKLLM_ERROR_CONTEXT_FULL if the sequence would exceed
 * its page-table row or the pool is exhausted (nothing changes then). */
vkllm_status kv_pages_grow(kv_pages *kv, uint32_t seq, uint32_t len);
/* Keeps positions [0, len) of seq and returns the pages past them to the pool. */
vkllm_status kv_pages_truncate(kv_pages *kv, uint32_t seq, uint32_t len);

/* Pages that could be handed out now: free ones and evictable cached ones. */
uint32_t kv_pages_available(const kv_pages *kv);
/* The page holding a block with this hash, or -1 (it counts as used now for LRU). */
int32_t kv_pages_lookup(kv_pages *kv, uint64_t hash);
/* Appends a cached page to seq's row (which must end on a page boundary) and takes a reference to it. */
vkllm_status kv_pages_share(kv_pages *kv, uint32_t seq, int32_t page);
/* Marks block `block` of seq (full, its tokens final) as cached under hash, unless another page has it. */
void kv_pages_set_hash(kv_pages *kv, uint32_t seq, uint32_t block, uint64_t hash);

#endif
