/* Flash attention over the paged cache against plain attention in double: head sizes 8..128, MHA and GQA,
 * contexts from 1 to past the split-K threshold, batches mixing a prompt chunk with decode tokens of other
 * sequences, F32 and F16 caches, and a recording replayed as the context grows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "matmul_check.h"
#include "ops/matmul/matmul.h"
#include "ref_attention.h"

/* NMSE bounds.  F16: the reference attends over the unrounded F32 keys and values, so the bound covers the
 * cache's rounding (relative 2^-11 per element). */
#define BOUND_F32 1e-10
#define BOUND_F16 1e-6
/* A cache with a quantized side: the reference attends over the very values the cache holds (the CPU
 * quantizer's blocks, dequantized; F16 sides rounded), so only the arithmetic differs, as with F32. */
#define BOUND_DECODED 1e-9

typedef struct attn_token {
    uint32_t seq, pos;
} attn_token;

typedef struct attn_case {
    uint32_t n_heads, n_kv_heads, head_dim;
    uint32_t n_tokens;
    attn_token tok[8];          /* tokens past the 8th continue the 8th's sequence at the next positions */
    uint32_t max_context;   /* 0: the largest pos + 1 */
} attn_case;

/* Device and host state of one case: a cache whose every position of every sequence holds data (so that
 * keys past a token's position must be masked, not merely absent). */
typedef struct attn_fixture {
    ops_attention_shape shape;
    uint32_t positions;        /* per sequence: max_pages_per_seq * page_size */
    float *k_hist, *v_hist;    /* [n_seqs][positions][n_kv_heads][head_dim] */
    float *q;                  /* [n_tokens][n_heads][head_dim] */
    int32_t *table, *tokens;
    float *center;             /* a centered K cache's mean key [n_kv_heads][center_pairs][2], or NULL */
    vkr_buffer b_q, b_k, b_v, b_table, b_tokens, b_scratch, b_out, b_center;
} attn_fixture;

static attn_token token_of(const attn_case *c, uint32_t t)
{
    if (t < 8) return c->tok[t];
    return (attn_token){c->tok[7].seq, c->tok[7].pos + (t - 7)};
}

/* The shape's one_sequence hint for the fixtures made from now on (test_token_passes). */
static bool fixture_one_sequence;
/* For fixtures with a quantized K made from now on: keys centered in this many RoPE pairs (0: none) on a random
 * mean key, and stored in the rotated basis (rotate_k) or not.  RoPE of base 10000, scale 0.75, all dims. */
static uint32_t fixture_center_pairs;
static bool fixture_rotate_k;
#define FIXTURE_FREQ_BASE 10000.0f
#define FIXTURE_FREQ_SCALE 0.75f

static void fixture_create_typed(attn_fixture *f, const attn_case *c, ops_kv_type k_type, ops_kv_type v_type,
                                 uint32_t page_size, th_rng *rng)
{
    memset(f, 0, sizeof *f);
    uint32_t n_seqs = 1, context = 1;
    for (uint32_t t = 0; t < c->n_tokens; t++) {
        attn_token k = token_of(c, t);
        if (k.seq + 1 > n_seqs) n_seqs = k.seq + 1;
        if (k.pos + 1 > context) context = k.pos + 1;
    }
    if (c->max_context > context) context = c->max_context;
    uint32_t pages = vkr_div_up(context, page_size);
    ops_attention_shape *s = &f->shape;
    *s = (ops_attention_shape){.n_tokens = c->n_tokens,
                               .n_heads = c->n_heads,
                               .max_context = context,
                               .scale = 1.0f / sqrtf((float)c->head_dim),
                               .kv = {.n_pages = n_seqs * pages + 2,
                                      .n_kv_heads = c->n_kv_heads,
                                      .head_dim = c->head_dim,
                                      .page_size = page_size,
                                      .n_seqs = n_seqs,
                                      .max_pages_per_seq = pages,
                                      .k_type = k_type,
                                      .v_type = v_type},
                               .one_sequence = fixture_one_sequence};
    const bool centered = fixture_center_pairs && ops_kv_type_quantized(k_type);
    if (centered) {
        s->kv.center_pairs = fixture_center_pairs;
        s->kv.rotate_k = fixture_rotate_k;
        s->n_rot = c->head_dim;
        s->freq_base = FIXTURE_FREQ_BASE;
        s->freq_scale = FIXTURE_FREQ_SCALE;
        f->center = malloc(sizeof(float) * 2 * c->n_kv_heads * fixture_center_pairs);
        assert_non_null(f->center);
        /* means several times the keys' spread, as the low-frequency pairs of a trained model's keys have */
        for (uint32_t i = 0; i < 2 * c->n_kv_heads * fixture_center_pairs; i++) f->center[i] = 6.0f * th_normal(rng);
    }
    f->positions = pages * page_size;
    size_t row = (size_t)c->n_kv_heads * c->head_dim, q_len = (size_t)c->n_tokens * c->n_heads * c->head_dim;
    size_t hist = (size_t)n_seqs * f->positions * row;
    f->k_hist = malloc(sizeof(float) * hist);
    f->v_hist = malloc(sizeof(float) * hist);
    f->q = malloc(sizeof(float) * q_len);
    f->table = malloc(sizeof(int32_t) * n_seqs * pages);
    f->tokens = malloc(sizeof(int32_t) * 2 * c->n_tokens);
    size_t k_bytes = ops_kv_cache_bytes(&s->kv, k_type), v_bytes = ops_kv_cache_bytes(&s->kv, v_type);
    void *k_cache = calloc(1, k_bytes), *v_cache = calloc(1, v_bytes);
    assert_true(f->k_hist && f->v_hist && f->q && f->table && f->tokens && k_cache && v_cache);

    for (size_t i = 0; i < hist; i++) f->k_hist[i] = th_normal(rng);
    for (size_t i = 0; i < hist; i++) f->v_hist[i] = th_normal(rng);
    for (size_t i = 0; i < q_len; i++) f->q[i] = th_normal(rng);
    ref_shuffled_page_table(rng, &s->kv, f->table);
    for (uint32_t q = 0; q < n_seqs; q++)
        for (uint32_t p = 0; p < f->positions; p++) {
            size_t at = ((size_t)q * f->positions + p) * row;
            /* Plain caches keep the unrounded history (their bounds cover F16's rounding); a quantized one's
             * history becomes what the cache holds. */
            bool plain = ops_kv_plain(&s->kv);
            if (centered) { /* a key k + c is stored as k; attention adds c back: the reference attends over both */
                float *c_row = malloc(sizeof(float) * row);
                assert_non_null(c_row);
                ref_key_center_row(f->center, fixture_center_pairs, c->n_kv_heads, c->head_dim, c->head_dim,
                                   FIXTURE_FREQ_BASE, FIXTURE_FREQ_SCALE, p,
                                   fixture_rotate_k ? ref_rotation_segment(c->head_dim) : 0, c_row);
                ref_kv_store_typed(&s->kv, k_type, f->table, k_cache, q, p, f->k_hist + at, f->k_hist + at);
                for (size_t i = 0; i < row; i++) f->k_hist[at + i] += c_row[i];
                free(c_row);
            } else
            ref_kv_store_typed(&s->kv, k_type, f->table, k_cache, q, p, f->k_hist + at, plain ? NULL : f->k_hist + at);
            ref_kv_store_typed(&s->kv, v_type, f->table, v_cache, q, p, f->v_hist + at, plain ? NULL : f->v_hist + at);
        }
    for (uint32_t t = 0; t < c->n_tokens; t++) {
        f->tokens[2 * t] = (int32_t)token_of(c, t).seq;
        f->tokens[2 * t + 1] = (int32_t)token_of(c, t).pos;
    }
    f->b_q = th_upload(f->q, sizeof(float) * q_len);
    f->b_k = th_upload(k_cache, k_bytes);
    f->b_v = th_upload(v_cache, v_bytes);
    f->b_table = th_upload(f->table, sizeof(int32_t) * n_seqs * pages);
    f->b_tokens = th_upload(f->tokens, sizeof(int32_t) * 2 * c->n_tokens);
    f->b_scratch = th_alloc(ops_attention_scratch_bytes(th_ops(), s));
    f->b_out = th_alloc(sizeof(float) * q_len);
    if (centered) {
        f->b_center = th_upload(f->center, sizeof(float) * 2 * c->n_kv_heads * fixture_center_pairs);
        s->k_center = vkr_whole(&f->b_center);
    }
    free(k_cache);
    free(v_cache);
}

static void fixture_create(attn_fixture *f, const attn_case *c, bool f16, uint32_t page_size, th_rng *rng)
{
    ops_kv_type t = f16 ? OPS_KV_F16 : OPS_KV_F32;
    fixture_create_typed(f, c, t, t, page_size, rng);
}

static void fixture_free(attn_fixture *f)
{
    vkr_buffer *b[] = {&f->b_q, &f->b_k, &f->b_v, &f->b_table, &f->b_tokens, &f->b_scratch, &f->b_out, &f->b_center};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) th_free(b[i]);
    free(f->center);
    free(f->k_hist);
    free(f->v_hist);
    free(f->q);
    free(f->table);
    free(f->tokens);
}

static vkllm_status record_attention(vkr_sequence *seq, attn_fixture *f)
{
    return ops_flash_attention(th_ops(), seq, vkr_whole(&f->b_q), vkr_whole(&f->b_k), vkr_whole(&f->b_v),
                               vkr_whole(&f->b_table), vkr_whole(&f->b_tokens), vkr_whole(&f->b_scratch),
                               vkr_whole(&f->b_out), &f->shape);
}

/* Reference output of every token, from the explicit histories. */
static void fixture_reference(const attn_fixture *f, float *out)
{
    const ops_attention_shape *s = &f->shape;
    size_t q_row = (size_t)s->n_heads * s->kv.head_dim, kv_row = (size_t)s->kv.n_kv_heads * s->kv.head_dim;
    for (uint32_t t = 0; t < s->n_tokens; t++) {
        size_t hist = (size_t)f->tokens[2 * t] * f->positions * kv_row;
        ref_attention(f->q + t * q_row, f->k_hist + hist, f->v_hist + hist, (uint32_t)f->tokens[2 * t + 1] + 1,
                      s->n_heads, s->kv.n_kv_heads, s->kv.head_dim, s->scale, out + t * q_row);
    }
}

static double check_output_bound(const attn_fixture *f, const char *what, double bound)
{
    size_t n = (size_t)f->shape.n_tokens * f->shape.n_heads * f->shape.kv.head_dim;
    float *want = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    assert_true(want && got);
    fixture_reference(f, want);
    th_download(&f->b_out, got, sizeof(float) * n);
    double nmse = th_nmse(want, got, n);
    printf("%s: nmse %.3g\n", what, nmse);
    th_assert_nmse(what, want, got, n, bound);
    free(want);
    free(got);
    return nmse;
}

static double check_output(const attn_fixture *f, const char *what)
{
    const ops_kv_layout *kv = &f->shape.kv;
    return check_output_bound(f, what, !ops_kv_plain(kv) ? BOUND_DECODED : kv->k_type == OPS_KV_F16 ? BOUND_F16 : BOUND_F32);
}

/* The random stream of case c's data. */
static th_rng case_rng(const attn_case *c, bool f16)
{
    return (th_rng){c->head_dim * 131ull + c->n_heads * 17ull + c->n_kv_heads + c->tok[0].pos * 7ull + f16};
}

/* Runs one case; returns the number of key splits it used. */
static uint32_t run_case(const attn_case *c, bool f16, uint32_t page_size)
{
    th_rng rng = case_rng(c, f16);
    attn_fixture f;
    fixture_create(&f, c, f16, page_size, &rng);
    vkr_sequence *seq = th_begin();
    th_check_status(record_attention(seq, &f), "ops_flash_attention");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    uint32_t splits = ops_attention_splits(th_ops(), &f.shape);
    char what[160];
    snprintf(what, sizeof what, "%s heads %u/%u head_dim %u page %u tokens %u (first pos %u) max_context %u splits %u",
             f16 ? "f16" : "f32", c->n_heads, c->n_kv_heads, c->head_dim, page_size, c->n_tokens, c->tok[0].pos,
             f.shape.max_context, splits);
    check_output(&f, what);
    vkr_sequence_destroy(seq);
    fixture_free(&f);
    return splits;
}

static void run_cases(const attn_case *cases, size_t n, uint32_t page_size)
{
    for (size_t i = 0; i < n; i++) {
        run_case(&cases[i], false, page_size);
        run_case(&cases[i], true, page_size);
    }
}

#define DECODE(seq, pos) 1, {{seq, pos}}

static void test_head_dims(void **state)
{
    static const attn_case cases[] = {
        {8, 8, 8, DECODE(0, 32)},   {4, 4, 16, DECODE(0, 32)},  {4, 4, 48, DECODE(0, 32)},
        {4, 4, 64, DECODE(0, 32)},  {3, 3, 80, DECODE(0, 32)},  {4, 4, 96, DECODE(0, 32)},
        {2, 2, 128, DECODE(0, 32)}, {2, 2, 128, 3, {{0, 40}, {0, 41}, {0, 42}}},
        /* an odd count of 4-value chunks: the _tx variants read an F16 side a chunk per fetch (RG32UI), not two */
        {4, 2, 12, DECODE(0, 32)},  {2, 2, 20, 3, {{0, 40}, {0, 41}, {0, 42}}},
    };
    run_cases(cases, sizeof cases / sizeof *cases, 16);
}

static void test_gqa(void **state)
{
    static const attn_case cases[] = {
        {8, 4, 64, DECODE(0, 256)}, {8, 2, 64, DECODE(0, 256)}, {8, 1, 64, DECODE(0, 256)},
        {12, 3, 16, 2, {{0, 100}, {0, 101}}}, {16, 2, 128, DECODE(0, 70)},
    };
    run_cases(cases, sizeof cases / sizeof *cases, 16);
}

static void test_contexts(void **state)
{
    static const attn_case cases[] = {
        {4, 2, 64, DECODE(0, 0)},   {4, 2, 64, DECODE(0, 6)},    {4, 2, 64, DECODE(0, 32)},
        {4, 2, 64, DECODE(0, 256)}, {4, 2, 64, DECODE(0, 1029)}, {8, 8, 64, DECODE(0, 2500)},
        {2, 1, 32, 3, {{0, 1200}, {0, 1201}, {0, 1202}}},
    };
    uint32_t most_splits = 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int f16 = 0; f16 < 2; f16++) {
            uint32_t splits = run_case(&cases[i], f16, 16);
            if (splits > most_splits) most_splits = splits;
        }
    /* The long contexts must have gone through split-K and the combine pass. */
    assert_true(most_splits > 1);
}

static void test_page_sizes(void **state)
{
    static const attn_case cases[] = {{4, 2, 64, DECODE(0, 300)}, {2, 2, 16, 2, {{0, 3}, {0, 77}}}};
    run_cases(cases, 2, 1);
    run_cases(cases, 2, 4);
    run_cases(cases, 2, 64);
}

static void test_mixed_batch(void **state)
{
    /* A 5-token prompt chunk of seq 0 at positions 10..14 between decode tokens of seqs 1 and 2; the second
     * case splits its keys, and most of its splits are empty for all but the token at 1500. */
    static const attn_case cases[] = {
        {8, 2, 64, 7, {{1, 40}, {0, 10}, {0, 11}, {0, 12}, {0, 13}, {0, 14}, {2, 3}}},
        {2, 2, 48, 7, {{2, 1500}, {0, 10}, {0, 11}, {0, 12}, {0, 13}, {0, 14}, {1, 0}}, 2048},
    };
    run_case(&cases[0], false, 16);
    run_case(&cases[0], true, 16);
    assert_true(run_case(&cases[1], false, 16) > 1);
    assert_true(run_case(&cases[1], true, 16) > 1);
}

/* Writes positions [from, to) of seq 0's history into the cache with ops_kv_write. */
static void write_history(attn_fixture *f, uint32_t from, uint32_t to)
{
    const ops_kv_layout *kv = &f->shape.kv;
    uint32_t n = to - from;
    size_t row = (size_t)kv->n_kv_heads * kv->head_dim;
    int32_t *tokens = malloc(sizeof(int32_t) * 2 * n);
    assert_non_null(tokens);
    for (uint32_t i = 0; i < n; i++) {
        tokens[2 * i] = 0;
        tokens[2 * i + 1] = (int32_t)(from + i);
    }
    vkr_buffer b_tokens = th_upload(tokens, sizeof(int32_t) * 2 * n);
    vkr_buffer b_k = th_upload(f->k_hist + from * row, sizeof(float) * n * row);
    vkr_buffer b_v = th_upload(f->v_hist + from * row, sizeof(float) * n * row);
    vkr_sequence *seq = th_begin();
    th_check_status(ops_kv_write(th_ops(), seq, vkr_whole(&b_k), vkr_whole(&b_v), vkr_whole(&b_tokens),
                                 vkr_whole(&f->b_table), vkr_whole(&f->b_k), vkr_whole(&f->b_v), n, kv),
                    "ops_kv_write");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    vkr_sequence_destroy(seq);
    th_free(&b_tokens);
    th_free(&b_k);
    th_free(&b_v);
    free(tokens);
}

/* Records once for max_context 512 (and 2048, where the keys are split and the splits past the context
 * stay empty) and replays at context 5, then at 300 after more keys are written and the token info
 * changes. */
static void test_replay(void **state)
{
    for (int i = 0; i < 4; i++) {
        bool f16 = i & 1;
        th_rng rng = {99 + (uint64_t)i};
        const attn_case c = {8, 2, 64, 2, {{0, 4}, {0, 4}}, i < 2 ? 512 : 2048};
        attn_fixture f;
        fixture_create(&f, &c, f16, 16, &rng);
        /* Start from a cache of zeros: only what ops_kv_write stores counts. */
        th_check_status(vkr_fill(th_device(), &f.b_k, 0, f.b_k.size, 0), "fill");
        th_check_status(vkr_fill(th_device(), &f.b_v, 0, f.b_v.size, 0), "fill");
        vkr_sequence *seq = th_begin();
        th_check_status(record_attention(seq, &f), "ops_flash_attention");
        th_check_status(vkr_sequence_end(seq), "end");
        printf("replay with max_context %u: %u split(s)\n", f.shape.max_context,
               ops_attention_splits(th_ops(), &f.shape));

        write_history(&f, 0, 5);
        th_check_status(vkr_sequence_run(seq), "run at context 5");
        check_output(&f, f16 ? "replay f16 at context 5 (both tokens at pos 4)" : "replay f32 at context 5");

        write_history(&f, 5, 300);
        f.tokens[1] = 299;   /* token 0 at the new end, token 1 a little behind */
        f.tokens[3] = 250;
        th_check_status(vkr_upload(th_device(), &f.b_tokens, 0, f.tokens, sizeof(int32_t) * 4), "upload tokens");
        th_check_status(vkr_sequence_run(seq), "run at context 300");
        check_output(&f, f16 ? "replay f16 at context 300 (pos 299 and 250)" : "replay f32 at context 300");
        vkr_sequence_destroy(seq);
        fixture_free(&f);
    }
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Informational: one decode token, 8 heads x 64, context 512 (no assertion on the time). */
static void test_decode_time(void **state)
{
    for (int f16 = 0; f16 < 2; f16++) {
        th_rng rng = {7};
        const attn_case c = {8, 8, 64, DECODE(0, 511)};
        attn_fixture f;
        fixture_create(&f, &c, f16, 16, &rng);
        vkr_sequence *seq = th_begin();
        th_check_status(record_attention(seq, &f), "ops_flash_attention");
        th_check_status(vkr_sequence_end(seq), "end");
        th_check_status(vkr_sequence_run(seq), "warm-up");
        enum { RUNS = 20 };
        double start = now_us();
        for (int i = 0; i < RUNS; i++) th_check_status(vkr_sequence_run(seq), "run");
        printf("decode attention, %s cache, 8 heads x 64, context 512, %u dispatch(es): %.0f us per run "
               "(submit and wait included)\n",
               f16 ? "F16" : "F32", vkr_sequence_dispatch_count(seq), (now_us() - start) / RUNS);
        check_output(&f, "decode timing case");
        vkr_sequence_destroy(seq);
        fixture_free(&f);
    }
}

/* A cache with a quantized K or V: flash_attn_k*_v* against the reference over the dequantized blocks, every
 * head size (8 and 16 with blocks across heads, 80 with a block across two heads), GQA, three sequences on
 * shuffled pages, a prompt chunk beside decode tokens, and split-K at a long context. */
static void run_typed(const attn_case *c, ops_kv_type k, ops_kv_type v)
{
    th_rng rng = {c->head_dim * 31ull + k * 7ull + v};
    attn_fixture f;
    fixture_create_typed(&f, c, k, v, 16, &rng);
    vkr_sequence *seq = th_begin();
    th_check_status(record_attention(seq, &f), "ops_flash_attention");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    char what[200];
    snprintf(what, sizeof what, "K %s%s V %s heads %u/%u head_dim %u tokens %u splits %u%s", ops_kv_type_name(k),
             f.shape.kv.rotate_k ? " rotated" : "", ops_kv_type_name(v), c->n_heads, c->n_kv_heads, c->head_dim,
             c->n_tokens, ops_attention_splits(th_ops(), &f.shape), f.shape.kv.center_pairs ? " centered" : "");
    if (f.shape.kv.center_pairs)
        snprintf(what + strlen(what), sizeof what - strlen(what), " (%u pairs)", f.shape.kv.center_pairs);
    check_output(&f, what);
    vkr_sequence_destroy(seq);
    fixture_free(&f);
}

/* run_typed with the keys centered in pairs RoPE pairs, in the rotated basis or not.  Not in the _sg16 rerun: the
 * centering adds no subgroup operation, and its unrolled code takes LLVM long at 16-wide vectors. */
static void run_centered(const attn_case *c, ops_kv_type k, ops_kv_type v, uint32_t pairs, bool rotate)
{
    if (th_subgroup_rerun()) return;
    fixture_center_pairs = pairs;
    fixture_rotate_k = rotate;
    run_typed(c, k, v);
    fixture_center_pairs = 0;
    fixture_rotate_k = false;
}

static void test_quantized_cache(void **state)
{
    static const attn_case by_head[] = {
        {8, 4, 8, 4, {{0, 40}, {1, 5}, {0, 41}, {2, 17}}},  {4, 2, 16, 3, {{0, 33}, {1, 2}, {0, 34}}},
        {4, 1, 64, 3, {{0, 33}, {1, 2}, {2, 20}}},          {4, 2, 80, 2, {{0, 18}, {1, 31}}},
        {2, 1, 96, 2, {{0, 18}, {1, 31}}},                  {4, 2, 128, 2, {{0, 18}, {1, 31}}},
        {2, 1, 256, 2, {{0, 18}, {1, 31}}},
    };
    static const ops_kv_type types[3] = {OPS_KV_F16, OPS_KV_Q8_0, OPS_KV_Q4_0};
    for (size_t i = 0; i < sizeof by_head / sizeof *by_head; i++) {
        run_typed(&by_head[i], OPS_KV_Q8_0, OPS_KV_Q8_0);
        run_typed(&by_head[i], OPS_KV_Q4_0, OPS_KV_Q4_0);
    }
    /* Every mix, with blocks inside a head (64) and across heads (8). */
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < 3; v++)
            if (k || v) {
                run_typed(&by_head[2], types[k], types[v]);
                run_typed(&by_head[0], types[k], types[v]);
            }
    /* Split-K over a long context, a prompt chunk and a decode token of another sequence. */
    const attn_case long_ctx = {4, 2, 64, 3, {{0, 1200}, {0, 1201}, {1, 7}}};
    run_typed(&long_ctx, OPS_KV_Q8_0, OPS_KV_Q4_0);
    run_typed(&long_ctx, OPS_KV_Q4_0, OPS_KV_Q8_0);
    /* Centered keys (the mean key added back to each score): every head size, rotated (segments of 8, 16, 32) or
     * not, 1 to 4 pairs, every V type, split-K. */
    for (size_t i = 0; i < sizeof by_head / sizeof *by_head; i++) {
        run_centered(&by_head[i], OPS_KV_Q8_0, OPS_KV_Q8_0, by_head[i].head_dim < 16 ? 4 : 3, true);
        run_centered(&by_head[i], OPS_KV_Q4_0, types[i % 3], 1 + (uint32_t)i % 2, false);
    }
    run_centered(&long_ctx, OPS_KV_Q8_0, OPS_KV_Q4_0, 2, true);
    run_centered(&long_ctx, OPS_KV_Q4_0, OPS_KV_F16, 4, false);
}

static void test_quantized_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer buf = th_alloc(1 << 16);
    vkr_range r = vkr_whole(&buf);
    vkr_sequence *seq = th_begin();
    ops_attention_shape s = {.n_tokens = 1, .n_heads = 2, .max_context = 32, .scale = 0.125f,
                             .kv = {.n_pages = 2, .n_kv_heads = 1, .head_dim = 80, .page_size = 16, .n_seqs = 1,
                                    .max_pages_per_seq = 2, .k_type = OPS_KV_Q4_0, .v_type = OPS_KV_F16}};
    /* One kv head of 80: a row of 80 values cannot be cut into blocks of 32. */
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &s), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_last_error(), "row of 1 kv heads x 80 dims = 80 values into blocks of 32"));
    s.kv.n_kv_heads = 2;
    s.kv.v_type = OPS_KV_F32; /* F32 only with F32 */
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &s), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_last_error(), "F32 goes with F32 only"));
    /* Centered keys: only in a quantized K cache, at most head_dim / 2 pairs, within the rotated dims, with a mean
     * key of n_kv_heads x pairs (x, y) */
    s.kv.v_type = OPS_KV_F16;
    s.kv.k_type = OPS_KV_F16;
    s.kv.center_pairs = 2;
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &s), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_last_error(), "2 centered RoPE pairs of keys: for a quantized K cache (not f16)"));
    s.kv.k_type = OPS_KV_Q8_0;
    s.kv.center_pairs = 41;
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &s), VKLLM_ERROR_UNSUPPORTED);
    s.kv.center_pairs = 4;
    s.n_rot = 6;
    s.freq_base = 10000.0f;
    s.freq_scale = 1.0f;
    s.k_center = r;
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "4 centered RoPE pairs of 6 rotated dims of 80"));
    s.n_rot = 80;
    s.k_center = vkr_sub(&buf, 0, 16); /* 2 kv heads x 4 pairs need 64 bytes */
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &s), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "k_center holds 16 bytes, the shape needs 64"));
    s.kv.center_pairs = 0;
    /* The cooperative-matrix prompt attention reads F32 / F16 tiles: never selected for a quantized side, even for
     * a prompt long enough to take it (the plain F16 case depends on the device: test_coopmat). */
    s.n_tokens = 512;
    s.max_context = 512;
    s.kv.n_pages = 64;
    s.kv.max_pages_per_seq = 32;
    s.kv.n_kv_heads = 2;
    s.kv.head_dim = 64;
    const ops_kv_type quantized[3][2] = {{OPS_KV_Q4_0, OPS_KV_F16}, {OPS_KV_F16, OPS_KV_Q8_0}, {OPS_KV_Q8_0, OPS_KV_Q4_0}};
    for (int i = 0; i < 3; i++) {
        s.kv.k_type = quantized[i][0];
        s.kv.v_type = quantized[i][1];
        assert_false(ops_attention_uses_coopmat(o, &s));
    }
    th_end_and_free(seq);
    th_free(&buf);
}

/* The output also quantized for the integer mat-vec (ops_flash_attention_q8): the same floats as the plain op,
 * and bit for bit the C quantizer's blocks of them, whether the combine pass quantizes (split keys, heads of 32k)
 * or a quantize_q8 dispatch does (no split; heads of 16). */
static void run_q8_case(const attn_case *c, bool f16, uint64_t seed)
{
    th_rng rng = {seed};
    attn_fixture f;
    fixture_create(&f, c, f16, 16, &rng);
    const ops_attention_shape *s = &f.shape;
    uint32_t cols = s->n_heads * s->kv.head_dim;
    size_t n = (size_t)s->n_tokens * cols, q8_bytes = ops_q8_bytes(s->n_tokens, cols);
    vkr_buffer b_q8 = th_alloc(q8_bytes);
    vkr_sequence *seq = th_begin();
    th_check_status(ops_flash_attention_q8(th_ops(), seq, vkr_whole(&f.b_q), vkr_whole(&f.b_k), vkr_whole(&f.b_v),
                                           vkr_whole(&f.b_table), vkr_whole(&f.b_tokens), vkr_whole(&f.b_scratch),
                                           vkr_whole(&f.b_out), vkr_whole(&b_q8), s),
                    "ops_flash_attention_q8");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    char what[120];
    snprintf(what, sizeof what, "q8 output (%s): head_dim %u, %u tokens, %u splits", f16 ? "f16" : "f32",
             s->kv.head_dim, s->n_tokens, ops_attention_splits(th_ops(), s));
    check_output(&f, what);
    float *out = malloc(sizeof(float) * n);
    uint32_t *words = malloc(q8_bytes);
    assert_true(out && words);
    th_download(&f.b_out, out, sizeof(float) * n);
    th_download(&b_q8, words, q8_bytes);
    th_check_q8_mirror(out, words, s->n_tokens, cols, what);
    free(out);
    free(words);
    vkr_sequence_destroy(seq);
    th_free(&b_q8);
    fixture_free(&f);
}

static void test_q8_output(void **state)
{
    static const attn_case cases[] = {
        {4, 2, 64, DECODE(0, 1029)}, {4, 2, 64, 3, {{0, 1200}, {1, 700}, {0, 1201}}}, {4, 2, 64, DECODE(0, 6)},
        {4, 4, 16, DECODE(0, 1029)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_q8_case(&cases[i], true, 77 + i);
    run_q8_case(&cases[2], false, 80); /* F32 cache, one split: flash_attn_f32_q8 */
}

/* ---- the prompt attention on cooperative matrices (flash_attn_coopmat.comp), through its emulated variant ---- */

/* Its NMSE bound: Q, K, V and the probabilities are rounded to f16 (relative 2^-11 each) before the products. */
#define BOUND_COOPMAT 2e-5

static vkr_caps cm_caps; /* static: outlive a failed check */
static op_tuning cm_row;

/* The device's caps with emulated m x n x k matrices and the GPU tuning row `cls` (attention on matrices from
 * 16 tokens on).  Key tiles of 16, not the rows' 32, and for heads of 128 two subgroups: the emulated variant
 * keeps Q in shared memory too, and lavapipe has 32 KiB of it. */
static void use_coopmat(tuning_class cls, uint32_t m, uint32_t n, uint32_t k)
{
    ops_context *o = th_ops();
    cm_caps = *vkr_device_caps(th_device());
    cm_caps.coopmat = VKR_COOPMAT_EMULATED;
    cm_caps.coopmat_m = m, cm_caps.coopmat_n = n, cm_caps.coopmat_k = k;
    o->caps = &cm_caps;
    cm_row = *tuning_row(cls);
    cm_row.attn_cm_min_tokens = 16;
    cm_row.attn_cm_keys = 16;
    o->tuning = &cm_row;
}

static void restore_device(void)
{
    th_ops()->caps = vkr_device_caps(th_device());
    th_ops()->tuning = tuning_for(th_ops()->caps);
}

static void run_coopmat_case(const attn_case *c, bool f16, uint32_t page_size)
{
    uint32_t wg = cm_row.attn_cm_wg;
    bool emulated = th_ops()->caps->coopmat == VKR_COOPMAT_EMULATED;
    if (emulated && c->head_dim > 96) cm_row.attn_cm_wg = 2 * (cm_row.coopmat.subgroup ? cm_row.coopmat.subgroup : 32);
    th_rng rng = {c->head_dim * 7ull + c->n_tokens * 31ull + c->n_kv_heads + f16};
    attn_fixture f;
    fixture_create(&f, c, f16, page_size, &rng);
    assert_true(ops_attention_uses_coopmat(th_ops(), &f.shape));
    vkr_sequence *seq = th_begin();
    th_check_status(record_attention(seq, &f), "ops_flash_attention (coopmat)");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    char what[200];
    const vkr_caps *caps = th_ops()->caps;
    snprintf(what, sizeof what, "coopmat %s %s (row %s, %ux%ux%u) heads %u/%u head_dim %u page %u tokens %u from %u:%u",
             emulated ? "emulated" : "REAL", f16 ? "f16" : "f32", th_ops()->tuning->name, caps->coopmat_m,
             caps->coopmat_n, caps->coopmat_k,
             c->n_heads, c->n_kv_heads, c->head_dim, page_size, c->n_tokens, c->tok[0].seq, c->tok[0].pos);
    check_output_bound(&f, what, BOUND_COOPMAT);
    vkr_sequence_destroy(seq);
    fixture_free(&f);
    cm_row.attn_cm_wg = wg;
}

#define PROMPT(seq, pos) {{seq, pos}, {seq, pos + 1}, {seq, pos + 2}, {seq, pos + 3}, {seq, pos + 4}, \
                          {seq, pos + 5}, {seq, pos + 6}, {seq, pos + 7}}

static void test_coopmat(void **state)
{
    /* Partial row tiles (70 = 64 + 6 tokens; 17), partial key tiles, a prompt continuing a cached prefix,
     * GQA, head sizes 16..128, and a batch mixing decode tokens of two other sequences into a prompt chunk
     * (the workgroup then runs once per sequence). */
    static const attn_case cases[] = {
        {8, 2, 64, 70, PROMPT(0, 0)},
        {4, 4, 128, 40, PROMPT(0, 100)},
        {2, 1, 16, 17, PROMPT(0, 5)},
        {4, 2, 96, 50, {{1, 40}, {2, 3}, {0, 10}, {0, 11}, {0, 12}, {0, 13}, {0, 14}, {0, 15}}},
    };
    /* A device with real cooperative matrices (a GPU): its own variant and tuning row first. */
    const vkr_caps *real = vkr_device_caps(th_device());
    if (real->coopmat == VKR_COOPMAT_KHR || real->coopmat == VKR_COOPMAT_NV) {
        cm_row = *tuning_for(real);
        cm_row.attn_cm_min_tokens = 16;
        th_ops()->tuning = &cm_row;
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            run_coopmat_case(&cases[i], true, 16);
            run_coopmat_case(&cases[i], false, 16);
        }
        restore_device();
    }
    use_coopmat(TUNING_NVIDIA, 16, 16, 16);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_coopmat_case(&cases[i], true, 16);
        run_coopmat_case(&cases[i], false, i == 1 ? 1 : 16);
    }
    /* Other vendors' matrix sizes and subgroups (Intel 8x16x16, Apple 8x8x8, AMD wave64). */
    use_coopmat(TUNING_INTEL, 8, 16, 16);
    run_coopmat_case(&cases[0], true, 16);
    use_coopmat(TUNING_APPLE, 8, 8, 8);
    run_coopmat_case(&cases[3], true, 16);
    use_coopmat(TUNING_AMD_WAVE64, 16, 16, 16);
    run_coopmat_case(&cases[1], true, 16);
    /* Below attn_cm_min_tokens, or a head the matrices do not divide: flash_attn.comp. */
    static const attn_case small = {4, 4, 64, 3, {{0, 40}, {0, 41}, {0, 42}}};
    static const attn_case odd_head = {3, 3, 72, 20, PROMPT(0, 0)};
    use_coopmat(TUNING_NVIDIA, 16, 16, 16);
    attn_fixture f;
    th_rng rng = {1};
    fixture_create(&f, &small, true, 16, &rng);
    assert_false(ops_attention_uses_coopmat(th_ops(), &f.shape));
    fixture_free(&f);
    use_coopmat(TUNING_APPLE, 8, 8, 8);
    fixture_create(&f, &odd_head, true, 16, &rng);
    assert_true(ops_attention_uses_coopmat(th_ops(), &f.shape)); /* 72 = 9 x 8 */
    fixture_free(&f);
    use_coopmat(TUNING_NVIDIA, 16, 16, 16);
    fixture_create(&f, &odd_head, true, 16, &rng);
    assert_false(ops_attention_uses_coopmat(th_ops(), &f.shape)); /* 72 is not a multiple of 16... */
    run_case(&odd_head, true, 16);                                 /* ...and flash_attn.comp serves it */
    fixture_free(&f);
    restore_device();
}

static void test_attention_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer buf = th_alloc(1 << 16);
    vkr_range r = vkr_whole(&buf);
    vkr_sequence *seq = th_begin();
    ops_attention_shape s = {.n_tokens = 2, .n_heads = 4, .max_context = 32, .scale = 0.125f,
                             .kv = {.n_pages = 2, .n_kv_heads = 2, .head_dim = 64, .page_size = 16, .n_seqs = 1,
                                    .max_pages_per_seq = 2}};
    th_check_status(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &s), "a valid shape");
    ops_attention_shape bad = s;
    bad.n_heads = 5;   /* not a multiple of n_kv_heads */
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &bad), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "n_kv_heads"));
    bad = s;
    bad.kv.head_dim = 260;
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &bad), VKLLM_ERROR_INVALID_ARGUMENT);
    bad = s;
    bad.n_tokens = 200;   /* q and out too small */
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &bad), VKLLM_ERROR_INVALID_ARGUMENT);
    bad = s;
    bad.kv.n_pages = 1u << 26;   /* a layer's cache above maxStorageBufferRange */
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, r, r, &bad), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_last_error(), "maxStorageBufferRange"));
    bad = s;
    bad.max_context = 1 << 20;   /* needs a scratch buffer the empty range cannot be */
    bad.n_tokens = 1;
    vkr_range none = {0};
    assert_true(ops_attention_scratch_bytes(o, &bad) > 0);
    assert_int_equal(ops_flash_attention(o, seq, r, r, r, r, r, none, r, &bad), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "scratch"));
    th_end_and_free(seq);
    th_free(&buf);
}

/* Tree attention against a C reference: each tree row attends over the positions before the tree and over its
 * ancestors and itself (gathered into a contiguous history for ref_attention, in double); a row of another sequence
 * in the same batch (first = 0xffffffff) attends causally as usual.  Awkward shapes: trees of 1, 13 and 64 nodes
 * (both mask words) with random parents and several roots, starting at positions that are not page multiples,
 * head sizes 8 and 80, GQA, and a context long enough for split-K with few rows (the combine pass). */
static void run_tree_case(uint32_t n_heads, uint32_t n_kv, uint32_t head_dim, uint32_t first, uint32_t n_nodes,
                          uint32_t max_context, bool f16, uint64_t seed)
{
    th_rng rng = {seed};
    attn_case c = {n_heads, n_kv, head_dim, n_nodes + 1, {{1, first / 2 + 3}}, max_context};
    for (uint32_t t = 1; t < 8; t++) c.tok[t] = (attn_token){0, first + t - 1};
    attn_fixture f;
    fixture_create(&f, &c, f16, 16, &rng);
    /* rows: token 0 is the other sequence's; tokens 1..n_nodes the tree (token_of continues the 8th's positions) */
    int32_t parents[OPS_TREE_MAX_NODES];
    for (uint32_t i = 0; i < n_nodes; i++)
        parents[i] = i == 0 || th_next(&rng) % 7 == 0 ? -1 : (int32_t)(th_next(&rng) % i);
    uint32_t (*rows)[4] = calloc(n_nodes + 1, sizeof *rows);
    assert_non_null(rows);
    rows[0][0] = 0xffffffffu;
    th_check_status(ops_tree_rows(parents, n_nodes, first, rows + 1), "ops_tree_rows");
    vkr_buffer b_tree = th_upload(rows, 16ull * (n_nodes + 1));
    vkr_sequence *seq = th_begin();
    th_check_status(ops_flash_attention_tree(th_ops(), seq, vkr_whole(&f.b_q), vkr_whole(&f.b_k), vkr_whole(&f.b_v),
                                             vkr_whole(&f.b_table), vkr_whole(&f.b_tokens), vkr_whole(&b_tree),
                                             vkr_whole(&f.b_scratch), vkr_whole(&f.b_out), &f.shape),
                    "ops_flash_attention_tree");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    const ops_attention_shape *s = &f.shape;
    size_t q_row = (size_t)s->n_heads * head_dim, kv_row = (size_t)n_kv * head_dim, n = (n_nodes + 1) * q_row;
    float *want = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    float *k = malloc(sizeof(float) * f.positions * kv_row), *v = malloc(sizeof(float) * f.positions * kv_row);
    assert_true(want && got && k && v);
    for (uint32_t t = 0; t <= n_nodes; t++) {
        uint32_t sq = (uint32_t)f.tokens[2 * t], pos = (uint32_t)f.tokens[2 * t + 1], m = 0;
        const float *kh = f.k_hist + (size_t)sq * f.positions * kv_row, *vh = f.v_hist + (size_t)sq * f.positions * kv_row;
        for (uint32_t j = 0; j <= pos; j++) {
            if (t > 0 && j >= first) {
                uint32_t b = j - first;
                uint64_t mask = rows[t][1] | (uint64_t)rows[t][2] << 32;
                if (!(mask >> b & 1)) continue;
            }
            memcpy(k + (size_t)m * kv_row, kh + (size_t)j * kv_row, sizeof(float) * kv_row);
            memcpy(v + (size_t)m * kv_row, vh + (size_t)j * kv_row, sizeof(float) * kv_row);
            m++;
        }
        ref_attention(f.q + t * q_row, k, v, m, n_heads, n_kv, head_dim, s->scale, want + t * q_row);
    }
    th_download(&f.b_out, got, sizeof(float) * n);
    char what[160];
    snprintf(what, sizeof what, "tree %s heads %u/%u head_dim %u, %u nodes at %u, max_context %u, splits %u",
             f16 ? "f16" : "f32", n_heads, n_kv, head_dim, n_nodes, first, s->max_context,
             ops_attention_splits(th_ops(), s));
    printf("%s: nmse %.3g\n", what, th_nmse(want, got, n));
    th_assert_nmse(what, want, got, n, f16 ? BOUND_F16 : BOUND_F32);
    vkr_sequence_destroy(seq);
    th_free(&b_tree);
    fixture_free(&f);
    free(rows), free(want), free(got), free(k), free(v);
}

static void test_tree_mask(void **state)
{
    (void)state;
    for (int f16 = 0; f16 < 2; f16++) {
        run_tree_case(4, 2, 64, 37, 13, 0, f16, 1);
        run_tree_case(8, 8, 8, 5, 64, 0, f16, 2);
        run_tree_case(12, 3, 80, 100, 1, 0, f16, 3);
        run_tree_case(2, 1, 32, 1500, 29, 2048, f16, 4);
        run_tree_case(4, 4, 16, 0, 7, 0, f16, 5);
        run_tree_case(1, 1, 32, 1500, 2, 4096, f16, 6); /* few rows: split-K and the combine pass */
    }
    /* parents after their node, too many nodes, a quantized cache: refused */
    uint32_t rows[65][4];
    int32_t bad[3] = {-1, 2, 0}, many[65] = {-1};
    assert_int_equal(ops_tree_rows(bad, 3, 0, rows), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_tree_rows(many, 65, 0, rows), VKLLM_ERROR_INVALID_ARGUMENT);
    vkllm_clear_error();
}

/* The other reads of K and V: where the device's tuning reads them through texel buffers (lavapipe), the
 * storage-buffer variants, and the other way round, each variant once: F32 and F16 with split-K, every
 * quantized mix, the quantized output, the tree mask. */
static op_tuning flipped_row;

/* Whether the current tuning reads an F16 cache of a small decode case as texels (the _tx variants). */
static bool reads_texels_now(void)
{
    attn_fixture f;
    th_rng rng = {5};
    static const attn_case probe = {4, 2, 64, DECODE(0, 40)};
    fixture_create(&f, &probe, true, 16, &rng);
    bool texel = ops_attention_reads_texels(th_ops(), &f.shape.kv, vkr_whole(&f.b_q), vkr_whole(&f.b_k),
                                            vkr_whole(&f.b_v));
    fixture_free(&f);
    return texel;
}

static void test_other_reads(void **state)
{
    (void)state;
    ops_context *o = th_ops();
    flipped_row = *o->tuning;
    flipped_row.texel_loads = !flipped_row.texel_loads;
    o->tuning = &flipped_row;
    bool texel = reads_texels_now();
    printf("flash attention with texel_loads = %u: K and V read %s\n", flipped_row.texel_loads,
           texel ? "as texels (_tx variants)" : "as storage buffers");
    if (flipped_row.texel_loads && !texel) {
        printf("this device has no texel-buffer reads for the cache: the _tx variants cannot run here\n");
        o->tuning = tuning_for(o->caps);
        return;
    }
    assert_true(texel == (flipped_row.texel_loads != 0));
    static const attn_case cases[] = {
        {8, 8, 8, DECODE(0, 32)}, {3, 3, 80, DECODE(0, 32)}, {12, 3, 16, 2, {{0, 100}, {0, 101}}},
        {8, 2, 64, 7, {{1, 40}, {0, 10}, {0, 11}, {0, 12}, {0, 13}, {0, 14}, {2, 3}}},
    };
    run_cases(cases, sizeof cases / sizeof *cases, 16);
    static const attn_case long_ctx = {2, 1, 32, 3, {{0, 1200}, {0, 1201}, {0, 1202}}};
    assert_true(run_case(&long_ctx, false, 16) > 1);
    assert_true(run_case(&long_ctx, true, 16) > 1);
    static const attn_case typed = {8, 4, 8, 4, {{0, 40}, {1, 5}, {0, 41}, {2, 17}}};
    static const attn_case typed64 = {4, 1, 64, 3, {{0, 33}, {1, 2}, {2, 20}}};
    static const ops_kv_type types[3] = {OPS_KV_F16, OPS_KV_Q8_0, OPS_KV_Q4_0};
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < 3; v++)
            if (k || v) run_typed(k == v ? &typed64 : &typed, types[k], types[v]);
    run_centered(&typed64, OPS_KV_Q8_0, OPS_KV_Q4_0, 4, true);
    run_centered(&typed, OPS_KV_Q4_0, OPS_KV_F16, 2, true);
    static const attn_case q8_cases[] = {{4, 2, 64, DECODE(0, 6)}, {4, 2, 64, DECODE(0, 1029)}};
    run_q8_case(&q8_cases[0], true, 90);
    run_q8_case(&q8_cases[0], false, 91);
    run_q8_case(&q8_cases[1], true, 92);
    for (int f16 = 0; f16 < 2; f16++) {
        run_tree_case(4, 2, 64, 37, 13, 0, f16, 11);
        run_tree_case(1, 1, 32, 1500, 2, 4096, f16, 12);
    }
    o->tuning = tuning_for(o->caps);
}

/* Workgroups other than the tuning's: smaller than a subgroup (4 lanes: a part of lavapipe's 8 or 16: the _tx
 * variants' subgroup merge over a partial subgroup), and of several subgroups (32: the storage-buffer variants
 * then, whatever the tuning's texel_loads, since the _tx variants merge in one subgroup only).  Each size runs decode
 * (a head shorter than the workgroup), a mixed batch, split-K, the quantized output, a tree and a quantized cache. */
static op_tuning wg_row;

static void test_workgroup_sizes(void **state)
{
    (void)state;
    ops_context *o = th_ops();
    static const uint32_t sizes[] = {4, 32};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        wg_row = *tuning_for(o->caps);
        wg_row.attn_wg = sizes[i];
        o->tuning = &wg_row;
        bool texel = reads_texels_now();
        printf("attn_wg %u (subgroups of %u..%u): %s\n", sizes[i], o->caps->min_subgroup_size,
               o->caps->max_subgroup_size, texel ? "_tx variants" : "storage-buffer variants");
        if (!ops_one_subgroup(o, sizes[i])) assert_false(texel);
        if (!texel && th_subgroup_rerun()) continue; /* the storage-buffer variants use no subgroup operations */
        static const attn_case cases[] = {
            {8, 8, 8, DECODE(0, 32)},
            {8, 2, 64, 7, {{1, 40}, {0, 10}, {0, 11}, {0, 12}, {0, 13}, {0, 14}, {2, 3}}},
        };
        for (size_t j = 0; j < sizeof cases / sizeof *cases; j++) run_case(&cases[j], true, 16);
        static const attn_case long_ctx = {2, 1, 32, 3, {{0, 1200}, {0, 1201}, {0, 1202}}};
        assert_true(run_case(&long_ctx, false, 16) > 1);
        static const attn_case q8_case = {4, 2, 64, DECODE(0, 6)};
        run_q8_case(&q8_case, true, 93 + i);
        run_tree_case(4, 2, 64, 37, 13, 0, true, 14 + i);
        static const attn_case typed = {4, 1, 64, 3, {{0, 33}, {1, 2}, {2, 20}}};
        run_typed(&typed, OPS_KV_Q8_0, OPS_KV_Q4_0);
        run_centered(&typed, OPS_KV_Q8_0, OPS_KV_Q4_0, 4, true);
    }
    o->tuning = tuning_for(o->caps);
}

/* Heads per workgroup (the tuning's attn_wgs_per_worker with ops->cpu_workers) and heads per pass over the keys
 * (attn_gqa_values): a token's heads taken in turn by one workgroup, all of them or groups with a shorter last one
 * that crosses KV heads, and a GQA group's heads attended in one pass, give every row the bits of one head per
 * workgroup and pass; the quantized output, a tree and a quantized cache also run grouped against the reference. */
static op_tuning hpw_row;
static uint32_t token_values; /* the grouped runs' attn_token_values (test_token_passes) */
static int texel_loads = -1;  /* the runs' texel_loads where >= 0 (test_token_passes), else the row's */

/* How a grouped run spread its rows: heads per workgroup, heads per pass, tokens per workgroup, key splits. */
typedef struct grouping {
    uint32_t hpw, pass, tp, splits;
} grouping;

/* The output of case c (its data as run_case's) at attn_wgs_per_worker per_worker with `workers` CPU threads and
 * attn_gqa_values gqa_values; returns how it spread the rows. */
static grouping grouped_output(const attn_case *c, bool f16, uint32_t per_worker, uint32_t workers,
                               uint32_t gqa_values, float *out)
{
    ops_context *o = th_ops();
    hpw_row = *tuning_for(o->caps);
    hpw_row.attn_wgs_per_worker = per_worker;
    hpw_row.attn_gqa_values = gqa_values;
    hpw_row.attn_token_values = token_values;
    if (texel_loads >= 0) hpw_row.texel_loads = (uint32_t)texel_loads;
    o->tuning = &hpw_row;
    o->cpu_workers = workers;
    th_rng rng = case_rng(c, f16);
    attn_fixture f;
    fixture_create(&f, c, f16, 16, &rng);
    vkr_sequence *seq = th_begin();
    th_check_status(record_attention(seq, &f), "ops_flash_attention");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    const grouping g = {ops_attention_heads_per_workgroup(o, &f.shape), ops_attention_gqa_pass(o, &f.shape),
                        ops_attention_token_pass(o, &f.shape), ops_attention_splits(o, &f.shape)};
    th_download(&f.b_out, out, sizeof(float) * c->n_tokens * c->n_heads * c->head_dim);
    vkr_sequence_destroy(seq);
    fixture_free(&f);
    return g;
}

static void test_heads_per_workgroup(void **state)
{
    (void)state;
    ops_context *o = th_ops();
    const uint32_t workers = o->cpu_workers;
    static const struct {
        attn_case c;
        uint32_t per_worker, workers, gqa_values; /* the grouped run's setting */
        uint32_t want_hpw, want_pass;             /* the heads per workgroup and per pass it gives */
    } cases[] = {
        {{8, 4, 8, DECODE(0, 45)}, 4, 1, 0, 8, 1},                          /* one thread: all heads (stories260K) */
        {{8, 2, 64, 7, {{1, 40}, {0, 10}, {0, 11}, {0, 12}, {0, 13}, {0, 14}, {2, 3}}}, 1, 2, 0, 8, 1},
        {{10, 2, 16, DECODE(1, 37)}, 1, 3, 0, 3, 1},                        /* groups of 3, 3, 3, 1 across KV heads */
        {{12, 12, 32, 3, {{0, 1200}, {0, 1201}, {0, 1202}}}, 2, 2, 0, 0, 1}, /* split keys: hpw as planned */
        {{12, 3, 64, DECODE(0, 70)}, 4, 2, 0, 1, 1},                        /* 8 workgroups wanted of 12 heads: 1 */
        /* Passes of a GQA group's heads: */
        {{8, 4, 8, DECODE(0, 45)}, 4, 1, 64, 8, 2},                         /* stories260K on one thread */
        {{8, 1, 8, 7, {{1, 40}, {0, 10}, {0, 11}, {0, 12}, {0, 13}, {0, 14}, {2, 3}}}, 1, 2, 64, 8, 8},
        {{10, 2, 16, DECODE(1, 37)}, 1, 3, 80, 5, 5},                       /* 3 heads wanted: a whole pass of 5 */
        {{12, 3, 16, DECODE(0, 70)}, 0, 1, 64, 4, 4},                       /* one pass per workgroup */
        {{12, 3, 32, 3, {{0, 1200}, {0, 1201}, {0, 1202}}}, 2, 2, 128, 0, 4}, /* split keys */
        {{12, 3, 64, 2, {{0, 100}, {1, 33}}}, 1, 4, 128, 6, 2},            /* group of 4 in passes of 2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int f16 = 0; f16 < 2; f16++) {
            const attn_case *c = &cases[i].c;
            const size_t n = (size_t)c->n_tokens * c->n_heads * c->head_dim;
            float *one = malloc(n * sizeof *one), *grouped = malloc(n * sizeof *grouped);
            assert_true(one && grouped);
            const grouping alone = grouped_output(c, f16, 0, workers, 0, one);
            assert_int_equal(alone.hpw, 1);
            assert_int_equal(alone.pass, 1);
            const grouping g = grouped_output(c, f16, cases[i].per_worker, cases[i].workers, cases[i].gqa_values,
                                              grouped);
            printf("heads %u/%u head_dim %u tokens %u %s: %u heads per workgroup, %u per pass (%u per worker, %u "
                   "workers, %u query values per pass)\n",
                   c->n_heads, c->n_kv_heads, c->head_dim, c->n_tokens, f16 ? "f16" : "f32", g.hpw, g.pass,
                   cases[i].per_worker, cases[i].workers, cases[i].gqa_values);
            if (cases[i].want_hpw) assert_int_equal(g.hpw, cases[i].want_hpw);
            else assert_true(g.hpw > 1);
            assert_int_equal(g.pass, cases[i].want_pass);
            assert_memory_equal(one, grouped, n * sizeof *one);
            free(one), free(grouped);
        }
    /* Grouped against the reference: the quantized output (barriers between a workgroup's heads), a tree, a
     * quantized cache. */
    hpw_row = *tuning_for(o->caps);
    hpw_row.attn_wgs_per_worker = 1;
    hpw_row.attn_gqa_values = 256; /* passes of 2 (q8, tree) and 4 (the quantized cache) heads of 64 */
    o->tuning = &hpw_row;
    o->cpu_workers = 1;
    static const attn_case q8_case = {4, 2, 64, DECODE(0, 6)};
    run_q8_case(&q8_case, true, 97);
    run_q8_case(&q8_case, false, 98);
    run_tree_case(4, 2, 64, 37, 13, 0, true, 19);
    static const attn_case typed = {4, 1, 64, 3, {{0, 33}, {1, 2}, {2, 20}}};
    run_typed(&typed, OPS_KV_Q8_0, OPS_KV_Q4_0);
    run_centered(&typed, OPS_KV_Q4_0, OPS_KV_Q8_0, 2, true);
    o->tuning = tuning_for(o->caps);
    o->cpu_workers = workers;
}

/* Tokens per workgroup (attn_token_values with the shape's one_sequence hint): a batch of one sequence's tokens
 * attended in passes of several give every row the bits of one token per workgroup, with GQA passes, heads taken in
 * turn, split keys, a token whose split lies past its context, and a batch that is not one sequence though the hint
 * says so (the shader groups its tokens by sequence); the quantized output, a tree and a quantized cache against
 * the reference. */
static void test_token_passes(void **state)
{
    (void)state;
    ops_context *o = th_ops();
    const uint32_t workers = o->cpu_workers;
    static const struct {
        attn_case c;
        uint32_t per_worker, workers, gqa_values, token_values; /* the grouped run's setting */
        uint32_t want_tp;                                        /* the tokens per workgroup it gives */
    } cases[] = {
        /* stories260K's verification pass: 7 tokens, heads in passes of 2 */
        {{8, 4, 8, 7, {{0, 40}, {0, 41}, {0, 42}, {0, 43}, {0, 44}, {0, 45}, {0, 46}}}, 4, 1, 64, 128, 7},
        /* 5 tokens at a bound of 4 per workgroup: 3 + 2; heads of 16 one per pass */
        {{4, 2, 16, 5, {{0, 20}, {0, 21}, {0, 22}, {0, 23}, {0, 24}}}, 4, 1, 0, 64, 3},
        /* 11 tokens of a prompt from position 0 (token_of continues the 8th's positions): 6 + 5 */
        {{4, 4, 8, 11, {{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}, {0, 6}, {0, 7}}}, 1, 2, 0, 64, 6},
        /* the hint is wrong: three sequences and a lone one interleaved */
        {{8, 4, 8, 7, {{0, 40}, {1, 10}, {0, 41}, {1, 11}, {2, 3}, {0, 42}, {1, 12}}}, 4, 1, 64, 128, 7},
        /* split keys; the last token's context ends in the first split */
        {{4, 2, 32, 4, {{0, 1200}, {0, 1201}, {0, 1202}, {0, 5}}}, 2, 2, 64, 128, 2},
    };
    /* the texel variants (the CPU row's) and the storage-buffer ones, which merge through shared memory (GPUs'; not in
     * the _sg16 rerun, which is for subgroup operations) */
    const bool rerun = th_subgroup_rerun();
    for (size_t i = 0; i < 2 * sizeof cases / sizeof *cases; i += rerun ? 2 : 1)
        for (int f16 = 0; f16 < 2; f16++) {
            texel_loads = i % 2 ? 0 : -1;
            const attn_case *c = &cases[i / 2].c;
            const size_t n = (size_t)c->n_tokens * c->n_heads * c->head_dim;
            float *one = malloc(n * sizeof *one), *grouped = malloc(n * sizeof *grouped);
            assert_true(one && grouped);
            fixture_one_sequence = false;
            assert_int_equal(grouped_output(c, f16, 0, workers, 0, one).tp, 1);
            fixture_one_sequence = true;
            token_values = cases[i / 2].token_values;
            const grouping g = grouped_output(c, f16, cases[i / 2].per_worker, cases[i / 2].workers,
                                              cases[i / 2].gqa_values, grouped);
            printf("heads %u/%u head_dim %u tokens %u %s%s: %u tokens per workgroup, %u heads per workgroup, %u per "
                   "pass, %u splits\n", c->n_heads, c->n_kv_heads, c->head_dim, c->n_tokens, f16 ? "f16" : "f32",
                   texel_loads == 0 ? " (storage buffers)" : "", g.tp, g.hpw, g.pass, g.splits);
            assert_int_equal(g.tp, cases[i / 2].want_tp);
            if (i / 2 == 4) assert_true(g.splits > 1);
            assert_memory_equal(one, grouped, n * sizeof *one);
            token_values = 0;
            texel_loads = -1;
            free(one), free(grouped);
        }
    /* Against the reference, in passes of several tokens: the quantized output (barriers between the passes), a tree
     * (each token its own mask), a quantized cache.  Passes of at most 128 query values, as the CPU row's: LLVM takes
     * minutes over a pass of 256 at lavapipe's 16-wide vectors (the _sg16 rerun). */
    hpw_row = *tuning_for(o->caps);
    hpw_row.attn_wgs_per_worker = 1;
    hpw_row.attn_gqa_values = 64;
    hpw_row.attn_token_values = 128;
    o->tuning = &hpw_row;
    o->cpu_workers = 1;
    fixture_one_sequence = true;
    static const attn_case q8_case = {4, 2, 64, 5, {{0, 30}, {0, 31}, {0, 32}, {0, 33}, {0, 34}}};
    run_q8_case(&q8_case, true, 101);
    run_q8_case(&q8_case, false, 102);
    run_tree_case(4, 2, 64, 37, 13, 0, true, 23);
    run_tree_case(8, 4, 8, 20, 9, 0, false, 24);
    static const attn_case typed = {4, 1, 64, 6, {{0, 33}, {0, 34}, {0, 35}, {0, 36}, {0, 37}, {0, 38}}};
    run_typed(&typed, OPS_KV_Q8_0, OPS_KV_Q4_0);
    run_typed(&typed, OPS_KV_Q4_0, OPS_KV_F16);
    run_centered(&typed, OPS_KV_Q8_0, OPS_KV_Q8_0, 3, true); /* the centered queries of every row of a pass */
    hpw_row.texel_loads = 0; /* the storage-buffer variants: barriers between the passes' q8 stores and merges */
    if (!rerun) {
        run_q8_case(&q8_case, false, 103);
        run_tree_case(8, 4, 8, 20, 9, 0, true, 25);
    }
    fixture_one_sequence = false;
    o->tuning = tuning_for(o->caps);
    o->cpu_workers = workers;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_dims),    cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_contexts),     cmocka_unit_test(test_page_sizes),
        cmocka_unit_test(test_mixed_batch),  cmocka_unit_test(test_replay),
        cmocka_unit_test(test_decode_time),  cmocka_unit_test(test_attention_bad_shapes),
        cmocka_unit_test(test_quantized_cache), cmocka_unit_test(test_quantized_bad_shapes),
        cmocka_unit_test(test_coopmat),      cmocka_unit_test(test_q8_output),
        cmocka_unit_test(test_tree_mask),    cmocka_unit_test(test_other_reads),
        cmocka_unit_test(test_workgroup_sizes), cmocka_unit_test(test_heads_per_workgroup),
        cmocka_unit_test(test_token_passes),
    };
    /* The _sg16 rerun (tests/CMakeLists.txt): flash_attn.comp's _tx variants merge with subgroup arithmetic (the
     * tuning's workgroup of 8 is then half a subgroup: test_tree_mask; 4 lanes, with decode, a mixed batch, split-K,
     * the _q8 output and a quantized cache: test_workgroup_sizes), flash_attn_coopmat.comp (emulated here) works in
     * subgroups; flash_attn_combine.comp uses no subgroup operations; the checks of bad shapes run no shader. */
    const struct CMUnitTest rerun[] = {
        cmocka_unit_test(test_attention_bad_shapes), cmocka_unit_test(test_quantized_bad_shapes),
        cmocka_unit_test(test_tree_mask),
        cmocka_unit_test(test_coopmat),      cmocka_unit_test(test_workgroup_sizes),
        cmocka_unit_test(test_heads_per_workgroup), cmocka_unit_test(test_token_passes),
    };
    if (th_subgroup_rerun()) {
        printf("subgroup-size rerun: only the tests of shaders with subgroup operations\n");
        return TH_RUN("ops_attention", rerun);
    }
    return TH_RUN("ops_attention", tests);
}
