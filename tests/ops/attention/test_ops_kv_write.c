/* ops_kv_write against a host model of the paged cache: odd head counts, positions crossing pages,
 * shuffled page tables, interleaved sequences; F32 compared bit for bit, F16 as round-to-nearest-even. */
#include <stdio.h>
#include <stdlib.h>

#include "ref_attention.h"

typedef struct kv_case {
    uint32_t n_kv_heads, head_dim, page_size, n_seqs, max_pages_per_seq;
    uint32_t n_tokens;
    /* token i: seq = i % n_seqs, pos = first_pos[seq] + i / n_seqs */
    uint32_t first_pos[3];
} kv_case;

static void run_case(const kv_case *c, bool f16)
{
    th_rng rng = {c->n_kv_heads * 1000003ull + c->head_dim * 7919ull + c->n_tokens + f16};
    ops_kv_layout kv = {.n_pages = c->n_seqs * c->max_pages_per_seq + 3,
                        .n_kv_heads = c->n_kv_heads,
                        .head_dim = c->head_dim,
                        .page_size = c->page_size,
                        .n_seqs = c->n_seqs,
                        .max_pages_per_seq = c->max_pages_per_seq,
                        .k_type = f16 ? OPS_KV_F16 : OPS_KV_F32, .v_type = f16 ? OPS_KV_F16 : OPS_KV_F32};
    size_t row = (size_t)c->n_kv_heads * c->head_dim;
    size_t cache_bytes = ops_kv_cache_bytes(&kv, kv.k_type);
    int32_t *table = malloc(sizeof *table * c->n_seqs * c->max_pages_per_seq);
    int32_t *tokens = malloc(sizeof *tokens * 2 * c->n_tokens);
    float *k_new = malloc(sizeof *k_new * row * c->n_tokens), *v_new = malloc(sizeof *v_new * row * c->n_tokens);
    uint8_t *k_want = malloc(cache_bytes), *v_want = malloc(cache_bytes);
    uint8_t *k_got = malloc(cache_bytes), *v_got = malloc(cache_bytes);
    assert_true(table && tokens && k_new && v_new && k_want && v_want && k_got && v_got);

    ref_shuffled_page_table(&rng, &kv, table);
    for (size_t i = 0; i < cache_bytes; i++) {   /* old contents that must survive where nothing is written */
        k_want[i] = (uint8_t)th_next(&rng);
        v_want[i] = (uint8_t)th_next(&rng);
    }
    vkr_buffer k_cache = th_upload(k_want, cache_bytes), v_cache = th_upload(v_want, cache_bytes);
    th_fill_uniform(&rng, k_new, row * c->n_tokens, -4, 4);
    th_fill_uniform(&rng, v_new, row * c->n_tokens, -4, 4);
    for (uint32_t t = 0; t < c->n_tokens; t++) {
        uint32_t s = t % c->n_seqs, pos = c->first_pos[s] + t / c->n_seqs;
        tokens[2 * t] = (int32_t)s;
        tokens[2 * t + 1] = (int32_t)pos;
        ref_kv_store(&kv, table, k_want, s, pos, k_new + t * row);
        ref_kv_store(&kv, table, v_want, s, pos, v_new + t * row);
    }

    vkr_buffer b_k = th_upload(k_new, sizeof(float) * row * c->n_tokens);
    vkr_buffer b_v = th_upload(v_new, sizeof(float) * row * c->n_tokens);
    vkr_buffer b_tokens = th_upload(tokens, sizeof(int32_t) * 2 * c->n_tokens);
    vkr_buffer b_table = th_upload(table, sizeof(int32_t) * c->n_seqs * c->max_pages_per_seq);
    vkr_sequence *seq = th_begin();
    th_check_status(ops_kv_write(th_ops(), seq, vkr_whole(&b_k), vkr_whole(&b_v), vkr_whole(&b_tokens),
                                 vkr_whole(&b_table), vkr_whole(&k_cache), vkr_whole(&v_cache), c->n_tokens, &kv),
                    "ops_kv_write");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    th_download(&k_cache, k_got, cache_bytes);
    th_download(&v_cache, v_got, cache_bytes);
    printf("kv_write %s n_tokens %u n_kv_heads %u head_dim %u page_size %u n_seqs %u\n", f16 ? "f16" : "f32",
           c->n_tokens, c->n_kv_heads, c->head_dim, c->page_size, c->n_seqs);
    assert_memory_equal(k_got, k_want, cache_bytes);
    assert_memory_equal(v_got, v_want, cache_bytes);

    vkr_sequence_destroy(seq);
    th_free(&b_k);
    th_free(&b_v);
    th_free(&b_tokens);
    th_free(&b_table);
    th_free(&k_cache);
    th_free(&v_cache);
    free(table);
    free(tokens);
    free(k_new);
    free(v_new);
    free(k_want);
    free(v_want);
    free(k_got);
    free(v_got);
}

static const kv_case cases[] = {
    /* kv heads, head_dim, page_size, seqs, pages per seq, tokens, first positions */
    {1, 8, 16, 1, 1, 1, {0}},
    {3, 48, 16, 1, 4, 37, {5}},            /* a prompt chunk crossing three page boundaries */
    {5, 16, 4, 2, 16, 40, {10, 31}},       /* two sequences interleaved token by token, small pages */
    {7, 80, 8, 3, 8, 23, {0, 17, 40}},     /* three sequences, odd head count */
    {8, 128, 32, 1, 12, 300, {70}},        /* enough invocations for many workgroups */
};

static void test_kv_write_f32(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i], false);
}

static void test_kv_write_f16(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i], true);
}

static void test_kv_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer buf = th_alloc(4096);
    vkr_range r = vkr_whole(&buf);
    vkr_sequence *seq = th_begin();
    ops_kv_layout kv = {.n_pages = 2, .n_kv_heads = 2, .head_dim = 8, .page_size = 16, .n_seqs = 1,
                        .max_pages_per_seq = 2};
    th_check_status(ops_kv_write(o, seq, r, r, r, r, r, r, 4, &kv), "a valid shape");
    ops_kv_layout bad = kv;
    bad.head_dim = 6;   /* not a multiple of 4 */
    assert_int_equal(ops_kv_write(o, seq, r, r, r, r, r, r, 4, &bad), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "head_dim"));
    bad = kv;
    bad.page_size = 12;   /* not a power of two */
    assert_int_equal(ops_kv_write(o, seq, r, r, r, r, r, r, 4, &bad), VKLLM_ERROR_INVALID_ARGUMENT);
    bad = kv;
    bad.n_pages = 64;   /* 64 pages x 2 x 16 x 8 x 4 bytes: more than the buffer holds */
    assert_int_equal(ops_kv_write(o, seq, r, r, r, r, r, r, 4, &bad), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "k_cache"));
    bad = kv;
    bad.n_pages = 1u << 24;   /* a layer's cache above maxStorageBufferRange */
    bad.head_dim = 256;
    assert_int_equal(ops_kv_write(o, seq, r, r, r, r, r, r, 4, &bad), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_last_error(), "maxStorageBufferRange"));
    assert_int_equal(ops_kv_write(o, seq, r, r, r, r, r, r, 0, &kv), VKLLM_ERROR_INVALID_ARGUMENT);
    bad = kv;
    bad.k_type = OPS_KV_Q8_0;   /* quantized caches are written by the Q/K/V store only */
    assert_int_equal(ops_kv_write(o, seq, r, r, r, r, r, r, 4, &bad), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_last_error(), "Q/K/V store"));
    th_end_and_free(seq);
    th_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_write_f32),
        cmocka_unit_test(test_kv_write_f16),
        cmocka_unit_test(test_kv_bad_shapes),
    };
    return TH_RUN("ops_kv", tests);
}
