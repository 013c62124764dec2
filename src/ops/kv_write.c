/* The paged KV cache: layout checks and the write of a batch's K and V rows (shaders/kv_write.comp). */
#include "kv_cache.h"
#include "check.h"

#define KV_MAX_HEAD_DIM 256u

const char *ops_kv_type_name(ops_kv_type t)
{
    switch (t) {
    case OPS_KV_F32: return "f32";
    case OPS_KV_F16: return "f16";
    case OPS_KV_Q8_0: return "q8_0";
    case OPS_KV_Q4_0: return "q4_0";
    }
    return "unknown";
}

/* Bytes of one token's row of one side: shaders/kv_blocks.glsl's record for the quantized types. */
uint64_t ops_kv_row_bytes(const ops_kv_layout *kv, ops_kv_type type)
{
    uint64_t row = (uint64_t)kv->n_kv_heads * kv->head_dim, scale_words = (row / 32 + 1) / 2;
    switch (type) {
    case OPS_KV_F32: return 4 * row;
    case OPS_KV_F16: return 2 * row;
    case OPS_KV_Q8_0: return row + 4 * scale_words;
    case OPS_KV_Q4_0: return row / 2 + 4 * scale_words;
    }
    return 4 * row;
}

uint64_t ops_kv_cache_bytes(const ops_kv_layout *kv, ops_kv_type type)
{
    return (uint64_t)kv->n_pages * kv->page_size * ops_kv_row_bytes(kv, type);
}

uint64_t ops_kv_bytes_per_token(const ops_kv_layout *kv)
{
    return ops_kv_row_bytes(kv, kv->k_type) + ops_kv_row_bytes(kv, kv->v_type);
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
    if ((unsigned)kv->k_type > OPS_KV_Q4_0 || (unsigned)kv->v_type > OPS_KV_Q4_0 ||
        ((kv->k_type == OPS_KV_F32) != (kv->v_type == OPS_KV_F32)))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: a K cache of %s with a V cache of %s: F32 goes with F32 only",
                          op, ops_kv_type_name(kv->k_type), ops_kv_type_name(kv->v_type));
    if (kv->rotate_k && !ops_kv_type_quantized(kv->k_type))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: the rotation of keys is for a quantized K cache, not %s", op,
                          ops_kv_type_name(kv->k_type));
    if (kv->center_pairs && (!ops_kv_type_quantized(kv->k_type) || 2 * kv->center_pairs > kv->head_dim))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: %u centered RoPE pairs of keys: for a quantized K cache (not "
                          "%s) and at most head_dim / 2 = %u", op, kv->center_pairs, ops_kv_type_name(kv->k_type),
                          kv->head_dim / 2);
    ops_kv_type types[2] = {kv->k_type, kv->v_type};
    for (int i = 0; i < 2; i++)
        if (ops_kv_type_quantized(types[i]) && (kv->n_kv_heads * kv->head_dim) % 32)
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: a %s %s cache cuts each token's row of %u kv heads x %u "
                              "dims = %u values into blocks of 32, and %u is not a multiple of 32", op,
                              ops_kv_type_name(types[i]), i ? "V" : "K", kv->n_kv_heads, kv->head_dim,
                              kv->n_kv_heads * kv->head_dim, kv->n_kv_heads * kv->head_dim);
    for (int i = 0; i < 2; i++) {
        uint64_t bytes = ops_kv_cache_bytes(kv, types[i]);
        if (bytes > ops->caps->max_storage_buffer_range)
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED,
                              "%s: one layer's %s cache is %llu bytes (%u pages x %u positions x %u kv heads x %u dims "
                              "of %s), above this device's maxStorageBufferRange of %llu; use fewer pages or a "
                              "smaller cache type", op, i ? "V" : "K", (unsigned long long)bytes, kv->n_pages,
                              kv->page_size, kv->n_kv_heads, kv->head_dim, ops_kv_type_name(types[i]),
                              (unsigned long long)ops->caps->max_storage_buffer_range);
        VKLLM_TRY(ops_check_bytes(op, i ? "v_cache" : "k_cache", i ? v_cache : k_cache, bytes));
    }
    return ops_check_bytes(op, "page_table", page_table, 4ull * kv->n_seqs * kv->max_pages_per_seq);
}

typedef struct kv_write_push {
    uint32_t n_tokens, n_kv_heads, head_dim4, page_shift, n_pages, n_seqs, max_pages_per_seq;
} kv_write_push;

vkllm_status ops_kv_write(ops_context *ops, vkr_sequence *seq, vkr_range k_new, vkr_range v_new,
                          vkr_range tokens, vkr_range page_table, vkr_range k_cache, vkr_range v_cache,
                          uint32_t n_tokens, const ops_kv_layout *kv)
{
    if (!ops_kv_plain(kv))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "kv_write: a K cache of %s with a V cache of %s: only F32 or F16 "
                          "caches are written apart from the Q/K/V store", ops_kv_type_name(kv->k_type),
                          ops_kv_type_name(kv->v_type));
    const char *name = kv->k_type == OPS_KV_F16 ? SHADER(kv_write_f16) : SHADER(kv_write_f32);
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
