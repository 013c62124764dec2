/* ops_qkv_project and ops_swiglu_project against plain C: y = W x (+ bias) in double from the dequantized
 * weights, RoPE in double, the paged cache through the host model of test_ops_kv_write, silu(gate) * up; where the
 * product takes the integer path, x is its q8 round trip (th_q8_round_trip).  Each runs through every path:
 * the fused mat-vec epilogue of each tuning row's variant (_tx on the CPU row; _sg_q8dot / _sg_q8 / _q8dot /
 * _q8 / _sg / _sg_f16 / _f16 on the GPU rows, plain without texels), the tiled mat-mul plus the separate
 * pass (qkv_store, swiglu_pairs), three unstacked Q/K/V weights, and a row count per invocation that cannot
 * hold pairs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "matmul_check.h"
#include "ops/matmul/matmul_fused.h"
#include "quant/quant.h"
#include "ref_attention.h"

/* NMSE bounds: f32 products (or the integer path against x's q8 round trip) and RoPE at positions below 20,
 * measured <= 5.3e-13 on lavapipe; f16 arithmetic or an F16 cache (rounding to 2^-11), measured <= 4.4e-6. */
#define BOUND_F32 1e-9
#define BOUND_F16 2e-5

static const uint32_t all_types[] = {QUANT_WEIGHT_TYPE_IDS};

static uint32_t cols_for(uint32_t type)
{
    uint32_t block = quant_get_traits(type)->block_elems;
    return block == 1 ? 40 : block == 32 ? 96 : 256;
}

/* The path the products of n tokens take (one for all the weights: the tests mix quantized types only), and
 * x [n][cols] as that path sees it. */
static ops_matmul_path path_and_x(const ops_weight *const *w, size_t n_w, uint32_t n, const float *x, uint32_t cols,
                                  float *x_seen)
{
    ops_matmul_path path = ops_matmul_path_of(th_ops(), w[0], n);
    for (size_t i = 1; i < n_w; i++) assert_int_equal(ops_matmul_path_of(th_ops(), w[i], n), path);
    if (path == OPS_PATH_Q8 || path == OPS_PATH_Q8_DOT) th_q8_round_trip(x, n, cols, x_seen);
    else memcpy(x_seen, x, sizeof *x * n * cols);
    return path;
}

/* Random rows quantized to type, and their dequantized values [rows][cols]. */
static uint8_t *random_matrix(th_rng *rng, uint32_t type, uint32_t rows, uint32_t cols, float *values)
{
    uint64_t row_bytes = quant_row_size(type, cols);
    uint8_t *data = malloc(row_bytes * rows);
    assert_non_null(data);
    for (uint32_t r = 0; r < rows; r++) {
        th_fill_uniform(rng, values + (size_t)r * cols, cols, -1.0f, 1.0f);
        th_check_status(quant_quantize_row(type, values + (size_t)r * cols, data + r * row_bytes, cols), "quantize");
        th_check_status(quant_dequantize_row(type, data + r * row_bytes, values + (size_t)r * cols, cols), "dequantize");
    }
    return data;
}

static double dot(const float *w, const float *x, uint32_t cols)
{
    double s = 0;
    for (uint32_t k = 0; k < cols; k++) s += (double)w[k] * x[k];
    return s;
}

/* ---- Q/K/V ---- */

typedef struct qkv_case {
    uint32_t n_head, n_head_kv, head_dim, n_rot;
    bool bias;
    float freq_base, freq_scale;
} qkv_case;

/* RoPE pair j of (a, b) at pos, in double (normal layout). */
static void rope_pair(const qkv_case *c, uint32_t pos, uint32_t j, float *a, float *b)
{
    double theta = pos * pow(c->freq_base, -2.0 * j / c->n_rot) * c->freq_scale;
    double x0 = *a, x1 = *b;
    *a = (float)(x0 * cos(theta) - x1 * sin(theta));
    *b = (float)(x0 * sin(theta) + x1 * cos(theta));
}

/* Reference of token t's stacked row [q_rows + 2 kv_rows] after bias and RoPE. */
static void qkv_reference(const qkv_case *c, const float *w, const float *bias, const float *x, uint32_t cols,
                          uint32_t pos, float *out)
{
    uint32_t q_rows = c->n_head * c->head_dim, kv_rows = c->n_head_kv * c->head_dim, rows = q_rows + 2 * kv_rows;
    for (uint32_t r = 0; r < rows; r++) out[r] = (float)(dot(w + (size_t)r * cols, x, cols) + (bias ? bias[r] : 0));
    for (uint32_t r = 0; r < q_rows + kv_rows; r += 2) {
        uint32_t d = (r < q_rows ? r : r - q_rows) % c->head_dim;
        if (d < c->n_rot) rope_pair(c, pos, d / 2, &out[r], &out[r + 1]);
    }
}

/* Caches as floats (F16 decoded) for the comparison. */
static float *cache_floats(const ops_kv_layout *kv, const void *bytes)
{
    bool f16 = kv->k_type == OPS_KV_F16;
    size_t n = ops_kv_cache_bytes(kv, kv->k_type) / (f16 ? 2 : 4);
    float *f = malloc(sizeof *f * n);
    assert_non_null(f);
    if (f16) th_f16_to_f32(bytes, f, n);
    else memcpy(f, bytes, n * 4);
    return f;
}

/* One case for every n: stacked (or three weights of types[0..2]) through the current tuning row. */
static void check_qkv(const qkv_case *c, const uint32_t types[3], bool kv_f16, const uint32_t *ns, size_t n_ns)
{
    th_rng rng = {types[0] * 131ull + c->n_head * 17ull + c->head_dim + kv_f16};
    uint32_t cols = cols_for(types[0]), max_n = 0;
    for (size_t i = 0; i < n_ns; i++) max_n = ns[i] > max_n ? ns[i] : max_n;
    uint32_t q_rows = c->n_head * c->head_dim, kv_rows = c->n_head_kv * c->head_dim, rows = q_rows + 2 * kv_rows;
    uint32_t part_rows[3] = {q_rows, kv_rows, kv_rows};
    bool stacked = types[0] == types[1] && types[1] == types[2];

    float *w = malloc(sizeof *w * rows * cols), *bias = malloc(sizeof *bias * rows);
    float *x = malloc(sizeof *x * max_n * cols), *want = malloc(sizeof *want * rows);
    float *x_seen = malloc(sizeof *x_seen * max_n * cols);
    assert_non_null(x_seen);
    const void **row_ptrs = malloc(sizeof *row_ptrs * rows);
    assert_true(w && bias && x && want && row_ptrs);
    uint8_t *parts[3];
    ops_weight *weights[3] = {NULL, NULL, NULL}, *stack = NULL;
    for (uint32_t i = 0, first = 0; i < 3; first += part_rows[i], i++) {
        parts[i] = random_matrix(&rng, types[i], part_rows[i], cols, w + (size_t)first * cols);
        for (uint32_t r = 0; r < part_rows[i]; r++)
            row_ptrs[first + r] = parts[i] + r * quant_row_size(types[i], cols);
        if (!stacked)
            th_check_status(ops_weight_create(th_ops(), types[i], part_rows[i], cols, parts[i], &weights[i]), "weight");
    }
    if (stacked) th_check_status(ops_weight_create_rows(th_ops(), types[0], rows, cols, row_ptrs, &stack), "stack");
    th_fill_uniform(&rng, bias, rows, -0.5f, 0.5f);
    th_fill_uniform(&rng, x, (size_t)max_n * cols, -1.0f, 1.0f);

    ops_kv_layout kv = {.n_kv_heads = c->n_head_kv, .head_dim = c->head_dim, .page_size = 4, .n_seqs = 2,
                        .max_pages_per_seq = 8, .k_type = kv_f16 ? OPS_KV_F16 : OPS_KV_F32,
                        .v_type = kv_f16 ? OPS_KV_F16 : OPS_KV_F32};
    kv.n_pages = kv.n_seqs * kv.max_pages_per_seq + 1;
    size_t cache_bytes = ops_kv_cache_bytes(&kv, kv.k_type);
    int32_t table[16], tokens[2 * 32];
    assert_true(max_n <= 32 && kv.n_seqs * kv.max_pages_per_seq <= 16); /* tokens, table; positions < 32 */
    ref_shuffled_page_table(&rng, &kv, table);
    for (uint32_t t = 0; t < max_n; t++) { /* two sequences, token by token, from positions 3 and 9 */
        tokens[2 * t] = (int32_t)(t % 2);
        tokens[2 * t + 1] = (int32_t)((t % 2 ? 9 : 3) + t / 2);
    }
    uint8_t *zero = calloc(1, cache_bytes), *k_want = malloc(cache_bytes), *v_want = malloc(cache_bytes);
    uint8_t *k_got = malloc(cache_bytes), *v_got = malloc(cache_bytes);
    float *q_want = malloc(sizeof *q_want * max_n * q_rows), *q_got = malloc(sizeof *q_got * max_n * q_rows);
    assert_true(zero && k_want && v_want && k_got && v_got && q_want && q_got);

    vkr_buffer b_x = th_upload(x, sizeof *x * max_n * cols), b_bias = th_upload(bias, sizeof *bias * rows);
    vkr_buffer b_tokens = th_upload(tokens, sizeof(int32_t) * 2 * max_n), b_table = th_upload(table, sizeof table);
    vkr_buffer b_q = th_alloc(sizeof *q_got * max_n * q_rows), b_scratch = th_alloc(4ull * max_n * rows);
    vkr_buffer b_k = th_upload(zero, cache_bytes), b_v = th_upload(zero, cache_bytes);
    ops_qkv qkv = {.stacked = stack, .q = weights[0], .k = weights[1], .v = weights[2],
                   .bias = c->bias ? vkr_whole(&b_bias) : (vkr_range){0}, .n_head = c->n_head,
                   .n_head_kv = c->n_head_kv, .head_dim = c->head_dim, .n_rot = c->n_rot,
                   .freq_base = c->freq_base, .freq_scale = c->freq_scale};
    ops_qkv_dest dest = {.q = vkr_whole(&b_q), .tokens = vkr_whole(&b_tokens), .page_table = vkr_whole(&b_table),
                         .k_cache = vkr_whole(&b_k), .v_cache = vkr_whole(&b_v), .kv = &kv,
                         .scratch = vkr_whole(&b_scratch)};
    const ops_weight *const used[3] = {stacked ? stack : weights[0], weights[1], weights[2]};
    for (size_t i = 0; i < n_ns; i++) {
        uint32_t n = ns[i];
        ops_matmul_path path = path_and_x(used, stacked ? 1 : 3, n, x, cols, x_seen);
        bool f16 = path == OPS_PATH_F16 || path == OPS_PATH_COOPMAT; /* f16 inputs */
        memcpy(k_want, zero, cache_bytes);
        memcpy(v_want, zero, cache_bytes);
        for (uint32_t t = 0; t < n; t++) {
            qkv_reference(c, w, c->bias ? bias : NULL, x_seen + (size_t)t * cols, cols, (uint32_t)tokens[2 * t + 1],
                          want);
            memcpy(q_want + (size_t)t * q_rows, want, sizeof *want * q_rows);
            ref_kv_store(&kv, table, k_want, (uint32_t)tokens[2 * t], (uint32_t)tokens[2 * t + 1], want + q_rows);
            ref_kv_store(&kv, table, v_want, (uint32_t)tokens[2 * t], (uint32_t)tokens[2 * t + 1],
                         want + q_rows + kv_rows);
        }
        th_check_status(vkr_upload(th_device(), &b_k, 0, zero, cache_bytes), "clear k");
        th_check_status(vkr_upload(th_device(), &b_v, 0, zero, cache_bytes), "clear v");
        th_check_status(vkr_fill(th_device(), &b_q, 0, b_q.size, 0x7fc00000u), "poison q");
        vkr_sequence *seq = th_begin();
        th_check_status(ops_qkv_project(th_ops(), seq, &qkv, vkr_whole(&b_x), n, &dest), "ops_qkv_project");
        th_check_status(vkr_sequence_end(seq), "end");
        th_check_status(vkr_sequence_run(seq), "run");
        vkr_sequence_destroy(seq);
        th_download(&b_q, q_got, sizeof *q_got * n * q_rows);
        th_download(&b_k, k_got, cache_bytes);
        th_download(&b_v, v_got, cache_bytes);
        char what[160];
        snprintf(what, sizeof what, "qkv %s/%s/%s heads %u/%u x %u rot %u%s kv %s n=%u (tuning %s)",
                 quant_get_traits(types[0])->name, quant_get_traits(types[1])->name, quant_get_traits(types[2])->name,
                 c->n_head, c->n_head_kv, c->head_dim, c->n_rot, c->bias ? " bias" : "", kv_f16 ? "f16" : "f32", n,
                 th_ops()->tuning->name);
        size_t cache_elems = cache_bytes / (kv_f16 ? 2 : 4);
        float *kw = cache_floats(&kv, k_want), *kg = cache_floats(&kv, k_got);
        float *vw = cache_floats(&kv, v_want), *vg = cache_floats(&kv, v_got);
        printf("  %s: nmse q %.2g k %.2g v %.2g\n", what, th_nmse(q_want, q_got, (size_t)n * q_rows),
               th_nmse(kw, kg, cache_elems), th_nmse(vw, vg, cache_elems));
        th_assert_nmse(what, q_want, q_got, (size_t)n * q_rows, f16 ? BOUND_F16 : BOUND_F32);
        th_assert_nmse(what, kw, kg, cache_elems, f16 || kv_f16 ? BOUND_F16 : BOUND_F32);
        th_assert_nmse(what, vw, vg, cache_elems, f16 || kv_f16 ? BOUND_F16 : BOUND_F32);
        free(kw), free(kg), free(vw), free(vg);
    }
    th_free(&b_x), th_free(&b_bias), th_free(&b_tokens), th_free(&b_table), th_free(&b_q), th_free(&b_scratch);
    th_free(&b_k), th_free(&b_v);
    for (int i = 0; i < 3; i++) {
        ops_weight_free(th_ops(), weights[i]);
        free(parts[i]);
    }
    ops_weight_free(th_ops(), stack);
    free(w), free(bias), free(x), free(x_seen), free(want), free(row_ptrs), free(zero);
    free(k_want), free(v_want), free(k_got), free(v_got), free(q_want), free(q_got);
}

static const qkv_case qkv_cases[] = {
    {3, 1, 8, 8, false, 10000.0f, 1.0f},    /* GQA 3:1, head_dim 8 (stories260K's) */
    {2, 2, 12, 8, true, 1000000.0f, 0.5f},  /* partial rotation, biases, linear scaling */
};
static const uint32_t mat_vec_n[] = {1, 3, 8, 16, 17};
/* One LLVM compile per variant, at one column: a pass's columns are unrolled (accumulators per row and column), so
 * lavapipe compiles a 3-column pipeline in 2-5x the time of a 1-column one; the columns' own code (n = 1..16) runs
 * in test_fused_paths, each type's decoding at several column counts in test_ops_matmul (1, 3, 8 and more). */
static const uint32_t variant_n[] = {1};

/* Every type, stacked, through the fused epilogue of the current tuning row, both cache types. */
static void check_all_qkv(const uint32_t *types, size_t n_types)
{
    for (size_t t = 0; t < n_types; t++) {
        if (th_rerun_skips_type(types[t])) continue;
        uint32_t same[3] = {types[t], types[t], types[t]};
        check_qkv(&qkv_cases[t % 2], same, true, variant_n, 1);
        check_qkv(&qkv_cases[(t + 1) % 2], same, false, variant_n, 1);
    }
}

/* ---- SwiGLU ---- */

static void check_swiglu(uint32_t type, uint32_t n_ff, const uint32_t *ns, size_t n_ns)
{
    th_rng rng = {type * 977ull + n_ff};
    uint32_t cols = cols_for(type), rows = 2 * n_ff, max_n = 0;
    for (size_t i = 0; i < n_ns; i++) max_n = ns[i] > max_n ? ns[i] : max_n;
    float *w = malloc(sizeof *w * rows * cols), *x = malloc(sizeof *x * max_n * cols);
    float *x_seen = malloc(sizeof *x_seen * max_n * cols);
    float *want = malloc(sizeof *want * max_n * n_ff), *got = malloc(sizeof *got * max_n * n_ff);
    assert_true(w && x && x_seen && want && got);
    uint8_t *data = random_matrix(&rng, type, rows, cols, w);
    ops_weight *gate_up;
    th_check_status(ops_weight_create(th_ops(), type, rows, cols, data, &gate_up), "weight");
    th_fill_uniform(&rng, x, (size_t)max_n * cols, -1.0f, 1.0f);
    vkr_buffer b_x = th_upload(x, sizeof *x * max_n * cols), b_act = th_alloc(sizeof *got * max_n * n_ff);
    vkr_buffer b_scratch = th_alloc(4ull * max_n * rows);
    for (size_t i = 0; i < n_ns; i++) {
        const ops_weight *const used[1] = {gate_up};
        ops_matmul_path path = path_and_x(used, 1, ns[i], x, cols, x_seen);
        bool f16 = path == OPS_PATH_F16 || path == OPS_PATH_COOPMAT; /* f16 inputs */
        for (uint32_t t = 0; t < ns[i]; t++)
            for (uint32_t f = 0; f < n_ff; f++) {
                double g = dot(w + (size_t)2 * f * cols, x_seen + (size_t)t * cols, cols);
                double u = dot(w + (size_t)(2 * f + 1) * cols, x_seen + (size_t)t * cols, cols);
                want[(size_t)t * n_ff + f] = (float)(g / (1 + exp(-g)) * u);
            }
        th_check_status(vkr_fill(th_device(), &b_act, 0, b_act.size, 0x7fc00000u), "poison");
        vkr_sequence *seq = th_begin();
        th_check_status(ops_swiglu_project(th_ops(), seq, gate_up, vkr_whole(&b_x), vkr_whole(&b_act), ns[i],
                                           vkr_whole(&b_scratch)), "ops_swiglu_project");
        th_check_status(vkr_sequence_end(seq), "end");
        th_check_status(vkr_sequence_run(seq), "run");
        vkr_sequence_destroy(seq);
        th_download(&b_act, got, sizeof *got * ns[i] * n_ff);
        char what[128];
        snprintf(what, sizeof what, "swiglu %s n_ff %u n=%u (tuning %s)", quant_get_traits(type)->name, n_ff, ns[i],
                 th_ops()->tuning->name);
        printf("  %s: nmse %.2g\n", what, th_nmse(want, got, (size_t)ns[i] * n_ff));
        th_assert_nmse(what, want, got, (size_t)ns[i] * n_ff, f16 ? BOUND_F16 : BOUND_F32);
    }
    th_free(&b_x), th_free(&b_act), th_free(&b_scratch);
    ops_weight_free(th_ops(), gate_up);
    free(data), free(w), free(x), free(x_seen), free(want), free(got);
}

static void check_all_swiglu(const uint32_t *types, size_t n_types)
{
    for (size_t t = 0; t < n_types; t++)
        if (!th_rerun_skips_type(types[t])) check_swiglu(types[t], 37, variant_n, 1);
}

/* ---- tuning rows and paths ---- */

static void use_row(const op_tuning *row, const char *disable, const char *disable2)
{
    unsetenv("VKLLM_DISABLE_F16");
    unsetenv("VKLLM_DISABLE_SUBGROUP");
    unsetenv("VKLLM_DISABLE_TEXEL");
    unsetenv("VKLLM_DISABLE_INT_DOT");
    if (disable) setenv(disable, "1", 1);
    if (disable2) setenv(disable2, "1", 1);
    th_reset_device();
    th_ops()->tuning = row;
}

static const uint32_t quant_types[] = {QUANT_BLOCK_TYPE_IDS};

/* Every variant of the epilogues: _tx (CPU row); on NVIDIA's row _sg_q8dot, _sg_q8, _q8dot and _q8 (the
 * integer path of quantized types), _sg_f16 / _f16 (F16) and _sg / plain (F32, BF16), and on its float-path
 * copy _sg_f16, _sg and _f16 for the quantized types; plain (CPU row without texel loads). */
static void test_fused_variants(void **state)
{
    static op_tuning nvidia_float; /* static: outlives a failed check */
    nvidia_float = *tuning_row(TUNING_NVIDIA);
    nvidia_float.name = "nvidia-float";
    nvidia_float.matvec_int_dot = 0;
    const struct { const op_tuning *row; const char *disable, *disable2; const uint32_t *types; size_t n; } runs[] = {
        {tuning_row(TUNING_CPU), NULL, NULL, all_types, 13},                    /* matvec_T_tx_* */
        {tuning_row(TUNING_NVIDIA), NULL, NULL, all_types, 13},                 /* _sg_q8dot_*, F16 _sg_f16_* */
        {tuning_row(TUNING_NVIDIA), "VKLLM_DISABLE_INT_DOT", NULL, quant_types, 10},           /* _sg_q8_* */
        {tuning_row(TUNING_NVIDIA), "VKLLM_DISABLE_SUBGROUP", NULL, all_types, 13}, /* _q8dot_*, F16 _f16_* */
        {tuning_row(TUNING_NVIDIA), "VKLLM_DISABLE_SUBGROUP", "VKLLM_DISABLE_INT_DOT", quant_types, 10}, /* _q8_* */
        {&nvidia_float, NULL, NULL, quant_types, 10},                     /* _sg_f16_* (types with a min: _sg) */
        {&nvidia_float, "VKLLM_DISABLE_F16", NULL, all_types, 13},                               /* _sg_* */
        {&nvidia_float, "VKLLM_DISABLE_SUBGROUP", NULL, quant_types, 10},          /* _f16_* (with a min: plain) */
        {tuning_row(TUNING_CPU), "VKLLM_DISABLE_TEXEL", NULL, all_types, 13},                     /* matvec_T_* */
    };
    assert_int_equal(sizeof all_types / sizeof *all_types, 13);
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        use_row(runs[r].row, runs[r].disable, runs[r].disable2);
        if (th_rerun_skips_row_at(runs[r].row, 1)) continue; /* one column each */
        printf("tuning %s%s%s%s%s\n", th_ops()->tuning->name, runs[r].disable ? " with " : "",
               runs[r].disable ? runs[r].disable : "", runs[r].disable2 ? " and " : "",
               runs[r].disable2 ? runs[r].disable2 : "");
        check_all_qkv(runs[r].types, runs[r].n);
        check_all_swiglu(runs[r].types, runs[r].n);
    }
    use_row(tuning_row(TUNING_CPU), NULL, NULL);
}

/* Batches: blocks of mat-vec columns on the CPU row (n up to 17: a block of 16 and one more), the tiled mat-mul
 * and the separate passes on a GPU row (n >= 9); Q/K/V of three types; a tuning whose row groups cannot hold
 * pairs.  The CPU rows' shared loads of x (subgroup shuffles, from 4 columns on) are not rerun at subgroups of 16
 * here: they precede the epilogue, the same code as test_ops_matmul_variants's test_cpu_row_x_loads, which is. */
static void test_fused_paths(void **state)
{
    static const uint32_t types[] = {QUANT_F16, QUANT_Q4_0, QUANT_Q4_K};
    const uint32_t mixed[3] = {QUANT_Q4_0, QUANT_Q4_0, QUANT_Q8_0}, n_all = sizeof mat_vec_n / sizeof *mat_vec_n;
    static op_tuning odd_rows;
    const op_tuning *rows[3] = {tuning_row(TUNING_CPU), tuning_row(TUNING_NVIDIA), &odd_rows};
    odd_rows = *tuning_row(TUNING_CPU);
    odd_rows.name = "cpu-3-rows";
    odd_rows.matvec_rows = 3;
    for (int r = 0; r < 3; r++) {
        use_row(rows[r], NULL, NULL);
        if (th_rerun_skips_row_at(rows[r], 1)) continue;
        for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
            uint32_t same[3] = {types[t], types[t], types[t]};
            check_qkv(&qkv_cases[1], same, true, mat_vec_n, n_all);
            check_swiglu(types[t], 37, mat_vec_n, n_all);
        }
        check_qkv(&qkv_cases[0], mixed, true, mat_vec_n, n_all);
        check_qkv(&qkv_cases[1], mixed, false, mat_vec_n, n_all);
    }
    use_row(tuning_row(TUNING_CPU), NULL, NULL);
}

static void test_fused_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer buf = th_alloc(1 << 16);
    vkr_range r = vkr_whole(&buf);
    float zeros[8 * 16] = {0};
    ops_weight *w;
    th_check_status(ops_weight_create(o, QUANT_F32, 8, 16, zeros, &w), "weight");
    ops_kv_layout kv = {.n_pages = 2, .n_kv_heads = 1, .head_dim = 4, .page_size = 4, .n_seqs = 1,
                        .max_pages_per_seq = 2};
    ops_qkv qkv = {.stacked = w, .n_head = 1, .n_head_kv = 1, .head_dim = 4, .n_rot = 4, .freq_base = 10000.0f,
                   .freq_scale = 1.0f};
    ops_qkv_dest dest = {r, r, r, r, r, &kv, r};
    vkr_sequence *seq = th_begin();
    assert_int_equal(ops_qkv_project(o, seq, &qkv, r, 2, &dest), VKLLM_ERROR_INVALID_ARGUMENT); /* 8 != 4 + 2*4 */
    assert_non_null(strstr(vkllm_last_error(), "stacked weight has 8 rows"));
    qkv.n_head = 0;
    qkv.stacked = NULL;
    assert_int_equal(ops_qkv_project(o, seq, &qkv, r, 2, &dest), VKLLM_ERROR_INVALID_ARGUMENT);
    qkv.n_head = 1;
    qkv.n_rot = 3;
    assert_int_equal(ops_qkv_project(o, seq, &qkv, r, 2, &dest), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_qkv_project(o, seq, &qkv, r, 2, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_swiglu_project(o, seq, w, r, r, 0, r), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_swiglu_project(o, seq, NULL, r, r, 1, r), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_swiglu_project(o, seq, w, vkr_sub(&buf, 0, 16), r, 2, r), VKLLM_ERROR_INVALID_ARGUMENT);
    th_end_and_free(seq);
    ops_weight_free(o, w);
    th_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_variants),
        cmocka_unit_test(test_fused_paths),
        cmocka_unit_test(test_fused_bad_shapes),
    };
    return TH_RUN("ops_fused", tests);
}
