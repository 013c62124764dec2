/* Quantize-on-write of the Q/K/V store (shaders/qkv_store_blocks.comp): the bytes a cache with a Q8_0 or Q4_0 side
 * holds after ops_qkv_project equal the CPU quantizer's (quant/, ggml's bytes) on the same rows, rearranged as
 * kv_cache.h lays them out; an F16 side beside it equals the CPU's rounding.  The projection is made exact (an F32
 * identity matrix, no RoPE, no bias) so that both sides quantize the very same floats: any difference is the
 * quantizer's.  Every head size, GQA, two sequences on shuffled pages, with and without the Hadamard rotation of
 * keys (and queries); RoPE through the quantized store is held to the C reference model by test_model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/matmul/matmul_fused.h"
#include "quant/quant.h"
#include "ref_attention.h"

typedef struct store_case {
    uint32_t n_head, n_head_kv, head_dim;
} store_case;

static void check_store(const store_case *c, ops_kv_type k_type, ops_kv_type v_type, bool rotate)
{
    th_rng rng = {c->head_dim * 1009ull + k_type * 31ull + v_type};
    const uint32_t n = 5; /* tokens: 3 of sequence 0, 2 of sequence 1, positions scattered over pages */
    uint32_t q_rows = c->n_head * c->head_dim, kv_rows = c->n_head_kv * c->head_dim, rows = q_rows + 2 * kv_rows;
    float *w = calloc((size_t)rows * rows, sizeof *w), *x = malloc(sizeof *x * n * rows);
    const void **row_ptrs = malloc(sizeof *row_ptrs * rows);
    assert_true(w && x && row_ptrs);
    for (uint32_t r = 0; r < rows; r++) {
        w[(size_t)r * rows + r] = 1.0f;
        row_ptrs[r] = w + (size_t)r * rows;
    }
    for (size_t i = 0; i < (size_t)n * rows; i++) x[i] = 2.0f * th_normal(&rng);
    ops_weight *stack;
    th_check_status(ops_weight_create_rows(th_ops(), QUANT_F32, rows, rows, row_ptrs, &stack), "identity");

    ops_kv_layout kv = {.n_kv_heads = c->n_head_kv, .head_dim = c->head_dim, .page_size = 4, .n_seqs = 2,
                        .max_pages_per_seq = 8, .k_type = k_type, .v_type = v_type, .rotate_k = rotate};
    kv.n_pages = kv.n_seqs * kv.max_pages_per_seq + 1;
    int32_t table[16], tokens[2 * 5] = {0, 3, 1, 9, 0, 4, 0, 17, 1, 30};
    ref_shuffled_page_table(&rng, &kv, table);
    size_t k_bytes = ops_kv_cache_bytes(&kv, k_type), v_bytes = ops_kv_cache_bytes(&kv, v_type);
    uint8_t *k_want = calloc(1, k_bytes), *v_want = calloc(1, v_bytes), *k_got = malloc(k_bytes), *v_got = malloc(v_bytes);
    float *q_got = malloc(sizeof *q_got * n * q_rows);
    assert_true(k_want && v_want && k_got && v_got && q_got);
    /* With the rotation, Q and K as the C reference rotates them. */
    float *expect = malloc(sizeof *expect * n * rows);
    assert_non_null(expect);
    memcpy(expect, x, sizeof *x * n * rows);
    for (uint32_t t = 0; t < n && rotate; t++) {
        ref_hadamard_segments(expect + (size_t)t * rows, q_rows, ref_rotation_segment(c->head_dim));
        ref_hadamard_segments(expect + (size_t)t * rows + q_rows, kv_rows, ref_rotation_segment(c->head_dim));
    }
    for (uint32_t t = 0; t < n; t++) {
        const float *row = expect + (size_t)t * rows;
        ref_kv_store_typed(&kv, k_type, table, k_want, (uint32_t)tokens[2 * t], (uint32_t)tokens[2 * t + 1],
                           row + q_rows, NULL);
        ref_kv_store_typed(&kv, v_type, table, v_want, (uint32_t)tokens[2 * t], (uint32_t)tokens[2 * t + 1],
                           row + q_rows + kv_rows, NULL);
    }

    vkr_buffer b_x = th_upload(x, sizeof *x * n * rows), b_tokens = th_upload(tokens, sizeof tokens);
    vkr_buffer b_table = th_upload(table, sizeof table), b_q = th_alloc(sizeof *q_got * n * q_rows);
    vkr_buffer b_scratch = th_alloc(4ull * n * rows), b_k = th_alloc(k_bytes), b_v = th_alloc(v_bytes);
    th_check_status(vkr_fill(th_device(), &b_k, 0, k_bytes, 0), "clear k");
    th_check_status(vkr_fill(th_device(), &b_v, 0, v_bytes, 0), "clear v");
    ops_qkv qkv = {.stacked = stack, .n_head = c->n_head, .n_head_kv = c->n_head_kv, .head_dim = c->head_dim,
                   .n_rot = 0, .freq_base = 10000.0f, .freq_scale = 1.0f};
    ops_qkv_dest dest = {.q = vkr_whole(&b_q), .tokens = vkr_whole(&b_tokens), .page_table = vkr_whole(&b_table),
                         .k_cache = vkr_whole(&b_k), .v_cache = vkr_whole(&b_v), .kv = &kv,
                         .scratch = vkr_whole(&b_scratch)};
    vkr_sequence *seq = th_begin();
    th_check_status(ops_qkv_project(th_ops(), seq, &qkv, vkr_whole(&b_x), n, &dest), "ops_qkv_project");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    vkr_sequence_destroy(seq);
    th_download(&b_k, k_got, k_bytes);
    th_download(&b_v, v_got, v_bytes);
    th_download(&b_q, q_got, sizeof *q_got * n * q_rows);
    printf("qkv store heads %u/%u x %u, K %s%s (%zu bytes), V %s (%zu bytes)\n", c->n_head, c->n_head_kv, c->head_dim,
           ops_kv_type_name(k_type), rotate ? " rotated" : "", k_bytes, ops_kv_type_name(v_type), v_bytes);
    for (uint32_t t = 0; t < n; t++)
        assert_memory_equal(q_got + (size_t)t * q_rows, expect + (size_t)t * rows, 4 * q_rows);
    assert_memory_equal(k_got, k_want, k_bytes);
    assert_memory_equal(v_got, v_want, v_bytes);

    th_free(&b_x), th_free(&b_tokens), th_free(&b_table), th_free(&b_q), th_free(&b_scratch), th_free(&b_k);
    th_free(&b_v);
    ops_weight_free(th_ops(), stack);
    free(expect), free(w), free(x), free(row_ptrs), free(k_want), free(v_want), free(k_got), free(v_got), free(q_got);
}

static const store_case cases[] = {
    {8, 4, 8}, {4, 2, 16}, {2, 1, 64}, {4, 2, 80}, {2, 1, 96}, {2, 1, 128}, {2, 1, 256},
};

static void test_store_every_head_size(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_store(&cases[i], OPS_KV_Q8_0, OPS_KV_Q8_0, false);
        check_store(&cases[i], OPS_KV_Q4_0, OPS_KV_Q4_0, false);
        check_store(&cases[i], OPS_KV_Q4_0, OPS_KV_Q8_0, true); /* rotated keys: segments of 8, 16 or 32 */
    }
    check_store(&cases[2], OPS_KV_Q8_0, OPS_KV_Q8_0, true);
    check_store(&cases[2], OPS_KV_Q4_0, OPS_KV_Q4_0, true);
}

static void test_store_mixed_types(void **state)
{
    static const ops_kv_type types[3] = {OPS_KV_F16, OPS_KV_Q8_0, OPS_KV_Q4_0};
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < 3; v++)
            if (k != v) {
                check_store(&cases[0], types[k], types[v], false); /* blocks across heads */
                check_store(&cases[3], types[k], types[v], false); /* 80: a block across two heads, odd block count */
                if (k) check_store(&cases[2], types[k], types[v], true); /* every rotated variant */
            }
}

/* Sizes: 34 / 64 and 18 / 64 of F16 per value, plus one f16 scale of padding per token row of an odd count. */
static void test_cache_bytes(void **state)
{
    ops_kv_layout kv = {.n_pages = 3, .n_kv_heads = 4, .head_dim = 64, .page_size = 16, .n_seqs = 1,
                        .max_pages_per_seq = 3};
    uint64_t f16 = ops_kv_cache_bytes(&kv, OPS_KV_F16);
    assert_int_equal(f16, 3ull * 16 * 256 * 2);
    assert_int_equal(ops_kv_cache_bytes(&kv, OPS_KV_Q8_0) * 64, f16 * 34);
    assert_int_equal(ops_kv_cache_bytes(&kv, OPS_KV_Q4_0) * 64, f16 * 18);
    assert_int_equal(ops_kv_cache_bytes(&kv, OPS_KV_F32), 2 * f16);
    kv.k_type = OPS_KV_Q8_0, kv.v_type = OPS_KV_Q4_0;
    assert_int_equal(ops_kv_bytes_per_token(&kv), (256 + 4 * 4) + (128 + 4 * 4)); /* 8 blocks: 4 scale words */
    kv.n_kv_heads = 2, kv.head_dim = 80; /* 5 blocks: 3 scale words */
    assert_int_equal(ops_kv_bytes_per_token(&kv), (160 + 12) + (80 + 12));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_every_head_size),
        cmocka_unit_test(test_store_mixed_types),
        cmocka_unit_test(test_cache_bytes),
    };
    return TH_RUN("ops_kv_quant", tests);
}
