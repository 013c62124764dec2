/* RMSNorm (fused with its weight) against a double-precision C reference, in both reduction variants:
 * subgroup arithmetic (where the device has it) and the shared-memory tree (VKLLM_DISABLE_SUBGROUP=1).  The _q8
 * variants (the output also quantized for the mat-vec's integer path) against the plain op and quantize_q8 bit
 * for bit, under every tuning row's workgroup; and the products that take that quantized x (the _xq ops). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"
#include "matmul_check.h"
#include "ops/matmul/matmul.h"
#include "ops/matmul/matmul_fused.h"
#include "quant/quant.h"

/* d[0] = rows, d[1] = cols, f[0] = eps; inputs x [rows][cols], w [cols]. */
static void rms_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = (size_t)s->d[0] * s->d[1];
    in[1] = s->d[1];
    *out = in[0];
}

static void rms_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    const float *x = in[0], *w = in[1];
    uint32_t rows = s->d[0], cols = s->d[1];
    for (uint32_t r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double squares = 0;
        for (uint32_t c = 0; c < cols; c++) squares += (double)xr[c] * xr[c];
        double scale = 1.0 / sqrt(squares / cols + s->f[0]);
        for (uint32_t c = 0; c < cols; c++) out[(size_t)r * cols + c] = (float)(xr[c] * scale * w[c]);
    }
}

static vkllm_status rms_record(ops_context *o, vkr_sequence *seq, const th_shape *s, const vkr_range in[TH_MAX_INPUTS],
                               vkr_range out)
{
    return ops_rms_norm_f32(o, seq, in[0], in[1], out, s->d[0], s->d[1], s->f[0]);
}

/* One column; odd rows shorter than the workgroup; rows longer than any workgroup (odd, and a llama width); rows of
 * whole vec4s shorter than a workgroup's vec4s (12) and stories260K's (64), which the CPU row reads as vec4s
 * (norm_vec4); a 100,003-column row (12,501 iterations per lavapipe invocation); 70,000 rows (more than 65,535
 * groups). */
static const th_shape rms_shapes[] = {
    {{1, 1}, {1e-6f}},     {{3, 7}, {1e-5f}},       {{5, 4099}, {1e-6f}},    {{7, 4096}, {1e-5f}},
    {{4, 12}, {1e-6f}},    {{9, 64}, {1e-5f}},
    {{2, 100003}, {1e-6f}}, {{33, 257}, {0.5f}},     {{70000, 5}, {1e-6f}},
};

/* Float sums of squares against double: relative error ~1e-7 per element, NMSE ~1e-14; the bound leaves
 * room for devices whose inversesqrt is 2 ulp. */
static const th_op rms_op = {"rms_norm", 1e-11, 2, {TH_F32, TH_F32}, TH_F32, rms_sizes, NULL, rms_ref, rms_record};

/* The residual add fused before the norm: inputs x, add [rows][cols], w [cols]. */
static void add_sizes(const th_shape *s, size_t in[TH_MAX_INPUTS], size_t *out)
{
    in[0] = in[1] = (size_t)s->d[0] * s->d[1];
    in[2] = s->d[1];
    *out = in[0];
}

/* x + add as the device rounds it (one float add). */
static void residual_sum(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *sum)
{
    const float *x = in[0], *a = in[1];
    for (size_t i = 0; i < (size_t)s->d[0] * s->d[1]; i++) sum[i] = x[i] + a[i];
}

static void add_norm_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out)
{
    float *sum = malloc((size_t)s->d[0] * s->d[1] * sizeof *sum);
    assert_non_null(sum);
    residual_sum(s, in, sum);
    const void *const norm_in[TH_MAX_INPUTS] = {sum, in[2]};
    rms_ref(s, norm_in, out);
    free(sum);
}

static vkllm_status add_norm_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                    const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    return ops_add_rms_norm_f32(o, seq, in[0], in[1], in[2], out, s->d[0], s->d[1], s->f[0]);
}

/* The updated x: the norm goes to out, then x is copied over it. */
static void add_sum_ref(const th_shape *s, const void *const in[TH_MAX_INPUTS], float *out) { residual_sum(s, in, out); }

static vkllm_status add_sum_record(ops_context *o, vkr_sequence *seq, const th_shape *s,
                                   const vkr_range in[TH_MAX_INPUTS], vkr_range out)
{
    VKLLM_TRY(ops_add_rms_norm_f32(o, seq, in[0], in[1], in[2], out, s->d[0], s->d[1], s->f[0]));
    return vkr_sequence_copy(seq, in[0], out);
}

static const th_op add_norm_op = {"add_rms_norm", 1e-11, 3, {TH_F32, TH_F32, TH_F32}, TH_F32, add_sizes, NULL,
                                  add_norm_ref, add_norm_record};
static const th_op add_sum_op = {"add_rms_norm (x)", 0, 3, {TH_F32, TH_F32, TH_F32}, TH_F32, add_sizes, NULL,
                                 add_sum_ref, add_sum_record};

/* Also at workgroup sizes of several subgroups, one not a power of two; those runs leave out the 70,000
 * rows (lavapipe runs a 256-wide group as 32 passes of 8 lanes: seconds). */
static void check_rms_norm_all_sizes(void)
{
    size_t n = sizeof rms_shapes / sizeof *rms_shapes;
    th_check_op(&rms_op, rms_shapes, n);
    th_check_op_wg(&rms_op, rms_shapes, n - 1, 24);
    th_check_op_wg(&rms_op, rms_shapes, n - 1, 256);
    th_check_op(&add_norm_op, rms_shapes, n);
    th_check_op(&add_sum_op, rms_shapes, n);
    th_check_op_wg(&add_norm_op, rms_shapes, n - 1, 24);
}

static void test_rms_norm(void **state)
{
    printf("  subgroup arithmetic: %s\n", th_ops()->caps->subgroup_arithmetic ? "yes" : "no");
    check_rms_norm_all_sizes();
}

static void test_rms_norm_shared_memory(void **state)
{
    th_skip_on_subgroup_rerun("the shared-memory reduction uses no subgroup operations");
    th_disable_subgroups(true);
    check_rms_norm_all_sizes();
    th_disable_subgroups(false);
}

static void test_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer x = th_alloc(64), w = th_alloc(16), out = th_alloc(64);
    vkr_sequence *seq = th_begin();
    vkr_range rx = vkr_whole(&x), rw = vkr_whole(&w), ro = vkr_whole(&out);
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 0, 4, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "rms_norm_f32"));
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 4, 0, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 5, 4, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT); /* x */
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 2, 8, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT); /* w */
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 4, 4, -1.0f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(ops_rms_norm_f32(o, seq, rx, rw, ro, 1, 0xfffffff0u, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "iterations"));
    assert_int_equal(ops_add_rms_norm_f32(o, seq, rx, rw, rw, ro, 4, 4, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT); /* add */
    assert_non_null(strstr(vkllm_last_error(), "add_rms_norm_f32"));
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    th_end_and_free(seq);
    th_free(&x), th_free(&w), th_free(&out);
}

/* ---- the quantized copy (ops_rms_norm_f32_q8, ops_add_rms_norm_f32_q8) ---- */

/* Inputs that reach the corners of the quantization: random rows, a zero block, blocks scaled by 1e-30 and 1e30
 * through the weight (subnormal and huge outputs), a lone nonzero element, negative zeros. */
static void q8_inputs(th_rng *rng, uint32_t rows, uint32_t cols, float *x, float *add, float *w)
{
    th_fill_uniform(rng, x, (size_t)rows * cols, -1.0f, 1.0f);
    th_fill_uniform(rng, add, (size_t)rows * cols, -0.5f, 0.5f);
    th_fill_uniform(rng, w, cols, -2.0f, 2.0f);
    uint32_t blocks = cols / 32;
    for (uint32_t k = 0; k < 32 && blocks > 1; k++) w[32 + k] = k == 5 ? -0.0f : 0.0f;        /* block 1: zeros */
    for (uint32_t k = 0; k < 32 && blocks > 2; k++) w[64 + k] *= 1e-30f;                      /* block 2: tiny */
    for (uint32_t k = 0; k < 32 && blocks > 3; k++) w[96 + k] = k == 17 ? 1e30f : 0.0f;      /* block 3: lone */
    for (uint32_t k = 0; k < 32 && blocks > 4; k++) w[128 + k] *= 1e30f;                     /* block 4: huge */
    for (uint32_t k = 0; k < cols && rows > 1; k++) x[cols + k] = k % 3 ? -0.0f : x[cols + k];
}

static void expect_same_bits(const void *want, const void *got, size_t bytes, const char *what, const char *part)
{
    if (memcmp(want, got, bytes) == 0) return;
    const uint32_t *a = want, *b = got;
    for (size_t i = 0; i < bytes / 4; i++)
        if (a[i] != b[i]) fail_msg("%s: %s differs at word %zu: %08x, want %08x", what, part, i, b[i], a[i]);
}

/* rows x cols (cols a multiple of 32) through the _q8 op of the current tuning, with and without the residual add:
 * out and the updated x the same bits as the plain op's, out_q8 the same bits as quantize_q8 of that out (every
 * word of the layout, its padding poisoned alike) and as the C mirror; one dispatch where row_wg is a multiple of
 * 8, two (the norm, quantize_q8) where not.  Row invariance: row `solo` alone gives the same bits. */
static void check_q8_shape(uint32_t rows, uint32_t cols, float eps, bool add)
{
    ops_context *o = th_ops();
    th_rng rng = {rows * 7919ull + cols * 31ull + add};
    size_t n = (size_t)rows * cols;
    uint64_t q_bytes = ops_q8_bytes(rows, cols);
    float *x = malloc(4 * n), *a = malloc(4 * n), *w = malloc(4ull * cols);
    float *out = malloc(4 * n), *out_plain = malloc(4 * n), *x_got = malloc(4 * n), *x_plain = malloc(4 * n);
    uint32_t *q = malloc(q_bytes), *q_ref = malloc(q_bytes);
    assert_true(x && a && w && out && out_plain && x_got && x_plain && q && q_ref);
    q8_inputs(&rng, rows, cols, x, a, w);
    vkr_buffer bx = th_upload(x, 4 * n), bx2 = th_upload(x, 4 * n), ba = th_upload(a, 4 * n);
    vkr_buffer bw = th_upload(w, 4ull * cols), bo = th_alloc(4 * n), bo2 = th_alloc(4 * n);
    vkr_buffer bq = th_alloc(q_bytes), bq2 = th_alloc(q_bytes);
    th_check_status(vkr_fill(th_device(), &bq, 0, q_bytes, 0xdeadbeefu), "poison");
    th_check_status(vkr_fill(th_device(), &bq2, 0, q_bytes, 0xdeadbeefu), "poison");
    vkr_range rx = vkr_whole(&bx), rx2 = vkr_whole(&bx2), ra = vkr_whole(&ba), rw = vkr_whole(&bw);
    vkr_sequence *seq = th_begin();
    th_check_status(add ? ops_add_rms_norm_f32_q8(o, seq, rx, ra, rw, vkr_whole(&bo), vkr_whole(&bq), rows, cols, eps)
                        : ops_rms_norm_f32_q8(o, seq, rx, rw, vkr_whole(&bo), vkr_whole(&bq), rows, cols, eps),
                    "norm q8");
    uint32_t dispatches = vkr_sequence_dispatch_count(seq);
    th_check_status(add ? ops_add_rms_norm_f32(o, seq, rx2, ra, rw, vkr_whole(&bo2), rows, cols, eps)
                        : ops_rms_norm_f32(o, seq, rx2, rw, vkr_whole(&bo2), rows, cols, eps),
                    "norm");
    th_check_status(ops_quantize_q8(o, seq, vkr_whole(&bo2), rows, cols, vkr_whole(&bq2)), "quantize_q8");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    vkr_sequence_destroy(seq);
    th_download(&bo, out, 4 * n);
    th_download(&bo2, out_plain, 4 * n);
    th_download(&bq, q, q_bytes);
    th_download(&bq2, q_ref, q_bytes);
    th_download(&bx, x_got, 4 * n);
    th_download(&bx2, x_plain, 4 * n);
    char what[160];
    snprintf(what, sizeof what, "%s_q8 %u x %u (row_wg %u, %s)", add ? "add_rms_norm" : "rms_norm", rows, cols,
             o->tuning->row_wg, o->caps->subgroup_arithmetic ? "subgroups" : "shared memory");
    assert_int_equal(dispatches, o->tuning->row_wg % 8 == 0 ? 1 : 2);
    expect_same_bits(out_plain, out, 4 * n, what, "out");
    expect_same_bits(x_plain, x_got, 4 * n, what, "x");
    expect_same_bits(q_ref, q, q_bytes, what, "out_q8 against quantize_q8");
    th_check_q8_mirror(out, q, rows, cols, what);

    /* Row `solo` alone: the same bits (one workgroup per row, nothing shared between rows). */
    uint32_t solo = rows / 2;
    vkr_buffer sx = th_upload(x + (size_t)solo * cols, 4ull * cols), sa = th_upload(a + (size_t)solo * cols, 4ull * cols);
    vkr_buffer so = th_alloc(4ull * cols), sq = th_alloc(ops_q8_bytes(1, cols));
    th_check_status(vkr_fill(th_device(), &sq, 0, sq.size, 0xdeadbeefu), "poison");
    seq = th_begin();
    th_check_status(add ? ops_add_rms_norm_f32_q8(o, seq, vkr_whole(&sx), vkr_whole(&sa), rw, vkr_whole(&so),
                                                  vkr_whole(&sq), 1, cols, eps)
                        : ops_rms_norm_f32_q8(o, seq, vkr_whole(&sx), rw, vkr_whole(&so), vkr_whole(&sq), 1, cols, eps),
                    "norm q8, one row");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    vkr_sequence_destroy(seq);
    uint64_t col_bytes = ops_q8_bytes(1, cols);
    th_download(&so, out_plain, 4ull * cols);
    th_download(&sq, q_ref, col_bytes);
    expect_same_bits(out + (size_t)solo * cols, out_plain, 4ull * cols, what, "out of a row alone");
    expect_same_bits((const uint8_t *)q + solo * col_bytes, q_ref, col_bytes, what, "out_q8 of a row alone");
    printf("  %-70s same bits as the plain op + quantize_q8, %u dispatch(es)\n", what, dispatches);

    vkr_buffer *bufs[] = {&bx, &bx2, &ba, &bw, &bo, &bo2, &bq, &bq2, &sx, &sa, &so, &sq};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) th_free(bufs[i]);
    free(x), free(a), free(w), free(out), free(out_plain), free(x_got), free(x_plain), free(q), free(q_ref);
}

/* Odd row counts; cols from one block to past 4096 and 11008 (several steps per row at every workgroup size, a
 * last step with only some blocks), 4096 itself (one step at row_wg 1024). */
static void check_q8_shapes(bool many_rows)
{
    static const uint32_t shapes[][2] = {{1, 32}, {3, 96}, {5, 160}, {7, 4096}, {3, 4128}, {1, 11008}, {33, 288}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_q8_shape(shapes[i][0], shapes[i][1], 1e-5f, false);
        check_q8_shape(shapes[i][0], shapes[i][1], 1e-6f, true);
    }
    if (many_rows) check_q8_shape(70000, 32, 1e-6f, true); /* more rows than 65,535 workgroups in x */
}

static op_tuning q8_row; /* static: outlives a failed check */

/* Every tuning row's row_wg (cpu 8, nvidia 1024, amd-wave64 256, intel 128), 24 (a multiple of 8 that is no
 * power of two: 3 blocks per step of 96 outputs) and 12 (not a multiple of 8: the norm, then quantize_q8), with
 * subgroup arithmetic and with the shared-memory reduction. */
static void test_rms_norm_q8(void **state)
{
    static const tuning_class classes[] = {TUNING_CPU, TUNING_NVIDIA, TUNING_AMD_WAVE64, TUNING_INTEL};
    for (int shared = 0; shared < (th_subgroup_rerun() ? 1 : 2); shared++) { /* the rerun: subgroups only */
        th_disable_subgroups(shared);
        for (size_t c = 0; c < sizeof classes / sizeof *classes + 2; c++) {
            q8_row = *tuning_row(c < 4 ? classes[c] : TUNING_CPU);
            if (c >= 4) {
                q8_row.name = c == 4 ? "cpu-row-wg-24" : "cpu-row-wg-12";
                q8_row.row_wg = c == 4 ? 24 : 12;
            }
            th_ops()->tuning = &q8_row;
            printf("tuning %s (row_wg %u)\n", q8_row.name, q8_row.row_wg);
            check_q8_shapes(q8_row.row_wg <= 24 && !shared);
        }
        th_ops()->tuning = &th_ops()->resolved;
    }
    th_disable_subgroups(false);
}

/* ---- products that take x quantized by the norm (the _xq ops) ---- */

/* Records `what` twice from the same inputs: the norm, then the products quantizing x themselves; the _q8 norm,
 * then the products given its x_q8.  Every output the same bits, and quantize_q8 dispatches fewer by one per
 * product on the integer path. */
typedef struct xq_fixture {
    ops_weight *w, *gate_up, *qkv;
    ops_kv_layout kv;
    vkr_buffer x, w_norm, h, hq, y, act, scratch, q, tokens, table, k, v;
} xq_fixture;

enum { XQ_N = 3, XQ_COLS = 256, XQ_ROWS = 37, XQ_FF = 24, XQ_HEADS = 2, XQ_HEAD_DIM = 32 };

static vkllm_status record_xq(xq_fixture *f, vkr_sequence *seq, bool given)
{
    ops_context *o = th_ops();
    vkr_range h = vkr_whole(&f->h), hq = given ? vkr_whole(&f->hq) : (vkr_range){0};
    if (given)
        VKLLM_TRY(ops_rms_norm_f32_q8(o, seq, vkr_whole(&f->x), vkr_whole(&f->w_norm), h, hq, XQ_N, XQ_COLS, 1e-5f));
    else
        VKLLM_TRY(ops_rms_norm_f32(o, seq, vkr_whole(&f->x), vkr_whole(&f->w_norm), h, XQ_N, XQ_COLS, 1e-5f));
    VKLLM_TRY(ops_matmul_into_xq(o, seq, f->w, h, hq, vkr_whole(&f->y), XQ_N, XQ_ROWS, 0));
    VKLLM_TRY(ops_swiglu_project_xq(o, seq, f->gate_up, h, hq, vkr_whole(&f->act), XQ_N, vkr_whole(&f->scratch)));
    ops_qkv qkv = {.stacked = f->qkv, .n_head = XQ_HEADS, .n_head_kv = 1, .head_dim = XQ_HEAD_DIM,
                   .n_rot = XQ_HEAD_DIM, .freq_base = 10000.0f, .freq_scale = 1.0f};
    ops_qkv_dest dest = {.q = vkr_whole(&f->q), .tokens = vkr_whole(&f->tokens), .page_table = vkr_whole(&f->table),
                         .k_cache = vkr_whole(&f->k), .v_cache = vkr_whole(&f->v), .kv = &f->kv,
                         .scratch = vkr_whole(&f->scratch)};
    return ops_qkv_project_xq(o, seq, &qkv, h, hq, XQ_N, &dest);
}

static void check_xq(uint32_t type)
{
    ops_context *o = th_ops();
    th_rng rng = {type + 4242ull};
    xq_fixture f = {.kv = {.n_pages = 4, .n_kv_heads = 1, .head_dim = XQ_HEAD_DIM, .page_size = 4, .n_seqs = 1,
                           .max_pages_per_seq = 4, .k_type = OPS_KV_F16, .v_type = OPS_KV_F16}};
    uint32_t qkv_rows = (XQ_HEADS + 2) * XQ_HEAD_DIM;
    uint8_t *d1 = th_random_weights(&rng, type, XQ_ROWS, XQ_COLS), *d2 = th_random_weights(&rng, type, 2 * XQ_FF, XQ_COLS);
    uint8_t *d3 = th_random_weights(&rng, type, qkv_rows, XQ_COLS);
    th_check_status(ops_weight_create(o, type, XQ_ROWS, XQ_COLS, d1, &f.w), "w");
    th_check_status(ops_weight_create(o, type, 2 * XQ_FF, XQ_COLS, d2, &f.gate_up), "gate_up");
    th_check_status(ops_weight_create(o, type, qkv_rows, XQ_COLS, d3, &f.qkv), "qkv");
    float x[XQ_N * XQ_COLS], wn[XQ_COLS];
    th_fill_uniform(&rng, x, XQ_N * XQ_COLS, -1.0f, 1.0f);
    th_fill_uniform(&rng, wn, XQ_COLS, 0.5f, 1.5f);
    int32_t tokens[2 * XQ_N] = {0, 0, 0, 1, 0, 2}, table[4] = {2, 0, 3, 1};
    size_t cache = ops_kv_cache_bytes(&f.kv, f.kv.k_type);
    f.x = th_upload(x, sizeof x), f.w_norm = th_upload(wn, sizeof wn), f.h = th_alloc(sizeof x);
    f.hq = th_alloc(ops_q8_bytes(XQ_N, XQ_COLS)), f.y = th_alloc(4 * XQ_N * XQ_ROWS), f.act = th_alloc(4 * XQ_N * XQ_FF);
    f.scratch = th_alloc(4ull * XQ_N * (qkv_rows > 2 * XQ_FF ? qkv_rows : 2 * XQ_FF));
    f.q = th_alloc(4 * XQ_N * XQ_HEADS * XQ_HEAD_DIM), f.tokens = th_upload(tokens, sizeof tokens);
    f.table = th_upload(table, sizeof table), f.k = th_alloc(cache), f.v = th_alloc(cache);
    vkr_buffer *outs[] = {&f.y, &f.act, &f.q, &f.k, &f.v};
    void *first[5];
    uint32_t counts[2];
    for (int given = 0; given < 2; given++) {
        for (size_t i = 0; i < 5; i++) th_check_status(vkr_fill(th_device(), outs[i], 0, outs[i]->size, 0), "clear");
        vkr_sequence *seq = th_begin();
        th_check_status(record_xq(&f, seq, given), given ? "with x_q8" : "without");
        counts[given] = vkr_sequence_dispatch_count(seq);
        th_check_status(vkr_sequence_end(seq), "end");
        th_check_status(vkr_sequence_run(seq), "run");
        vkr_sequence_destroy(seq);
        for (size_t i = 0; i < 5; i++) {
            void *got = malloc(outs[i]->size);
            assert_non_null(got);
            th_download(outs[i], got, outs[i]->size);
            if (!given) {
                first[i] = got;
                continue;
            }
            char what[96];
            snprintf(what, sizeof what, "%s (tuning %s)", quant_get_traits(type)->name, o->tuning->name);
            static const char *names[] = {"y", "act", "q", "k cache", "v cache"};
            expect_same_bits(first[i], got, outs[i]->size, what, names[i]);
            free(got);
            free(first[i]);
        }
    }
    bool q8 = ops_matmul_reads_q8(o, f.w, XQ_N);
    printf("  %-5s (tuning %-14s path %-5s): the same bits with x_q8 from the norm, %u -> %u dispatches\n",
           quant_get_traits(type)->name, o->tuning->name, ops_matmul_path_name(ops_matmul_path_of(o, f.w, XQ_N)),
           counts[0], counts[1]);
    /* three products on the integer path: three quantize_q8 fewer, but the norm's own where it cannot fuse */
    uint32_t saved = q8 ? 3 - (o->tuning->row_wg % 8 != 0) : 0;
    assert_int_equal(counts[1] + saved, counts[0]);
    ops_weight_free(o, f.w), ops_weight_free(o, f.gate_up), ops_weight_free(o, f.qkv);
    vkr_buffer *all[] = {&f.x, &f.w_norm, &f.h, &f.hq, &f.y, &f.act, &f.scratch, &f.q, &f.tokens, &f.table, &f.k, &f.v};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) th_free(all[i]);
    free(d1), free(d2), free(d3);
}

/* NVIDIA's row (the integer path through the device's dot product, subgroups), without the dot product, without
 * subgroups, its float path (x_q8 unread), the CPU row (float path, texels). */
static void test_products_take_x_q8(void **state)
{
    th_skip_on_subgroup_rerun("the norm's x_q8 at subgroups of 16 is test_rms_norm_q8's; the products' variants are "
                              "test_ops_matmul_variants' and test_ops_fused's");
    static const uint32_t types[] = {QUANT_Q4_0, QUANT_Q6_K, QUANT_F16};
    static op_tuning float_path;
    float_path = *tuning_row(TUNING_NVIDIA);
    float_path.name = "nvidia-float";
    float_path.matvec_int_dot = 0;
    const struct { const op_tuning *row; const char *disable; } runs[] = {
        {tuning_row(TUNING_NVIDIA), NULL}, {tuning_row(TUNING_NVIDIA), "VKLLM_DISABLE_INT_DOT"},
        {tuning_row(TUNING_NVIDIA), "VKLLM_DISABLE_SUBGROUP"}, {&float_path, NULL}, {tuning_row(TUNING_CPU), NULL},
    };
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        if (runs[r].disable) setenv(runs[r].disable, "1", 1);
        th_reset_device();
        th_ops()->tuning = runs[r].row;
        for (size_t t = 0; t < sizeof types / sizeof *types; t++) check_xq(types[t]);
        if (runs[r].disable) unsetenv(runs[r].disable);
    }
    th_reset_device();
}

static void test_q8_bad_shapes(void **state)
{
    ops_context *o = th_ops();
    vkr_buffer x = th_alloc(4 * 64), w = th_alloc(4 * 64), out = th_alloc(4 * 64), q = th_alloc(ops_q8_bytes(1, 64));
    vkr_range rx = vkr_whole(&x), rw = vkr_whole(&w), ro = vkr_whole(&out), rq = vkr_whole(&q);
    vkr_sequence *seq = th_begin();
    assert_int_equal(ops_rms_norm_f32_q8(o, seq, rx, rw, ro, rq, 1, 48, 1e-6f), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "blocks of 32"));
    assert_int_equal(ops_add_rms_norm_f32_q8(o, seq, rx, rx, rw, ro, vkr_sub(&q, 0, 16), 1, 64, 1e-6f),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "out_q8"));
    assert_int_equal(vkr_sequence_dispatch_count(seq), 0);
    th_end_and_free(seq);
    th_free(&x), th_free(&w), th_free(&out), th_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rms_norm),
        cmocka_unit_test(test_rms_norm_shared_memory),
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_rms_norm_q8),
        cmocka_unit_test(test_products_take_x_q8),
        cmocka_unit_test(test_q8_bad_shapes),
    };
    return TH_RUN("ops_norm", tests);
}
