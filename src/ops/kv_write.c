/* The paged KV cache: layout checks and the write of a batch's K and V rows (shaders/kv_write.comp). */
#include "kv_cache.h"
#include "check.h"

#define KV_MAX_HEAD_DIM 256u

uint64_t ops_kv_cache_bytes(const ops_kv_layout *kv)
{
    return (uint64_t)kv->n_pages * kv->n_kv_heads * kv->page_size * kv->head_dim * (kv->f16 ? 2u : 4u);
}

vkllm_status ops_kv_check(const ops_context *ops, const char *op, const ops_kv_layout *kv, vkr_range k_cache,
                          vkr_range v_cache, vkr_range page_table)
{
    if (kv->n_pages == 0 || kv->n_kv_heads == 0 || kv->n_seqs == 0 || kv->max_pages_per_seq == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "%s: n_pages %u, n_kv_heads %u, n_seqs %u, max_pages_per_seq %u must all be non-zero", op,
                          kv->n_pages, kv->n_kv_heads, kv->n_seqs, kv->max_pages_per_seq);
    /* Multiples of 4: the shaders move 4 elements at a time (a vec4, or two packed half pairs). */
    if (kv->head_dim == 0 || kv->head_dim % 4 || kv->head_dim > KV_MAX_HEAD_DIM)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: head_dim %u must be a multiple of 4 in 4..%u", op,
                          kv->head_dim, KV_MAX_HEAD_DIM);
    if (kv->page_size == 0 || (kv->page_size & (kv->page_size - 1)) || kv->page_size > (1u << 16))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: page_size %u must be a power of two up to 65536", op,
                          kv->page_size);
    if ((uint64_t)kv->max_pages_per_seq * kv->page_size > INT32_MAX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u pages of %u positions exceed int32 positions", op,
                          kv->max_pages_per_seq, kv->page_size);
    uint64_t bytes = ops_kv_cache_bytes(kv);
    if (bytes > ops->caps->max_storage_buffer_range)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED,
                          "%s: one layer's K or V cache is %llu bytes (%u pages x %u kv heads x %u positions x %u "
                          "dims), above this device's maxStorageBufferRange of %llu; use fewer pages or an F16 cache",
                          op, (unsigned long long)bytes, kv->n_pages, kv->n_kv_heads, kv->page_size, kv->head_dim,
                          (unsigned long long)ops->caps->max_storage_buffer_range);
    VKLLM_TRY(ops_check_bytes(op, "k_cache", k_cache, bytes));
    VKLLM_TRY(ops_check_bytes(op, "v_cache", v_cache, bytes));
    return ops_check_bytes(op, "page_table", page_table, 4ull * kv->n_seqs * kv->max_pages_per_seq);
}

typedef struct kv_write_push {
    uint32_t n_tokens, n_kv_heads, head_dim4, page_shift, n_pages, n_seqs, max_pages_per_seq;
} kv_write_push;

vkllm_status ops_kv_write(ops_context *ops, vkr_sequence *seq, vkr_range k_new, vkr_range v_new,
                          vkr_range tokens, vkr_range page_table, vkr_range k_cache, vkr_range v_cache,
                          uint32_t n_tokens, const ops_kv_layout *kv)
{
    const char *name = kv->f16 ? SHADER(kv_write_f16) : SHADER(kv_write_f32);
    VKLLM_TRY(ops_kv_check(ops, name, kv, k_cache, v_cache, page_table));
    uint64_t chunks = (uint64_t)n_tokens * kv->n_kv_heads * (kv->head_dim / 4);
    if (n_tokens == 0 || chunks > INT32_MAX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: n_tokens %u x %u kv heads x %u dims out of range", name,
                          n_tokens, kv->n_kv_heads, kv->head_dim);
    VKLLM_TRY(ops_check_bytes(name, "k_new", k_new, 16 * chunks));
    VKLLM_TRY(ops_check_bytes(name, "v_new", v_new, 16 * chunks));
    VKLLM_TRY(ops_check_bytes(name, "tokens", tokens, 8ull * n_tokens));

    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, name, 6, 0xf, sizeof(kv_write_push), &wg, 1, &p));
    kv_write_push push = {n_tokens, kv->n_kv_heads, kv->head_dim / 4, ops_kv_page_shift(kv), kv->n_pages,
                          kv->n_seqs, kv->max_pages_per_seq};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up((uint32_t)chunks, wg), groups);
    vkr_range bind[6] = {k_new, v_new, tokens, page_table, k_cache, v_cache};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}
