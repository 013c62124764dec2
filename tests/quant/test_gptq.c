/* GPTQ onto the GGUF formats (quant/gptq.c): on a random layer whose inputs are correlated (mixed from fewer
 * sources, with a few loud channels, as LLM activations are), GPTQ's output error sum_x ||W x - Q x||^2 =
 * sum_rows (w - q)^T H (w - q) is below round-to-nearest's for every format it writes, with and without
 * act-order, and below it with the scales held as chosen before rounding (no refit) for the formats whose block
 * parameters are refit; the files' bytes decode (quant_dequantize_row); bad arguments are refused. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/gptq.h"
#include "quant/quant.h"
#include "runtime/error.h"
#include "gguf/gguf.h"
#include "paths.h"
#include "quantize/calib_stats.h"
#include "quantize/quantize.h"

#include <unistd.h>

enum { ROWS = 24, COLS = 512, SAMPLES = 1024, SOURCES = 96 };

static uint64_t g_state = 0x9e3779b97f4a7c15ull;
static double uniform01(void)
{
    g_state ^= g_state << 13, g_state ^= g_state >> 7, g_state ^= g_state << 17;
    return ((g_state >> 11) + 0.5) / 9007199254740992.0;
}
static double normal(void) { return sqrt(-2 * log(uniform01())) * cos(6.283185307179586 * uniform01()); }

static double *g_h;
static float *g_w;

static int setup(void **state)
{
    (void)state;
    g_h = calloc((size_t)COLS * COLS, sizeof *g_h);
    g_w = malloc((size_t)ROWS * COLS * sizeof *g_w);
    double *mix = malloc((size_t)COLS * SOURCES * sizeof *mix), *x = malloc(COLS * sizeof *x);
    double loud[COLS];
    for (int i = 0; i < COLS; i++) loud[i] = i % 61 == 0 ? 8.0 : 0.5 + uniform01();
    for (int i = 0; i < COLS * SOURCES; i++) mix[i] = normal();
    for (int s = 0; s < SAMPLES; s++) {
        double z[SOURCES];
        for (int k = 0; k < SOURCES; k++) z[k] = normal();
        for (int i = 0; i < COLS; i++) {
            double v = 0.1 * normal();
            for (int k = 0; k < SOURCES; k++) v += mix[i * SOURCES + k] * z[k];
            x[i] = loud[i] * v / sqrt(SOURCES);
        }
        for (int i = 0; i < COLS; i++)
            for (int j = 0; j < COLS; j++) g_h[i * COLS + j] += x[i] * x[j];
    }
    for (int i = 0; i < ROWS * COLS; i++) g_w[i] = (float)(0.05 * normal());
    free(mix), free(x);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_h), free(g_w);
    return 0;
}

/* sum over rows of (w - q)^T H (w - q): the output error over the calibration inputs. */
static double output_error(const float *q)
{
    double total = 0;
    for (int r = 0; r < ROWS; r++) {
        double e[COLS];
        for (int i = 0; i < COLS; i++) e[i] = (double)g_w[r * COLS + i] - q[r * COLS + i];
        for (int i = 0; i < COLS; i++) {
            double s = 0;
            for (int j = 0; j < COLS; j++) s += g_h[i * COLS + j] * e[j];
            total += e[i] * s;
        }
    }
    return total;
}

/* The output error of the weights quantized by GPTQ with hessian g (their bytes decoded row by row).  scratch, q:
 * ROWS x COLS floats; packed: the quantized rows. */
static double gptq_output_error(quant_type type, const quant_gptq_hessian *g, float *scratch, uint8_t *packed,
                                float *q)
{
    const uint64_t row_bytes = quant_row_size(type, COLS);
    memcpy(scratch, g_w, (size_t)ROWS * COLS * sizeof *scratch);
    if (quant_gptq_quantize(type, scratch, ROWS, COLS, g, NULL, packed) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    for (int r = 0; r < ROWS; r++)
        assert_int_equal(quant_dequantize_row(type, packed + r * row_bytes, q + r * COLS, COLS), VKLLM_OK);
    return output_error(q);
}

static void check_all_types(bool act_order)
{
    static const quant_type types[] = {QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q8_0,
                                       QUANT_Q2_K, QUANT_Q3_K, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
    quant_gptq_params p = {.damp = 0.01, .act_order = act_order}, held = p, rounds = p, descent = p;
    held.no_refit = true;
    rounds.rounds = 2;
    descent.descent = 2;
    quant_gptq_hessian *g = NULL, *g_held = NULL, *g_rounds = NULL, *g_descent = NULL;
    if (quant_gptq_prepare(g_h, COLS, &p, &g) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    if (quant_gptq_prepare(g_h, COLS, &held, &g_held) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    if (quant_gptq_prepare(g_h, COLS, &rounds, &g_rounds) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    if (quant_gptq_prepare(g_h, COLS, &descent, &g_descent) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    float *scratch = malloc((size_t)ROWS * COLS * sizeof *scratch), *q = malloc((size_t)ROWS * COLS * sizeof *q);
    uint8_t *packed = malloc((size_t)ROWS * COLS * 2);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        assert_true(quant_gptq_supports(types[t]));
        for (int r = 0; r < ROWS; r++) {
            assert_int_equal(quant_quantize_row(types[t], g_w + r * COLS, packed, COLS), VKLLM_OK);
            assert_int_equal(quant_dequantize_row(types[t], packed, q + r * COLS, COLS), VKLLM_OK);
        }
        const double rtn = output_error(q);
        const double gptq = gptq_output_error(types[t], g, scratch, packed, q);
        const double scales_held = gptq_output_error(types[t], g_held, scratch, packed, q);
        const double two_more = gptq_output_error(types[t], g_rounds, scratch, packed, q);
        const double descended = gptq_output_error(types[t], g_descent, scratch, packed, q);
        printf("%-5s%s output error: GPTQ %.4g (scales held: %.4g; 2 more rounds: %.4g; 2 rounds of descent: %.4g), "
               "round-to-nearest %.4g (%.0f%% lower)\n", quant_get_traits(types[t])->name,
               act_order ? " act-order" : "", gptq, scales_held, two_more, descended, rtn, 100 * (1 - gptq / rtn));
        /* the descent's moves lower each row's (damped) error and a row keeps its best round: lower on every type */
        assert_true(descended < gptq);
        /* each row keeps its best round: never worse; the K-quants (nothing refit) are left as they were */
        assert_true(two_more <= gptq);
        if (quant_get_traits(types[t])->block_elems != 32) assert_true(two_more == gptq);
        assert_true(gptq < rtn);
        /* the refit keeps a row's parameters unless they lower its error: never worse, and better on the types it
         * refits (the ones with f16 block parameters) */
        assert_true(gptq <= scales_held);
        if (quant_get_traits(types[t])->block_elems == 32) assert_true(gptq < 0.95 * scales_held);
    }
    free(scratch), free(q), free(packed);
    quant_gptq_free(g);
    quant_gptq_free(g_held);
    quant_gptq_free(g_rounds);
    quant_gptq_free(g_descent);
}

static void test_gptq_beats_rtn(void **state)
{
    (void)state;
    check_all_types(false);
}

static void test_gptq_act_order_beats_rtn(void **state)
{
    (void)state;
    check_all_types(true);
}

static void test_gptq_bad_arguments(void **state)
{
    (void)state;
    quant_gptq_params p = {.damp = 0.01};
    quant_gptq_hessian *g = NULL;
    assert_int_equal(quant_gptq_prepare(g_h, COLS, &p, &g), VKLLM_OK);
    float w[64 * 2];
    uint8_t out[1024];
    memset(w, 0, sizeof w);
    assert_int_not_equal(quant_gptq_quantize(QUANT_Q4_0, w, 2, 64, g, NULL, out), VKLLM_OK); /* wrong width */
    assert_non_null(strstr(vkllm_last_error(), "Hessian of 512 columns"));
    assert_false(quant_gptq_supports(QUANT_F16));
    assert_int_not_equal(quant_gptq_quantize(QUANT_F16, w, 2, 64, g, NULL, out), VKLLM_OK);
    quant_gptq_free(g);
    /* An all-zero Hessian (no token reached the input): every column dead, the weights rounded to zero. */
    double zero[32 * 32] = {0};
    assert_int_equal(quant_gptq_prepare(zero, 32, &p, &g), VKLLM_OK);
    float w32[32], y[32];
    for (int i = 0; i < 32; i++) w32[i] = (float)i;
    assert_int_equal(quant_gptq_quantize(QUANT_Q4_0, w32, 1, 32, g, NULL, out), VKLLM_OK);
    assert_int_equal(quant_dequantize_row(QUANT_Q4_0, out, y, 32), VKLLM_OK);
    for (int i = 0; i < 32; i++) assert_true(y[i] == 0.0f);
    quant_gptq_free(g);
}

/* The float target (quant_gptq_retarget) on a small layer whose quantized-model input x_q is a distorted copy of
 * the unquantized x (each channel rescaled, a leak from its neighbour, noise): with C = H (no distortion) the
 * weights keep their bits; otherwise the moved weights' output on x_q is closer to W x than W's own, and GPTQ's
 * rounding of the moved weights (with x_q's Hessian) is closer to W x than GPTQ's rounding of W, for every format. */
enum { RT_COLS = 256, RT_ROWS = 8, RT_SAMPLES = 768 };

static double retarget_error(const float *w, const float *q, const double *xf, const double *xq)
{
    double total = 0;
    for (int t = 0; t < RT_SAMPLES; t++)
        for (int r = 0; r < RT_ROWS; r++) {
            double want = 0, got = 0;
            for (int i = 0; i < RT_COLS; i++) {
                want += w[r * RT_COLS + i] * xf[t * RT_COLS + i];
                got += q[r * RT_COLS + i] * xq[t * RT_COLS + i];
            }
            total += (want - got) * (want - got);
        }
    return total;
}

static void gptq_rows_of(quant_type type, const quant_gptq_hessian *g, const float *w, float *q)
{
    float scratch[RT_ROWS * RT_COLS];
    uint8_t packed[RT_ROWS * RT_COLS * 2];
    const uint64_t row_bytes = quant_row_size(type, RT_COLS);
    memcpy(scratch, w, sizeof scratch);
    if (quant_gptq_quantize(type, scratch, RT_ROWS, RT_COLS, g, NULL, packed) != VKLLM_OK)
        fail_msg("%s", vkllm_last_error());
    for (int r = 0; r < RT_ROWS; r++)
        assert_int_equal(quant_dequantize_row(type, packed + r * row_bytes, q + r * RT_COLS, RT_COLS), VKLLM_OK);
}

static void test_gptq_retarget(void **state)
{
    (void)state;
    double *xf = malloc(sizeof(double) * RT_SAMPLES * RT_COLS), *xq = malloc(sizeof(double) * RT_SAMPLES * RT_COLS);
    double *hd = calloc(RT_COLS * RT_COLS, sizeof *hd);
    float *h = calloc(RT_COLS * RT_COLS, sizeof *h), *cross = calloc(RT_COLS * RT_COLS, sizeof *cross);
    double *cd = calloc(RT_COLS * RT_COLS, sizeof *cd);
    float w[RT_ROWS * RT_COLS], moved[RT_ROWS * RT_COLS], q[RT_ROWS * RT_COLS];
    double gain[RT_COLS];
    for (int i = 0; i < RT_COLS; i++) gain[i] = 1 + 0.2 * normal();
    for (int t = 0; t < RT_SAMPLES; t++) {
        double common = normal();
        for (int i = 0; i < RT_COLS; i++) xf[t * RT_COLS + i] = 0.6 * common + normal() * (i % 13 == 0 ? 4 : 1);
        for (int i = 0; i < RT_COLS; i++)
            xq[t * RT_COLS + i] = gain[i] * xf[t * RT_COLS + i] + 0.3 * xf[t * RT_COLS + (i + 1) % RT_COLS] +
                                  0.1 * normal();
        for (int a = 0; a < RT_COLS; a++)
            for (int b = 0; b < RT_COLS; b++) {
                hd[a * RT_COLS + b] += xq[t * RT_COLS + a] * xq[t * RT_COLS + b];
                cd[a * RT_COLS + b] += xf[t * RT_COLS + a] * xq[t * RT_COLS + b];
            }
    }
    for (int i = 0; i < RT_COLS * RT_COLS; i++) h[i] = (float)hd[i], cross[i] = (float)cd[i];
    for (int i = 0; i < RT_ROWS * RT_COLS; i++) w[i] = (float)(0.1 * normal());

    quant_gptq_target *same = NULL, *target = NULL;
    assert_int_equal(quant_gptq_target_prepare(h, h, RT_COLS, 0.01, &same), VKLLM_OK);
    assert_int_equal(quant_gptq_target_prepare(h, cross, RT_COLS, 0.01, &target), VKLLM_OK);
    memcpy(moved, w, sizeof w); /* no distortion: nothing moves */
    assert_int_equal(quant_gptq_retarget(same, moved, RT_ROWS), VKLLM_OK);
    assert_memory_equal(moved, w, sizeof w);
    quant_gptq_target_free(same);

    memcpy(moved, w, sizeof w);
    assert_int_equal(quant_gptq_retarget(target, moved, RT_ROWS), VKLLM_OK);
    const double own = retarget_error(w, w, xf, xq), fitted = retarget_error(w, moved, xf, xq);
    printf("float target, unquantized: W on x_q %.4g, the moved W %.4g\n", own, fitted);
    assert_true(fitted < 0.2 * own);

    static const quant_type types[] = {QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q8_0, QUANT_Q4_K, QUANT_Q6_K};
    quant_gptq_params p = {.damp = 0.01};
    quant_gptq_hessian *g = NULL;
    if (quant_gptq_prepare(hd, RT_COLS, &p, &g) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        gptq_rows_of(types[k], g, w, q);
        const double plain = retarget_error(w, q, xf, xq);
        gptq_rows_of(types[k], g, moved, q);
        const double retargeted = retarget_error(w, q, xf, xq);
        printf("%-5s error against W x: GPTQ of W %.4g, of the moved W %.4g\n", quant_get_traits(types[k])->name,
               plain, retargeted);
        assert_true(retargeted < 0.5 * plain);
    }
    quant_gptq_free(g);

    /* threads share out the rows (300: two blocks of the move, threads from 2^20 products): the same bits */
    enum { MANY = 300 };
    const char *saved = getenv("VKLLM_QUANT_THREADS");
    char *keep = saved ? strdup(saved) : NULL;
    float *many[2];
    for (int run = 0; run < 2; run++) {
        setenv("VKLLM_QUANT_THREADS", run ? "3" : "1", 1);
        many[run] = malloc(sizeof(float) * MANY * RT_COLS);
        for (int i = 0; i < MANY * RT_COLS; i++) many[run][i] = w[i % (RT_ROWS * RT_COLS)] * (float)(1 + i / 4096);
        assert_int_equal(quant_gptq_retarget(target, many[run], MANY), VKLLM_OK);
    }
    assert_memory_equal(many[0], many[1], sizeof(float) * MANY * RT_COLS);
    for (int r = 0; r < RT_ROWS; r++) /* each row moves alone: the first rows are the small case's */
        assert_memory_equal(many[0] + r * RT_COLS, moved + r * RT_COLS, sizeof(float) * RT_COLS);
    free(many[0]), free(many[1]);
    quant_gptq_target_free(target);
    if (keep) setenv("VKLLM_QUANT_THREADS", keep, 1);
    else unsetenv("VKLLM_QUANT_THREADS");
    free(keep);
    free(xf), free(xq), free(hd), free(h), free(cross), free(cd);
}

/* e^T H e of a weight's quantization error, for one tensor of the two files. */
static double tensor_error(const gguf_tensor_info *f32, const gguf_tensor_info *q, const calib_slot *slot)
{
    const uint64_t n = f32->ne[0], rows = f32->ne[1];
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    double total = 0;
    for (uint64_t r = 0; r < rows; r++) {
        assert_int_equal(quant_dequantize_row(f32->type, (const uint8_t *)f32->data + r * quant_row_size(f32->type, n),
                                              a, n), VKLLM_OK);
        assert_int_equal(quant_dequantize_row(q->type, (const uint8_t *)q->data + r * quant_row_size(q->type, n), b, n),
                         VKLLM_OK);
        for (uint64_t i = 0; i < n; i++) a[i] -= b[i];
        for (uint64_t i = 0; i < n; i++) {
            double s = 0;
            for (uint64_t j = 0; j < n; j++) s += (double)slot->h[i * n + j] * a[j];
            total += a[i] * s;
        }
    }
    free(a), free(b);
    return total;
}

/* vkllm quantize --method gptq on stories260K (its own activations on the calibration text): the same tensor
 * types as round-to-nearest, and every calibrated weight's output error on those activations lower. */
static void test_gptq_model(void **state)
{
    (void)state;
    const char *model = th_join_(th_shared_dir(), "models/stories260K.gguf");
    const char *calib = th_join_(th_shared_dir(), "data/stories-calib.txt");
    if (access(model, R_OK) != 0 || access(calib, R_OK) != 0) skip();
    char rtn_path[512], gptq_path[512];
    snprintf(rtn_path, sizeof rtn_path, "%s/test_gptq_rtn_%ld.gguf", th_binary_dir(), (long)getpid());
    snprintf(gptq_path, sizeof gptq_path, "%s/test_gptq_gptq_%ld.gguf", th_binary_dir(), (long)getpid());
    quant_recipe recipe;
    assert_true(quant_recipe_from_name("Q4_K_M", false, &recipe));
    quant_calib_options co = {.text_path = calib, .n_ctx = 128, .chunks = 8,
                               .gptq_params = {.damp = 0.01}, .gptq = true};
    quantize_options with = {.calib = &co}, without = {0};
    if (quantize_file_ex(model, rtn_path, &recipe, &without) != VKLLM_OK ||
        quantize_file_ex(model, gptq_path, &recipe, &with) != VKLLM_OK)
        fail_msg("%s", vkllm_last_error());
    calib_pass_options po = {.model = model, .text_path = calib, .n_ctx = 128, .chunks = 8};
    calib_stats *stats = NULL;
    gguf_file *f32 = NULL, *rtn = NULL, *gptq = NULL;
    if (gguf_open(model, &f32) != VKLLM_OK || gguf_open(rtn_path, &rtn) != VKLLM_OK ||
        gguf_open(gptq_path, &gptq) != VKLLM_OK)
        fail_msg("%s", vkllm_last_error());
    uint32_t n_layer = 5;
    if (calib_stats_collect(&po, 0, n_layer + 1, 0, NULL, NULL, &stats) != VKLLM_OK)
        fail_msg("%s", vkllm_last_error());
    int checked = 0;
    double sum_rtn = 0, sum_gptq = 0;
    for (uint64_t i = 0; i < f32->n_tensors; i++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)f32->tensors[i].name.len, f32->tensors[i].name.data);
        const gguf_tensor_info *a = gguf_find_tensor(rtn, name), *b = gguf_find_tensor(gptq, name);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(a->type, b->type);
        uint32_t layer;
        capture_kind kind;
        if (!calib_slot_of(name, n_layer, &layer, &kind) || !quant_gptq_supports(a->type)) continue;
        const calib_slot *slot = calib_stats_find(stats, layer, kind);
        assert_non_null(slot);
        const double e_rtn = tensor_error(&f32->tensors[i], a, slot), e_gptq = tensor_error(&f32->tensors[i], b, slot);
        sum_rtn += e_rtn, sum_gptq += e_gptq;
        printf("%-24s %-5s output error: GPTQ %.4g, round-to-nearest %.4g\n", name, quant_get_traits(a->type)->name,
               e_gptq, e_rtn);
        assert_true(e_gptq < e_rtn);
        checked++;
    }
    printf("all %d calibrated weights: GPTQ %.4g, round-to-nearest %.4g\n", checked, sum_gptq, sum_rtn);
    assert_true(checked == 5 * 6 + 1); /* ffn_down (172 columns) stays F16: no block divides it */
    calib_stats_free(stats);

    /* A budget of one layer's statistics at a time: the text runs once per layer, the file is the same. */
    co.max_bytes = 1;
    if (quantize_file_ex(model, rtn_path, &recipe, &with) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    gguf_close(rtn);
    assert_int_equal(gguf_open(rtn_path, &rtn), VKLLM_OK);
    for (uint64_t i = 0; i < gptq->n_tensors; i++) {
        const gguf_tensor_info *t = &gptq->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        const gguf_tensor_info *u = gguf_find_tensor(rtn, name);
        assert_non_null(u);
        assert_int_equal(t->size, u->size);
        assert_memory_equal(t->data, u->data, t->size);
    }
    gguf_close(f32), gguf_close(rtn), gguf_close(gptq);
    remove(rtn_path), remove(gptq_path);
}

/* The quantizers' threads (quant/parallel.h) share out rows, never partial sums: GPTQ with act-order and a second
 * round (the row split, the refit, the parallel Cholesky factor and inverse of a 512-column Hessian) and the
 * calibration Hessians (the rows of H) are bitwise the same on 1 and 3 threads. */
static void test_gptq_threads(void **state)
{
    (void)state;
    const char *saved = getenv("VKLLM_QUANT_THREADS");
    char *keep = saved ? strdup(saved) : NULL;
    static const quant_type types[] = {QUANT_Q4_0, QUANT_Q4_K};
    uint8_t *bytes[2][2];
    calib_stats *stats[2] = {NULL, NULL};
    const char *model = th_join_(th_shared_dir(), "models/stories260K.gguf");
    const char *calib = th_join_(th_shared_dir(), "data/stories-calib.txt");
    const bool have_model = access(model, R_OK) == 0 && access(calib, R_OK) == 0;
    for (int run = 0; run < 2; run++) {
        setenv("VKLLM_QUANT_THREADS", run ? "3" : "1", 1);
        quant_gptq_params p = {.damp = 0.01, .act_order = true, .rounds = 1, .descent = 1};
        quant_gptq_hessian *g = NULL;
        if (quant_gptq_prepare(g_h, COLS, &p, &g) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
        for (int t = 0; t < 2; t++) {
            float *w = malloc((size_t)ROWS * COLS * sizeof *w);
            memcpy(w, g_w, (size_t)ROWS * COLS * sizeof *w);
            bytes[run][t] = malloc(quant_row_size(types[t], COLS) * ROWS);
            if (quant_gptq_quantize(types[t], w, ROWS, COLS, g, NULL, bytes[run][t]) != VKLLM_OK)
                fail_msg("%s", vkllm_last_error());
            free(w);
        }
        quant_gptq_free(g);
        /* 256 rows: the FFN activation's 172 x 172 Hessian takes threads (calib_stats.c's threshold) */
        calib_pass_options po = {.model = model, .text_path = calib, .n_ctx = 256, .chunks = 2};
        if (have_model && calib_stats_collect(&po, 0, 1, 0, NULL, NULL, &stats[run]) != VKLLM_OK)
            fail_msg("%s", vkllm_last_error());
    }
    for (int t = 0; t < 2; t++) {
        assert_memory_equal(bytes[0][t], bytes[1][t], quant_row_size(types[t], COLS) * ROWS);
        free(bytes[0][t]), free(bytes[1][t]);
    }
    if (have_model) {
        assert_int_equal(stats[0]->n_slots, stats[1]->n_slots);
        for (uint32_t i = 0; i < stats[0]->n_slots; i++) {
            const calib_slot *a = &stats[0]->slots[i], *b = &stats[1]->slots[i];
            assert_int_equal(a->width, b->width);
            assert_memory_equal(a->h, b->h, (size_t)a->width * a->width * sizeof *a->h);
            assert_memory_equal(a->abs_sum, b->abs_sum, a->width * sizeof *a->abs_sum);
        }
        calib_stats_free(stats[0]), calib_stats_free(stats[1]);
    }
    if (keep) setenv("VKLLM_QUANT_THREADS", keep, 1);
    else unsetenv("VKLLM_QUANT_THREADS");
    free(keep);
}

/* GPTQ of weight `name` of `model` with the statistics of input (layer, kind) measured on the model `measured`,
 * as vkllm quantize does (no imatrix: the mean x^2 steers the block scale searches); with `model` as the reference
 * pass and the weight moved to its float target first when float_target. */
static uint8_t *gptq_with_stats_of(const char *model, const char *measured, const char *calib, const char *name,
                                   uint32_t layer, capture_kind kind, const quant_gptq_params *params,
                                   bool float_target)
{
    calib_pass_options po = {.model = measured, .text_path = calib, .n_ctx = 128, .chunks = 4,
                             .reference = float_target ? model : NULL};
    calib_stats *stats = NULL;
    if (calib_stats_collect(&po, layer, layer + 1, 1u << kind, NULL, NULL, &stats) != VKLLM_OK)
        fail_msg("%s", vkllm_last_error());
    const calib_slot *slot = calib_stats_find(stats, layer, kind);
    assert_non_null(slot);
    assert_int_equal(stats->n_slots, 1); /* only the input asked for */
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(model, &f), VKLLM_OK);
    const gguf_tensor_info *t = gguf_find_tensor(f, name);
    assert_non_null(t);
    const uint64_t n = t->ne[0], rows = t->ne[1];
    assert_int_equal(n, slot->width);
    double *h = malloc(n * n * sizeof *h);
    float *mean_sq = malloc(n * sizeof *mean_sq), *w = malloc(rows * n * sizeof *w);
    for (uint64_t i = 0; i < n * n; i++) h[i] = slot->h[i];
    for (uint64_t i = 0; i < n; i++) mean_sq[i] = (float)(h[i * n + i] / slot->count);
    for (uint64_t r = 0; r < rows; r++)
        assert_int_equal(quant_dequantize_row(t->type, (const uint8_t *)t->data + r * quant_row_size(t->type, n),
                                              w + r * n, n), VKLLM_OK);
    assert_true((slot->cross != NULL) == float_target);
    if (float_target) {
        const double ridge = quant_calib_retarget_damping(params->damp, slot->width, slot->count);
        quant_gptq_target *target = NULL;
        assert_int_equal(quant_gptq_target_prepare(slot->h, slot->cross, n, ridge, &target), VKLLM_OK);
        assert_int_equal(quant_gptq_retarget(target, w, rows), VKLLM_OK);
        quant_gptq_target_free(target);
    }
    quant_gptq_hessian *g = NULL;
    assert_int_equal(quant_gptq_prepare(h, n, params, &g), VKLLM_OK);
    uint8_t *out = malloc(rows * quant_row_size(QUANT_Q4_0, n));
    if (quant_gptq_quantize(QUANT_Q4_0, w, rows, n, g, mean_sq, out) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    quant_gptq_free(g);
    free(h), free(mean_sq), free(w);
    gguf_close(f);
    calib_stats_free(stats);
    return out;
}

static void expect_tensor_bytes(const char *path, const char *name, const uint8_t *bytes, bool equal)
{
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(path, &f), VKLLM_OK);
    const gguf_tensor_info *t = gguf_find_tensor(f, name);
    assert_non_null(t);
    assert_int_equal(t->type, QUANT_Q4_0);
    printf("%s: %s the weights GPTQ rounds with the statistics asked for\n", name, equal ? "equal to" : "differs from");
    if (equal) assert_memory_equal(t->data, bytes, t->size);
    else assert_memory_not_equal(t->data, bytes, t->size);
    gguf_close(f);
}

/* Sequential GPTQ (--sequential input): each weight's Hessian is that of the model as quantized before it, and
 * (by default) the weight is first moved to its float target, the unquantized model's output, from the cross
 * moments of a pass of the unquantized model beside.  Shown exactly: layer 1's FFN input measured on the finished
 * file (whose layer 0 and layer 1 attention are what the stage saw), with the unquantized model as the reference,
 * gives GPTQ the bytes the file has for blk.1.ffn_gate, while the unquantized model's statistics do not; with
 * quantized_target (the GPTQ paper's sequential GPTQ) the file's own statistics alone give its bytes, which differ
 * from the float target's; per layer (--sequential layer), layer 0's weights are those of the first stage, which
 * saw only the quantized token embeddings.  The stage's scratch file is removed. */
static void test_gptq_sequential(void **state)
{
    (void)state;
    const char *model = th_join_(th_shared_dir(), "models/stories260K.gguf");
    const char *calib = th_join_(th_shared_dir(), "data/stories-calib.txt");
    if (access(model, R_OK) != 0 || access(calib, R_OK) != 0) skip();
    char seq_path[512], own_path[512], layer_path[512], scratch[600];
    snprintf(seq_path, sizeof seq_path, "%s/test_gptq_seq_%ld.gguf", th_binary_dir(), (long)getpid());
    snprintf(own_path, sizeof own_path, "%s/test_gptq_own_%ld.gguf", th_binary_dir(), (long)getpid());
    snprintf(layer_path, sizeof layer_path, "%s/test_gptq_layer_%ld.gguf", th_binary_dir(), (long)getpid());
    quant_recipe recipe;
    assert_true(quant_recipe_from_name("Q4_0", true, &recipe));
    quant_calib_options co = {.text_path = calib, .n_ctx = 128, .chunks = 4, .gptq_params = {.damp = 0.01, .rounds = 1},
                              .gptq = true, .sequential = QUANT_SEQUENTIAL_INPUT};
    quantize_options with = {.calib = &co};
    if (quantize_file_ex(model, seq_path, &recipe, &with) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    snprintf(scratch, sizeof scratch, "%s.stage.gguf", seq_path);
    assert_int_not_equal(access(scratch, F_OK), 0);

    const char *gate = "blk.1.ffn_gate.weight";
    uint8_t *from_file = gptq_with_stats_of(model, seq_path, calib, gate, 1, CAPTURE_FFN_IN, &co.gptq_params, true);
    expect_tensor_bytes(seq_path, gate, from_file, true);
    uint8_t *unquantized = gptq_with_stats_of(model, model, calib, gate, 1, CAPTURE_FFN_IN, &co.gptq_params, false);
    expect_tensor_bytes(seq_path, gate, unquantized, false);

    co.quantized_target = true;
    if (quantize_file_ex(model, own_path, &recipe, &with) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    uint8_t *own = gptq_with_stats_of(model, own_path, calib, gate, 1, CAPTURE_FFN_IN, &co.gptq_params, false);
    expect_tensor_bytes(own_path, gate, own, true);
    expect_tensor_bytes(seq_path, gate, own, false);
    co.quantized_target = false;

    co.sequential = QUANT_SEQUENTIAL_LAYER;
    if (quantize_file_ex(model, layer_path, &recipe, &with) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    uint8_t *first_stage = gptq_with_stats_of(model, seq_path, calib, "blk.0.attn_output.weight", 0, CAPTURE_ATTN_OUT,
                                              &co.gptq_params, true);
    /* per input, blk.0.attn_output saw layer 0's Q/K/V quantized; per layer it did not */
    expect_tensor_bytes(seq_path, "blk.0.attn_output.weight", first_stage, true);
    expect_tensor_bytes(layer_path, "blk.0.attn_output.weight", first_stage, false);

    /* AWQ's rewrite and the stages do not compose (refused) */
    co.awq = true;
    assert_int_not_equal(quantize_file_ex(model, layer_path, &recipe, &with), VKLLM_OK);
    assert_non_null(strstr(vkllm_last_error(), "sequential calibration goes with GPTQ alone"));
    free(from_file), free(unquantized), free(own), free(first_stage);
    remove(seq_path), remove(own_path), remove(layer_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gptq_beats_rtn),
        cmocka_unit_test(test_gptq_act_order_beats_rtn),
        cmocka_unit_test(test_gptq_bad_arguments),
        cmocka_unit_test(test_gptq_retarget),
        cmocka_unit_test(test_gptq_model),
        cmocka_unit_test(test_gptq_sequential),
        cmocka_unit_test(test_gptq_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
