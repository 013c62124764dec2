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
    kv->n_usable = n_pages;
    kv->n_seqs = n_seqs;
    kv->max_pages_per_seq = max_pages_per_seq;
    kv->page_table = malloc((size_t)n_seqs * max_pages_per_seq * sizeof *kv->page_table);
    kv->seq_len = calloc(n_seqs, sizeof *kv->seq_len);
    kv->free_pages = malloc(n_pages * sizeof *kv->free_pages);
    kv->ref = calloc(n_pages, sizeof *kv->ref);
    kv->hash = calloc(n_pages, sizeof *kv->hash);
    kv->has_hash = calloc(n_pages, 1);
    kv->last_used = calloc(n_pages, sizeof *kv->last_used);
    if (!kv->page_table || !kv->seq_len || !kv->free_pages || !kv->ref || !kv->hash || !kv->has_hash ||
        !kv->last_used) {
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
    free(kv->ref);
    free(kv->hash);
    free(kv->has_hash);
    free(kv->last_used);
    free(kv);
}

static uint32_t pages_for(const kv_pages *kv, uint32_t len) { return (len + kv->page_size - 1) / kv->page_size; }

/* Pages handed out or cached: the rest of n_usable may still come off the free stack. */
static uint32_t n_taken(const kv_pages *kv) { return kv->n_pages - kv->n_free; }

uint32_t kv_pages_available(const kv_pages *kv)
{
    uint32_t fresh = kv->n_usable > n_taken(kv) ? kv->n_usable - n_taken(kv) : 0;
    return fresh + kv->n_cached;
}

/* A page with no reference: off the free stack while under n_usable, else the least recently used cached one. */
static int32_t take_page(kv_pages *kv)
{
    if (kv->n_free && n_taken(kv) < kv->n_usable) return (int32_t)kv->free_pages[--kv->n_free];
    int32_t best = -1;
    for (uint32_t p = 0; p < kv->n_pages; p++)
        if (!kv->ref[p] && kv->has_hash[p] && (best < 0 || kv->last_used[p] < kv->last_used[best])) best = (int32_t)p;
    if (best >= 0) {
        kv->has_hash[best] = 0;
        kv->n_cached--;
    }
    return best;
}

static void release_page(kv_pages *kv, int32_t page)
{
    if (--kv->ref[page]) return;
    if (kv->has_hash[page]) {
        kv->last_used[page] = ++kv->clock;
        kv->n_cached++;
    } else {
        kv->free_pages[kv->n_free++] = (uint32_t)page;
    }
}

vkllm_status kv_pages_grow(kv_pages *kv, uint32_t seq, uint32_t len)
{
    if (seq >= kv->n_seqs) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "kv pages: sequence %u of %u", seq, kv->n_seqs);
    uint32_t have = pages_for(kv, kv->seq_len[seq]), need = pages_for(kv, len);
    if (need > kv->max_pages_per_seq)
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "sequence %u needs %u positions; the context holds %u", seq, len,
                          kv->max_pages_per_seq * kv->page_size);
    if (need > have && need - have > kv_pages_available(kv))
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "sequence %u needs %u more KV pages; %u of %u are free", seq,
                          need - have, kv_pages_available(kv), kv->n_usable);
    int32_t *row = kv->page_table + (size_t)seq * kv->max_pages_per_seq;
    for (uint32_t p = have; p < need; p++) {
        row[p] = take_page(kv);
        kv->ref[row[p]] = 1;
    }
    if (len > kv->seq_len[seq]) kv->seq_len[seq] = len;
    return VKLLM_OK;
}

vkllm_status kv_pages_truncate(kv_pages *kv, uint32_t seq, uint32_t len)
{
    if (seq >= kv->n_seqs) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "kv pages: sequence %u of %u", seq, kv->n_seqs);
    if (len >= kv->seq_len[seq]) return VKLLM_OK;
    uint32_t keep = pages_for(kv, len), have = pages_for(kv, kv->seq_len[seq]);
    int32_t *row = kv->page_table + (size_t)seq * kv->max_pages_per_seq;
    /* A kept partial page that others share would be written past len: keep a private copy's worth of safety by
     * dropping it instead (only full pages are ever shared, so this happens only when truncating inside one). */
    if (keep && len % kv->page_size && kv->ref[row[keep - 1]] > 1) keep--, len = keep * kv->page_size;
    for (uint32_t p = keep; p < have; p++) {
        release_page(kv, row[p]);
        row[p] = -1;
    }
    /* A page left partially filled is written again: it no longer holds the block its hash names. */
    if (keep && len % kv->page_size && kv->has_hash[row[keep - 1]]) kv->has_hash[row[keep - 1]] = 0;
    kv->seq_len[seq] = len;
    return VKLLM_OK;
}

int32_t kv_pages_lookup(kv_pages *kv, uint64_t hash)
{
    for (uint32_t p = 0; p < kv->n_pages; p++)
        if (kv->has_hash[p] && kv->hash[p] == hash) {
            kv->last_used[p] = ++kv->clock;
            return (int32_t)p;
        }
    return -1;
}

vkllm_status kv_pages_share(kv_pages *kv, uint32_t seq, int32_t page)
{
    if (seq >= kv->n_seqs || page < 0 || (uint32_t)page >= kv->n_pages || kv->seq_len[seq] % kv->page_size ||
        pages_for(kv, kv->seq_len[seq]) >= kv->max_pages_per_seq)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "kv pages: sharing page %d into sequence %u", page, seq);
    uint32_t at = kv->seq_len[seq] / kv->page_size;
    kv->page_table[(size_t)seq * kv->max_pages_per_seq + at] = page;
    if (kv->ref[page]++ == 0 && kv->has_hash[page]) kv->n_cached--;
    kv->seq_len[seq] += kv->page_size;
    return VKLLM_OK;
}

void kv_pages_set_hash(kv_pages *kv, uint32_t seq, uint32_t block, uint64_t hash)
{
    int32_t page = kv->page_table[(size_t)seq * kv->max_pages_per_seq + block];
    if (page < 0 || kv->has_hash[page]) return;
    for (uint32_t p = 0; p < kv->n_pages; p++)
        if (kv->has_hash[p] && kv->hash[p] == hash) return;
    kv->hash[page] = hash;
    kv->has_hash[page] = 1;
}
