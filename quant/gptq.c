/* GPTQ onto the GGUF block formats (see gptq.h).  The steps and their names follow the paper's Algorithm 1 and
 * its reference implementation: H += damp I, H^-1 by Cholesky, U = the upper Cholesky factor of H^-1, then per
 * batch of columns: round column k, err = (w - q) / U[k][k], subtract err * U[k][j] from the later columns of the
 * batch at once and from the columns after the batch lazily, once per batch. */
#include "gptq.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "quant_internal.h"

struct quant_gptq_hessian {
    uint64_t cols;
    double *u;       /* cols x cols, upper triangular, in the permuted column order */
    float *h;        /* cols x cols, H undamped, dead columns cut off, in the original order (float: the refit's
                      * few unknowns per block need no more, and a 7B model's 11008-column input takes 485 MB);
                      * NULL: no refit */
    uint32_t *perm;  /* perm[k]: the original column processed k-th */
    bool *dead;      /* [cols] original columns no token touched */
    bool act_order;
    uint32_t batch;
    uint32_t rounds;
    uint32_t descent;
    double ridge;    /* the damping added to diag(H) for the factorisation, which the descent keeps */
};

void quant_gptq_free(quant_gptq_hessian *g)
{
    if (!g) return;
    free(g->u);
    free(g->h);
    free(g->perm);
    free(g->dead);
    free(g);
}

/* The Cholesky factorisation, right-looking on the upper triangle: row k of U = L^T is finished (its pivot's square
 * root, the row divided by it) once every earlier row's product has been subtracted from it, and is then subtracted
 * from the rows after it, an axpy along each row (which vectorizes).  Each entry still receives its products in
 * ascending k, as in the textbook column-by-column loop, so the factor is the same to the bit; blocks of
 * CHOLESKY_BLOCK rows keep their rows in cache while the rest of the matrix is updated, a row per thread in turn. */
enum { CHOLESKY_BLOCK = 32 };

typedef struct cholesky_trailing {
    double *a;
    uint64_t n, k0, k1;
} cholesky_trailing;

/* Rows j >= k1 (j = k1 + thread, + n_threads, ...) receive the products of the block's rows k0..k1-1. */
static void cholesky_update_rows(void *p, uint32_t thread, uint32_t n_threads)
{
    const cholesky_trailing *c = p;
    const uint64_t n = c->n;
    for (uint64_t j = c->k1 + thread; j < n; j += n_threads) {
        double *aj = c->a + j * n;
        for (uint64_t k = c->k0; k < c->k1; k++) {
            const double *ak = c->a + k * n;
            const double f = ak[j];
            for (uint64_t i = j; i < n; i++) aj[i] -= f * ak[i];
        }
    }
}

/* In place: a (n x n, symmetric; its lower triangle is read) -> its lower Cholesky factor L (a = L L^T; upper part
 * zeroed).  False if a pivot is not positive. */
static bool cholesky_lower(double *a, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) /* the lower triangle's values, as the factor reads them, above */
        for (uint64_t j = 0; j < i; j++) a[j * n + i] = a[i * n + j];
    const uint32_t threads = quant_threads();
    for (uint64_t k0 = 0; k0 < n; k0 += CHOLESKY_BLOCK) {
        const uint64_t k1 = k0 + CHOLESKY_BLOCK < n ? k0 + CHOLESKY_BLOCK : n;
        for (uint64_t k = k0; k < k1; k++) {
            double *ak = a + k * n;
            if (!(ak[k] > 0)) return false;
            const double d = sqrt(ak[k]);
            ak[k] = d;
            for (uint64_t i = k + 1; i < n; i++) ak[i] /= d;
            for (uint64_t j = k + 1; j < k1; j++) { /* the block's own later rows */
                double *aj = a + j * n;
                const double f = ak[j];
                for (uint64_t i = j; i < n; i++) aj[i] -= f * ak[i];
            }
        }
        cholesky_trailing c = {a, n, k0, k1};
        const uint64_t rest = n - k1, products = rest * rest / 2 * (k1 - k0);
        quant_parallel_run(cholesky_update_rows, &c, products >= (1u << 20) ? threads : 1);
    }
    for (uint64_t i = 0; i < n; i++) /* L = U^T below the diagonal, zeros above */
        for (uint64_t j = i + 1; j < n; j++) {
            a[j * n + i] = a[i * n + j];
            a[i * n + j] = 0;
        }
    return true;
}

typedef struct invert_job {
    const double *l; /* n x n lower triangular, read only */
    double *x;       /* n x n: X = L^-1, row-major */
    uint64_t n;
} invert_job;

/* Columns of 32 dealt out to threads in turn: column j's share of the work falls with j. */
enum { INVERT_COLUMNS = 32 };

/* X = L^-1 a row at a time: row i is -(sum over k < i of L[i][k] * row k of X) / L[i][i], the sum in ascending k
 * (an axpy over the row, which vectorizes); a thread computes its own columns of every row and reads only those
 * of the rows before, so the threads need no synchronisation and the result is the same for any count. */
static void invert_columns(void *p, uint32_t thread, uint32_t n_threads)
{
    const invert_job *job = p;
    const uint64_t n = job->n;
    for (uint64_t i = 0; i < n; i++) {
        const double *li = job->l + i * n;
        double *xi = job->x + i * n;
        const double inv = 1.0 / li[i];
        for (uint64_t j0 = (uint64_t)thread * INVERT_COLUMNS; j0 < i; j0 += (uint64_t)n_threads * INVERT_COLUMNS) {
            const uint64_t j1 = j0 + INVERT_COLUMNS < i ? j0 + INVERT_COLUMNS : i;
            double acc[INVERT_COLUMNS] = {0};
            for (uint64_t k = j0; k < i; k++) {
                const double c = li[k];
                const double *xk = job->x + k * n;
                const uint64_t end = k + 1 < j1 ? k + 1 : j1; /* X[k][j] = 0 for j > k */
                for (uint64_t j = j0; j < end; j++) acc[j - j0] += c * xk[j];
            }
            for (uint64_t j = j0; j < j1; j++) xi[j] = -acc[j - j0] * inv;
        }
        if (i / INVERT_COLUMNS % n_threads == thread) xi[i] = inv; /* the diagonal: its column's thread */
    }
}

/* L lower triangular -> L^-1 (lower), in place; x: n x n doubles of scratch. */
static void invert_lower(double *l, uint64_t n, double *x)
{
    invert_job job = {l, x, n};
    const uint32_t threads = n >= 4 * INVERT_COLUMNS ? quant_threads() : 1;
    quant_parallel_run(invert_columns, &job, threads);
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = 0; j < n; j++) l[i * n + j] = j <= i ? x[i * n + j] : 0.0;
}

/* h (n x n, permuted and damped) -> U, upper triangular with H^-1 = U^T U, in place.  With J the reversal of
 * the order, J H J = L L^T gives H = R R^T with R = J L J upper triangular, so H^-1 = R^-T R^-1 and
 * U = R^-1 = J L^-1 J: one Cholesky and one triangular inverse (the reference implementation's cholesky_inverse
 * then cholesky(upper) computes the same U). */
static bool factor(double *h, uint64_t n, double *scratch)
{
    for (uint64_t a = 0; a < n; a++)
        for (uint64_t b = 0; b < n; b++) scratch[a * n + b] = h[(n - 1 - a) * n + (n - 1 - b)];
    if (!cholesky_lower(scratch, n)) return false;
    invert_lower(scratch, n, h); /* h is copied: its room serves the inverse's columns */
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = 0; j < n; j++) h[i * n + j] = j >= i ? scratch[(n - 1 - i) * n + (n - 1 - j)] : 0;
    return true;
}

/* g->h: h itself (the calibration's output error; the damping only steadies H^-1), dead columns cut off (1 on
 * their diagonal, as for the factorisation), in the original order. */
static vkllm_status keep_hessian(quant_gptq_hessian *g, const double *h)
{
    const uint64_t n = g->cols;
    g->h = malloc(n * n * sizeof *g->h);
    if (!g->h) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory for a Hessian of %llu columns",
                                 (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = 0; j < n; j++)
            g->h[i * n + j] = g->dead[i] || g->dead[j] ? (i == j ? 1.0f : 0.0f) : (float)h[i * n + j];
    return VKLLM_OK;
}

static const double *g_sort_diag;
static int by_diag_desc(const void *a, const void *b)
{
    double x = g_sort_diag[*(const uint32_t *)a], y = g_sort_diag[*(const uint32_t *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1; /* stable: the original order on ties */
}

vkllm_status quant_gptq_prepare(const double *h, uint64_t cols, const quant_gptq_params *params,
                                quant_gptq_hessian **out)
{
    *out = NULL;
    if (cols == 0 || cols > UINT32_MAX) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gptq: %llu columns",
                                                          (unsigned long long)cols);
    quant_gptq_hessian *g = calloc(1, sizeof *g);
    double *diag = malloc(2 * cols * sizeof *diag), *hp = malloc(cols * cols * sizeof *hp),
           *scratch = malloc(cols * cols * sizeof *scratch);
    if (g) {
        g->u = hp;
        g->perm = malloc(cols * sizeof *g->perm);
        g->dead = calloc(cols, sizeof *g->dead);
    }
    if (!g || !diag || !hp || !scratch || !g->perm || !g->dead) {
        if (g) g->u = hp; else free(hp);
        quant_gptq_free(g);
        free(diag), free(scratch);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory for a Hessian of %llu columns",
                          (unsigned long long)cols);
    }
    g->cols = cols;
    g->act_order = params->act_order;
    g->batch = params->batch ? params->batch : 128;
    g->rounds = params->rounds;
    g->descent = params->descent;
    double mean = 0;
    for (uint64_t i = 0; i < cols; i++) {
        diag[i] = h[i * cols + i];
        g->dead[i] = !(diag[i] > 0);
        if (g->dead[i]) diag[i] = 1; /* the reference implementation's H[dead, dead] = 1 */
        mean += diag[i];
        g->perm[i] = (uint32_t)i;
    }
    mean /= (double)cols;
    if (g->act_order) {
        g_sort_diag = diag;
        qsort(g->perm, cols, sizeof *g->perm, by_diag_desc);
    }
    vkllm_status st = VKLLM_ERROR_INVALID_ARGUMENT;
    double damp = params->damp > 0 ? params->damp : 0.01;
    for (int attempt = 0; attempt < 4 && st != VKLLM_OK; attempt++, damp *= 10) {
        for (uint64_t a = 0; a < cols; a++) {
            uint64_t i = g->perm[a];
            for (uint64_t b = 0; b < cols; b++) {
                uint64_t j = g->perm[b];
                double v = g->dead[i] || g->dead[j] ? (i == j ? 1.0 : 0.0) : h[i * cols + j];
                hp[a * cols + b] = v + (a == b ? damp * mean : 0.0);
            }
        }
        if (factor(hp, cols, scratch)) st = VKLLM_OK;
    }
    g->ridge = damp / 10 * mean; /* (the loop's step ran once more after the last attempt) */
    free(diag), free(scratch);
    if (st != VKLLM_OK) {
        quant_gptq_free(g);
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "gptq: the Hessian of %llu columns is not positive definite even with damping %g",
                          (unsigned long long)cols, damp / 10);
    }
    st = params->no_refit ? VKLLM_OK : keep_hessian(g, h);
    if (st != VKLLM_OK) {
        quant_gptq_free(g);
        return st;
    }
    *out = g;
    return VKLLM_OK;
}

typedef struct retarget_job {
    const float *h, *cross;
    const double *l;   /* the lower Cholesky factor of H + ridge I (dead columns: identity) */
    const double *wt;  /* cols x block: the block's rows of W, transposed */
    double *y;         /* cols x block: (C - H)^T W^T, then (L L^T)^-1 of it */
    uint64_t cols, block;
} retarget_job;

/* The rows of W are the right-hand sides, a column of y each; thread t owns the columns [c0, c1), so every axpy
 * below runs along them (and vectorizes) and each value sees the same operations in the same order whatever the
 * number of threads. */
static void retarget_region(void *p, uint32_t thread, uint32_t n_threads)
{
    const retarget_job *j = p;
    const uint64_t n = j->cols, m = j->block, c0 = m * thread / n_threads, c1 = m * (thread + 1) / n_threads;
    if (c0 == c1) return;
    for (uint64_t b = 0; b < n; b++)
        for (uint64_t c = c0; c < c1; c++) j->y[b * m + c] = 0;
    for (uint64_t a = 0; a < n; a++) { /* y[b] += (C - H)[a][b] w[a] */
        const float *ca = j->cross + a * n, *ha = j->h + a * n;
        const double *wa = j->wt + a * m;
        for (uint64_t b = 0; b < n; b++) {
            const double d = (double)ca[b] - ha[b];
            double *yb = j->y + b * m;
            if (d != 0)
                for (uint64_t c = c0; c < c1; c++) yb[c] += d * wa[c];
        }
    }
    for (uint64_t i = 0; i < n; i++) { /* L z = y */
        const double *li = j->l + i * n;
        double *yi = j->y + i * m;
        for (uint64_t k = 0; k < i; k++) {
            const double f = li[k], *yk = j->y + k * m;
            if (f != 0)
                for (uint64_t c = c0; c < c1; c++) yi[c] -= f * yk[c];
        }
        for (uint64_t c = c0; c < c1; c++) yi[c] /= li[i];
    }
    for (uint64_t i = n; i-- > 0;) { /* L^T y = z */
        double *yi = j->y + i * m;
        for (uint64_t k = i + 1; k < n; k++) {
            const double f = j->l[k * n + i], *yk = j->y + k * m;
            if (f != 0)
                for (uint64_t c = c0; c < c1; c++) yi[c] -= f * yk[c];
        }
        for (uint64_t c = c0; c < c1; c++) yi[c] /= j->l[i * n + i];
    }
}

/* Rows of W moved a block at a time: the transposed copies stay small whatever the weight. */
enum { RETARGET_BLOCK = 256 };

struct quant_gptq_target {
    const float *h, *cross;
    double *l;  /* the lower Cholesky factor of H + ridge I (dead columns: identity) */
    bool *dead; /* columns no token reached */
    uint64_t cols;
};

void quant_gptq_target_free(quant_gptq_target *t)
{
    if (!t) return;
    free(t->l);
    free(t->dead);
    free(t);
}

vkllm_status quant_gptq_target_prepare(const float *h, const float *cross, uint64_t cols, double damp,
                                       quant_gptq_target **out)
{
    *out = NULL;
    quant_gptq_target *t = calloc(1, sizeof *t);
    if (t) {
        t->l = malloc(cols * cols * sizeof *t->l);
        t->dead = calloc(cols, sizeof *t->dead);
    }
    if (!t || !t->l || !t->dead) {
        quant_gptq_target_free(t);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory for a Hessian of %llu columns",
                          (unsigned long long)cols);
    }
    t->h = h, t->cross = cross, t->cols = cols;
    double mean = 0;
    for (uint64_t i = 0; i < cols; i++) {
        t->dead[i] = !(h[i * cols + i] > 0);
        mean += t->dead[i] ? 1.0 : h[i * cols + i];
    }
    mean /= (double)cols;
    if (!(damp > 0)) damp = 0.01;
    bool factored = false;
    for (int attempt = 0; attempt < 4 && !factored; attempt++, damp *= 10) {
        for (uint64_t a = 0; a < cols; a++)
            for (uint64_t b = 0; b < cols; b++)
                t->l[a * cols + b] = t->dead[a] || t->dead[b] ? (a == b ? 1.0 : 0.0)
                                                              : h[a * cols + b] + (a == b ? damp * mean : 0.0);
        factored = cholesky_lower(t->l, cols);
    }
    if (!factored) {
        quant_gptq_target_free(t);
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gptq: the Hessian of %llu columns is not positive definite "
                          "even with damping %g", (unsigned long long)cols, damp / 10);
    }
    *out = t;
    return VKLLM_OK;
}

vkllm_status quant_gptq_retarget(const quant_gptq_target *t, float *w, uint64_t rows)
{
    const uint64_t cols = t->cols, block = rows < RETARGET_BLOCK ? rows : RETARGET_BLOCK;
    double *wt = malloc(cols * block * sizeof *wt), *y = malloc(cols * block * sizeof *y);
    vkllm_status st = wt && y ? VKLLM_OK
                              : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory for %llu rows of %llu",
                                           (unsigned long long)block, (unsigned long long)cols);
    for (uint64_t r0 = 0; st == VKLLM_OK && r0 < rows; r0 += block) {
        const uint64_t m = rows - r0 < block ? rows - r0 : block;
        for (uint64_t r = 0; r < m; r++)
            for (uint64_t a = 0; a < cols; a++) wt[a * m + r] = w[(r0 + r) * cols + a];
        retarget_job job = {t->h, t->cross, t->l, wt, y, cols, m};
        const uint64_t work = m * cols * cols;
        quant_parallel_run(retarget_region, &job, work >= (1u << 20) ? quant_threads() : 1);
        for (uint64_t r = 0; r < m; r++)
            for (uint64_t b = 0; b < cols; b++)
                if (!t->dead[b]) w[(r0 + r) * cols + b] += (float)y[b * m + r];
    }
    free(wt), free(y);
    return st;
}

enum { GPTQ_MAX_BLOCK = 256 }; /* bytes: the largest block GPTQ writes is Q6_K's 210 */
_Static_assert(sizeof(block_q6_K) <= GPTQ_MAX_BLOCK && sizeof(block_q5_K) <= GPTQ_MAX_BLOCK, "block scratch");

typedef struct gptq_format {
    uint32_t type;
    quant_set_levels_fn set_levels;
    int nmax;         /* codes 0..nmax */
    uint32_t refit;   /* f16 block parameters at the block's start refit after rounding (refit_scales): 1 for
                       * value = d * (code - zero point), 2 for value = d * code + m; 0: none (K-quants) */
} gptq_format;

static const gptq_format formats[] = {
    {QUANT_Q4_0, quant_q4_0_set_levels, 15, 1}, {QUANT_Q4_1, quant_q4_1_set_levels, 15, 2},
    {QUANT_Q5_0, quant_q5_0_set_levels, 31, 1}, {QUANT_Q5_1, quant_q5_1_set_levels, 31, 2},
    {QUANT_Q8_0, quant_q8_0_set_levels, 255, 1}, {QUANT_Q2_K, quant_q2_K_set_levels, 3, 0},
    {QUANT_Q3_K, quant_q3_K_set_levels, 7, 0},   {QUANT_Q4_K, quant_q4_K_set_levels, 15, 0},
    {QUANT_Q5_K, quant_q5_K_set_levels, 31, 0},  {QUANT_Q6_K, quant_q6_K_set_levels, 63, 0},
};
_Static_assert(offsetof(block_q4_0, d) == 0 && offsetof(block_q5_0, d) == 0 && offsetof(block_q8_0, d) == 0 &&
                   offsetof(block_q4_1, d) == 0 && offsetof(block_q4_1, m) == 2 && offsetof(block_q5_1, d) == 0 &&
                   offsetof(block_q5_1, m) == 2,
               "refit_row writes d (and m) as the block's first f16 values");

static const gptq_format *find_format(uint32_t type)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].type == type) return &formats[i];
    return NULL;
}

bool quant_gptq_supports(uint32_t type) { return find_format(type) != NULL; }

/* The state of one quantization: W in the permuted order, each row's blocks with their chosen scales, and the
 * grid (value = scale * code + offset) of every weight. */
typedef struct gptq_run {
    const gptq_format *fmt;
    const quant_gptq_hessian *g;
    uint64_t rows, cols, be, row_bytes;
    uint64_t *pos;       /* [cols] original column -> permuted position */
    float *wp;           /* rows x cols, permuted */
    uint8_t *blocks;     /* rows x row_bytes: the scales chosen, levels filled at the end */
    float *scale, *off;  /* rows x cols (original order): the grid */
    uint8_t *codes;      /* rows x cols (original order) */
    const float *importance;
} gptq_run;

/* Records the grid of row `row`'s block bi as its block parameters stand: the block dequantized with every code
 * 0, and with every code 1. */
static vkllm_status grid_of_block(gptq_run *r, uint64_t row, uint64_t bi)
{
    float zero[QUANT_QK_K], one[QUANT_QK_K];
    uint8_t codes[QUANT_QK_K];
    const uint64_t bytes = r->row_bytes / (r->cols / r->be);
    _Alignas(16) uint8_t copy[GPTQ_MAX_BLOCK]; /* aligned: set_levels writes the block struct */
    memcpy(copy, r->blocks + row * r->row_bytes + bi * bytes, bytes);
    memset(codes, 0, r->be);
    r->fmt->set_levels(copy, codes);
    VKLLM_TRY(quant_dequantize_row(r->fmt->type, copy, zero, r->be));
    memset(codes, 1, r->be);
    r->fmt->set_levels(copy, codes);
    VKLLM_TRY(quant_dequantize_row(r->fmt->type, copy, one, r->be));
    for (uint64_t j = 0; j < r->be; j++) {
        r->off[row * r->cols + bi * r->be + j] = zero[j];
        r->scale[row * r->cols + bi * r->be + j] = one[j] - zero[j];
    }
    return VKLLM_OK;
}

/* Chooses block bi's scales for rows [r0, r1) from the weights as they are now, and records its grid. */
static vkllm_status choose_scales(gptq_run *r, uint64_t bi, uint64_t r0, uint64_t r1)
{
    float x[QUANT_QK_K];
    for (uint64_t row = r0; row < r1; row++) {
        for (uint64_t j = 0; j < r->be; j++) x[j] = r->wp[row * r->cols + r->pos[bi * r->be + j]];
        uint8_t *block = r->blocks + row * r->row_bytes + bi * (r->row_bytes / (r->cols / r->be));
        VKLLM_TRY(quant_quantize_row_weighted(r->fmt->type, x, block, r->be,
                                              r->importance ? r->importance + bi * r->be : NULL));
        VKLLM_TRY(grid_of_block(r, row, bi));
    }
    return VKLLM_OK;
}

/* The nearest grid point of weight (row, original column c); returns its value. */
static float round_to_grid(gptq_run *r, uint64_t row, uint64_t c, float w)
{
    const float a = r->scale[row * r->cols + c], b = r->off[row * r->cols + c];
    int code = 0;
    if (a != 0) code = quant_clamp_int(quant_nearest_int((w - b) / a), 0, r->fmt->nmax);
    r->codes[row * r->cols + c] = (uint8_t)code;
    return a * (float)code + b;
}

/* A piece of work over the rows of one quantization, rows independent: thread t takes rows [rows t / n,
 * rows (t + 1) / n). */
typedef struct rows_job rows_job;
struct rows_job {
    gptq_run *r;
    const float *w;
    bool hold;                             /* gptq_rows */
    double *out;                           /* row_errors_of */
    vkllm_status (*rows)(const rows_job *job, uint64_t r0, uint64_t r1);
    const char *what;                      /* for the message of a failure */
    vkllm_status st[QUANT_MAX_THREADS];
};

/* Threads where the rows are many enough to share. */
static uint32_t row_threads(const gptq_run *r)
{
    const uint32_t t = quant_threads();
    return r->rows >= 2 * (uint64_t)t ? t : 1;
}

static void rows_region(void *p, uint32_t t, uint32_t n)
{
    rows_job *job = p;
    const uint64_t r0 = job->r->rows * t / n, r1 = job->r->rows * (t + 1) / n;
    job->st[t] = job->rows(job, r0, r1);
}

/* job->rows over all the rows, shared among threads; a failure's message made again here (messages are per
 * thread), unless one thread did all. */
static vkllm_status run_rows(rows_job *job)
{
    const uint32_t n = row_threads(job->r);
    if (n == 1) return job->rows(job, 0, job->r->rows);
    quant_parallel_run(rows_region, job, n);
    for (uint32_t t = 0; t < n; t++)
        if (job->st[t] != VKLLM_OK)
            return vkllm_fail(job->st[t], "gptq: %s failed for a share of the rows", job->what);
    return VKLLM_OK;
}

/* GPTQ over rows [r0, r1): rows are independent (each reads U and writes only itself), so the rows are shared out
 * among threads.  hold: the blocks' parameters as they are (a later round), else chosen as GPTQ reaches each
 * block. */
static vkllm_status gptq_rows(const rows_job *job, uint64_t r0, uint64_t r1)
{
    gptq_run *r = job->r;
    const bool hold = job->hold;
    const quant_gptq_hessian *g = r->g;
    const uint64_t n = r->cols, nr = r1 - r0;
    uint64_t batch = g->batch;
    if (batch % r->be) batch = (batch / r->be + 1) * r->be; /* a block never straddles two batches */
    if (nr == 0) return VKLLM_OK;
    double *err = malloc(nr * batch * sizeof *err);
    if (!err) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory");
    vkllm_status st = VKLLM_OK;
    if (g->act_order && !hold) /* static groups: every block's scales from the original weights */
        for (uint64_t bi = 0; bi < n / r->be && st == VKLLM_OK; bi++) st = choose_scales(r, bi, r0, r1);
    for (uint64_t i1 = 0; i1 < n && st == VKLLM_OK; i1 += batch) {
        const uint64_t i2 = i1 + batch < n ? i1 + batch : n;
        for (uint64_t k = i1; k < i2 && st == VKLLM_OK; k++) {
            const uint64_t c = g->perm[k];
            if (!g->act_order && !hold && c % r->be == 0) st = choose_scales(r, c / r->be, r0, r1);
            const double d = g->u[k * n + k];
            const double *uk = g->u + k * n;
            for (uint64_t row = r0; row < r1; row++) {
                float *wr = r->wp + row * n;
                const float w = wr[k];
                const double e = ((double)w - round_to_grid(r, row, c, w)) / d;
                err[(row - r0) * batch + (k - i1)] = e;
                for (uint64_t j = k + 1; j < i2; j++) wr[j] -= (float)(e * uk[j]);
            }
        }
        /* The lazy update: the batch's errors reach the later columns in one pass. */
        for (uint64_t row = r0; row < r1 && i2 < n; row++) {
            float *wr = r->wp + row * n;
            for (uint64_t k = i1; k < i2; k++) {
                const double e = err[(row - r0) * batch + (k - i1)];
                if (e == 0) continue;
                const double *uk = g->u + k * n;
                for (uint64_t j = i2; j < n; j++) wr[j] -= (float)(e * uk[j]);
            }
        }
    }
    free(err);
    return st;
}

static vkllm_status run_gptq(gptq_run *r, bool hold)
{
    rows_job job = {.r = r, .hold = hold, .rows = gptq_rows, .what = "rounding"};
    return run_rows(&job);
}

/* The error of parameters p in H's norm, less the constant w^T H w: p^T A p - 2 p^T b (A, b of refit_row). */
static double refit_error(const double *a, const double *b, const double *p, uint64_t n)
{
    double e = 0;
    for (uint64_t i = 0; i < n; i++) {
        double ap = 0;
        for (uint64_t j = 0; j < n; j++) ap += a[i * n + j] * p[j];
        e += p[i] * (ap - 2 * b[i]);
    }
    return e;
}

/* Rows refit together, at most: their products with H run as one pass over H (refit_normal_equations), within
 * REFIT_BYTES of products (a row of 11008 columns of Q4_0 takes 31 MB: two at a time). */
enum { REFIT_ROWS = 64 };
#define REFIT_BYTES (64u << 20)

/* The basis of row `row` (see refit_row): the coefficient of each weight's block parameter d, code - zero point
 * (value = d * (code - zero point)) or code (value = d * code + m; m's coefficient is 1). */
static double basis_of(const gptq_run *r, uint64_t row, uint64_t j)
{
    const double c = r->codes[row * r->cols + j];
    if (r->fmt->refit == 2) return c;
    const float a = r->scale[row * r->cols + j], b = r->off[row * r->cols + j];
    return a != 0 ? c + (double)quant_nearest_int(b / a) : 0.0;
}

/* The normal equations of rows row0..row0 + nr (see refit_row): with T a row's basis (d's coefficient basis_of, m's
 * 1), A = T^T H T (np x np) and b = T^T H w (np) of row k at a[(q * np + c) * chunk + k] and b[c * chunk + k].  Via
 * ht = H T, ht[(i * np + q) * chunk + k] = the sum over the weights j of parameter q's block of H[i][j] times j's
 * coefficient.  Every innermost loop runs over the chunk's rows (k: contiguous, no reduction, so it vectorizes);
 * tt and wt: cols x chunk, the bases and the weights transposed; acc: chunk doubles. */
static void refit_normal_equations(const gptq_run *r, const float *w, uint64_t row0, uint64_t nr, uint64_t chunk,
                                   double *tt, double *wt, double *ht, double *a, double *b)
{
    const uint64_t n = r->cols, per = r->fmt->refit, nb = n / r->be, np = nb * per;
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t k = 0; k < nr; k++) {
            tt[j * chunk + k] = basis_of(r, row0 + k, j);
            wt[j * chunk + k] = r->g->dead[j] ? 0.0 : w[(row0 + k) * n + j];
        }
    for (uint64_t i = 0; i < n; i++) {
        const float *hi = r->g->h + i * n;
        for (uint64_t bq = 0; bq < nb; bq++) {
            double *acc = ht + (i * np + bq * per) * chunk, m = 0;
            memset(acc, 0, nr * sizeof *acc);
            for (uint64_t j = bq * r->be; j < (bq + 1) * r->be; j++) {
                const double hij = hi[j], *tj = tt + j * chunk;
                for (uint64_t k = 0; k < nr; k++) acc[k] += hij * tj[k];
                m += hij;
            }
            if (per == 2)
                for (uint64_t k = 0; k < nr; k++) acc[chunk + k] = m;
        }
    }
    memset(a, 0, np * np * chunk * sizeof *a);
    memset(b, 0, np * chunk * sizeof *b);
    for (uint64_t i = 0; i < n; i++) {
        const uint64_t q = i / r->be * per;
        const double *ti = tt + i * chunk, *wi = wt + i * chunk;
        for (uint64_t c = 0; c < np; c++) {
            const double *h = ht + (i * np + c) * chunk;
            double *bc = b + c * chunk, *ad = a + (q * np + c) * chunk;
            for (uint64_t k = 0; k < nr; k++) bc[k] += wi[k] * h[k], ad[k] += ti[k] * h[k];
            if (per == 2) {
                double *am = a + ((q + 1) * np + c) * chunk;
                for (uint64_t k = 0; k < nr; k++) am[k] += h[k];
            }
        }
    }
}

/* Refits row `row`'s block parameters to the codes GPTQ chose.  The row's values are T p: p the blocks' f16
 * parameters (d, or d and m), T (cols x np) their basis; the least-squares p of (w - T p)^T H (w - T p) solves
 * (T^T H T) p = T^T H w, whose terms refit_normal_equations made (row k of the chunk: a_all, b_all).  Kept, rounded
 * to f16, where that error is lower than the chosen parameters'.  scratch: 2 np^2 + 3 np doubles. */
static void refit_row(gptq_run *r, uint64_t row, const double *a_all, const double *b_all, uint64_t k,
                      uint64_t chunk, double *scratch)
{
    const uint64_t n = r->cols, per = r->fmt->refit, nb = n / r->be, np = nb * per;
    double *a = scratch, *l = a + np * np, *b = l + np * np, *p = b + np, *old = p + np;
    for (uint64_t q = 0; q < np; q++) {
        b[q] = b_all[q * chunk + k];
        for (uint64_t c = 0; c < np; c++) a[q * np + c] = a_all[(q * np + c) * chunk + k];
    }
    for (uint64_t bi = 0; bi < nb; bi++) {
        const uint8_t *blk = r->blocks + row * r->row_bytes + bi * (r->row_bytes / nb);
        for (uint64_t j = 0; j < per; j++) {
            uint16_t v;
            memcpy(&v, blk + 2 * j, 2);
            old[bi * per + j] = quant_f16_to_f32(v);
        }
    }
    /* A parameter nothing depends on (a block of zero codes has no d) keeps its value (its row and column of A
     * are zero but for a 1); the others get a ridge far below their scale, against rounding. */
    double top = 0;
    for (uint64_t c = 0; c < np; c++) top = a[c * np + c] > top ? a[c * np + c] : top;
    for (uint64_t c = 0; c < np; c++)
        if (!(a[c * np + c] > 1e-12 * top)) {
            for (uint64_t j = 0; j < np; j++) a[c * np + j] = a[j * np + c] = 0;
            a[c * np + c] = 1, b[c] = old[c];
        } else {
            a[c * np + c] += 1e-12 * top;
        }
    memcpy(l, a, np * np * sizeof *l);
    if (!cholesky_lower(l, np)) return;
    for (uint64_t i = 0; i < np; i++) { /* L y = b, then L^T p = y */
        double v = b[i];
        for (uint64_t j = 0; j < i; j++) v -= l[i * np + j] * p[j];
        p[i] = v / l[i * np + i];
    }
    for (uint64_t i = np; i-- > 0;) {
        double v = p[i];
        for (uint64_t j = i + 1; j < np; j++) v -= l[j * np + i] * p[j];
        p[i] = v / l[i * np + i];
    }
    for (uint64_t c = 0; c < np; c++) p[c] = quant_f16_to_f32(quant_f32_to_f16((float)p[c]));
    if (!(refit_error(a, b, p, np) < refit_error(a, b, old, np))) return;
    for (uint64_t bi = 0; bi < nb; bi++) {
        uint8_t *blk = r->blocks + row * r->row_bytes + bi * (r->row_bytes / nb);
        for (uint64_t j = 0; j < per; j++) {
            const uint16_t v = quant_f32_to_f16((float)p[bi * per + j]);
            memcpy(blk + 2 * j, &v, 2);
        }
    }
}

/* refit_row for every row of a format with f16 block parameters, up to `chunk` rows at a time: thread t takes the
 * chunks t, t + n, ... with buffers of its own. */
typedef struct refit_job {
    gptq_run *r;
    const float *w;
    uint64_t chunk;
    vkllm_status st[QUANT_MAX_THREADS];
} refit_job;

static void refit_region(void *p, uint32_t t, uint32_t n_threads)
{
    refit_job *job = p;
    gptq_run *r = job->r;
    const uint64_t n = r->cols, np = n / r->be * r->fmt->refit, chunk = job->chunk;
    double *ht = malloc(chunk * n * np * sizeof *ht), *tt = malloc(2 * n * chunk * sizeof *tt);
    double *a = malloc(chunk * np * np * sizeof *a), *b = malloc(chunk * np * sizeof *b);
    double *scratch = malloc((2 * np * np + 3 * np) * sizeof *scratch);
    job->st[t] = ht && tt && a && b && scratch ? VKLLM_OK : VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    for (uint64_t row0 = t * chunk; row0 < r->rows && job->st[t] == VKLLM_OK; row0 += n_threads * chunk) {
        const uint64_t nr = r->rows - row0 < chunk ? r->rows - row0 : chunk;
        refit_normal_equations(r, job->w, row0, nr, chunk, tt, tt + n * chunk, ht, a, b);
        for (uint64_t k = 0; k < nr; k++) refit_row(r, row0 + k, a, b, k, chunk, scratch);
    }
    free(ht), free(tt), free(a), free(b), free(scratch);
}

static vkllm_status refit_scales(gptq_run *r, const float *w)
{
    if (!r->fmt->refit || !r->g->h) return VKLLM_OK;
    const uint64_t n = r->cols, np = n / r->be * r->fmt->refit;
    const uint32_t threads = row_threads(r);
    uint64_t chunk = REFIT_BYTES / threads / ((n + np) * np * sizeof(double));
    chunk = chunk < 1 ? 1 : chunk > REFIT_ROWS ? REFIT_ROWS : chunk;
    refit_job job = {.r = r, .w = w, .chunk = chunk};
    quant_parallel_run(refit_region, &job, threads);
    for (uint32_t t = 0; t < threads; t++)
        if (job.st[t] != VKLLM_OK)
            return vkllm_fail(job.st[t], "gptq: no memory to refit the block scales of %llu columns",
                              (unsigned long long)n);
    return VKLLM_OK;
}

/* wp = W in GPTQ's column order, the columns no token reached zeroed. */
static void permute_weights(gptq_run *r, const float *w)
{
    const uint64_t n = r->cols;
    for (uint64_t row = 0; row < r->rows; row++)
        for (uint64_t k = 0; k < n; k++) {
            const uint64_t c = r->g->perm[k];
            r->wp[row * n + k] = r->g->dead[c] ? 0.0f : w[row * n + c];
        }
}

/* e = w - q of row `row` with its codes and blocks as they stand (the grid recorded anew); 0 in the columns no token
 * reached. */
static vkllm_status row_residual(gptq_run *r, const float *w, uint64_t row, double *e)
{
    const uint64_t n = r->cols;
    for (uint64_t bi = 0; bi < n / r->be; bi++) VKLLM_TRY(grid_of_block(r, row, bi));
    for (uint64_t j = 0; j < n; j++) {
        const uint64_t at = row * n + j;
        e[j] = r->g->dead[j] ? 0.0 : (double)w[at] - ((double)r->scale[at] * r->codes[at] + r->off[at]);
    }
    return VKLLM_OK;
}

/* Rows whose products with H are made together (hessian_times). */
enum { H_BLOCK = 8 };

/* out = H e for `count` (at most H_BLOCK) vectors e of n (count x n; out likewise).  Each (H e)_i is summed over j in
 * ascending order, as for one vector alone (the same bits), but the vectors' sums run side by side in the innermost
 * loop: one sum's additions wait on each other, H_BLOCK sums' do not.  et: n x H_BLOCK doubles of scratch. */
static void hessian_times(const gptq_run *r, const double *e, uint64_t count, double *et, double *out)
{
    const uint64_t n = r->cols;
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t v = 0; v < H_BLOCK; v++) et[j * H_BLOCK + v] = v < count ? e[v * n + j] : 0.0;
    for (uint64_t i = 0; i < n; i++) {
        const float *hi = r->g->h + i * n;
        double acc[H_BLOCK] = {0};
        for (uint64_t j = 0; j < n; j++) {
            const double h = hi[j], *ej = et + j * H_BLOCK;
            for (uint64_t v = 0; v < H_BLOCK; v++) acc[v] += h * ej[v];
        }
        for (uint64_t v = 0; v < count; v++) out[v * n + i] = acc[v];
    }
}

/* e = w - q and H e (hessian_times) of the `count` rows from row0: e, he, et of H_BLOCK x n doubles each. */
static vkllm_status residuals_times_h(const rows_job *job, uint64_t row0, uint64_t count, double *e, double *et,
                                      double *he)
{
    const uint64_t n = job->r->cols;
    for (uint64_t v = 0; v < count; v++) VKLLM_TRY(row_residual(job->r, job->w, row0 + v, e + v * n));
    hessian_times(job->r, e, count, et, he);
    return VKLLM_OK;
}

/* Each row's output error (w - q)^T H (w - q) with its codes and blocks as they stand, for rows [r0, r1). */
static vkllm_status row_errors_of(const rows_job *job, uint64_t r0, uint64_t r1)
{
    gptq_run *r = job->r;
    const uint64_t n = r->cols;
    double *e = malloc(3 * H_BLOCK * n * sizeof *e), *he = e + H_BLOCK * n, *et = he + H_BLOCK * n;
    if (!e) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory");
    vkllm_status st = VKLLM_OK;
    for (uint64_t row0 = r0; row0 < r1 && st == VKLLM_OK; row0 += H_BLOCK) {
        const uint64_t count = r1 - row0 < H_BLOCK ? r1 - row0 : H_BLOCK;
        if ((st = residuals_times_h(job, row0, count, e, et, he)) != VKLLM_OK) break;
        for (uint64_t v = 0; v < count; v++) {
            double sum = 0;
            for (uint64_t i = 0; i < n; i++)
                if (e[v * n + i] != 0) sum += e[v * n + i] * he[v * n + i];
            job->out[row0 + v] = sum;
        }
    }
    free(e);
    return st;
}

static vkllm_status row_errors(gptq_run *r, const float *w, double *out)
{
    rows_job job = {.r = r, .w = w, .out = out, .rows = row_errors_of, .what = "the output error"};
    return run_rows(&job);
}

/* Sweeps of the coordinate descent over a row's codes, at most (each lowers its error; most rows settle in a few). */
enum { DESCENT_SWEEPS = 16 };

/* e^T H e from e and grad = (H + ridge I) e. */
static double undamped_error(const double *e, const double *grad, double ridge, uint64_t n)
{
    double f = 0;
    for (uint64_t j = 0; j < n; j++) f += e[j] * (grad[j] - ridge * e[j]);
    return f;
}

/* Coordinate descent on the codes of row `row` (QuantEase, Behdin et al., 2023), the grid held: a weight's code
 * moves one step up or down wherever that lowers the row's error f = e^T (H + ridge I) e, e = w - q (GPTQ's damped
 * objective: the ridge keeps a few hundred calibration tokens from being fitted too closely).  Moving weight j by t
 * (e_j -> e_j + t) changes f by 2 t g_j + t^2 (H_jj + ridge) for the gradient g = (H + ridge I) e, which a move
 * updates with H's column j times t.  GPTQ rounds each column once, against the errors of the columns before it
 * only; the descent revisits every column with all the others' rounding known.  A row keeps its codes from before
 * unless the descent lowered its undamped error e^T H e too (the refit's objective: so a round never raises it).
 * From the row's residual e and gradient grad; kept: n bytes of scratch. */
static void descend_row(gptq_run *r, uint64_t row, double *e, double *grad, uint8_t *kept)
{
    const uint64_t n = r->cols;
    const double ridge = r->g->ridge;
    const float *scale = r->scale + row * n;
    uint8_t *codes = r->codes + row * n;
    memcpy(kept, codes, n);
    const double before = undamped_error(e, grad, ridge, n);
    for (uint32_t sweep = 0, moved = 1; sweep < DESCENT_SWEEPS && moved; sweep++) {
        moved = 0;
        for (uint64_t j = 0; j < n; j++) {
            if (r->g->dead[j] || scale[j] == 0) continue;
            const double curv = r->g->h[j * n + j] + ridge;
            for (int step = -1; step <= 1; step += 2) {
                const int code = codes[j] + step;
                if (code < 0 || code > r->fmt->nmax) continue;
                const double t = -(double)scale[j] * step;
                /* strictly lower by more than rounding noise: no move undoes another */
                if (!(2 * t * grad[j] + t * t * curv < -1e-9 * t * t * curv)) continue;
                codes[j] = (uint8_t)code;
                e[j] += t;
                const float *hj = r->g->h + j * n;
                for (uint64_t i = 0; i < n; i++) grad[i] += t * hj[i];
                grad[j] += t * ridge;
                moved = 1;
                break;
            }
        }
    }
    if (!(undamped_error(e, grad, ridge, n) < before)) memcpy(codes, kept, n); /* H's own error decides */
}

/* descend_row for rows [r0, r1), their gradients started H_BLOCK rows at a time. */
static vkllm_status descend_rows(const rows_job *job, uint64_t r0, uint64_t r1)
{
    gptq_run *r = job->r;
    const uint64_t n = r->cols;
    double *e = malloc(3 * H_BLOCK * n * sizeof *e), *grad = e + H_BLOCK * n, *et = grad + H_BLOCK * n;
    uint8_t *kept = malloc(n);
    vkllm_status st = e && kept ? VKLLM_OK : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory");
    for (uint64_t row0 = r0; row0 < r1 && st == VKLLM_OK; row0 += H_BLOCK) {
        const uint64_t count = r1 - row0 < H_BLOCK ? r1 - row0 : H_BLOCK;
        if ((st = residuals_times_h(job, row0, count, e, et, grad)) != VKLLM_OK) break;
        for (uint64_t v = 0; v < count; v++) {
            for (uint64_t i = 0; i < n; i++) grad[v * n + i] += r->g->ridge * e[v * n + i];
            descend_row(r, row0 + v, e + v * n, grad + v * n, kept);
        }
    }
    free(e), free(kept);
    return st;
}

/* Rounds of the coordinate descent, each followed by the refit: both only ever lower a row's output error. */
static vkllm_status descent_rounds(gptq_run *r, const float *w, uint32_t rounds)
{
    vkllm_status st = VKLLM_OK;
    for (uint32_t round = 0; round < rounds && st == VKLLM_OK; round++) {
        rows_job job = {.r = r, .w = w, .rows = descend_rows, .what = "the coordinate descent"};
        st = run_rows(&job);
        if (st == VKLLM_OK) st = refit_scales(r, w);
    }
    return st;
}

/* Later rounds: GPTQ again with every block's refit parameters held (only the codes move), then the refit again;
 * a row keeps the round with the lowest output error.  Alternating codes and scales this way is a descent on
 * neither alone, hence the per-row choice. */
static vkllm_status more_rounds(gptq_run *r, const float *w, uint32_t rounds)
{
    const uint64_t n = r->cols, rows = r->rows;
    double *best = malloc(rows * sizeof *best), *now = malloc(rows * sizeof *now);
    uint8_t *keep_blocks = malloc(rows * r->row_bytes), *keep_codes = malloc(rows * n);
    vkllm_status st = best && now && keep_blocks && keep_codes
                          ? row_errors(r, w, best)
                          : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory for another round");
    for (uint32_t round = 0; round < rounds && st == VKLLM_OK; round++) {
        memcpy(keep_blocks, r->blocks, rows * r->row_bytes);
        memcpy(keep_codes, r->codes, rows * n);
        permute_weights(r, w);
        st = run_gptq(r, true);
        if (st == VKLLM_OK) st = refit_scales(r, w);
        if (st == VKLLM_OK) st = row_errors(r, w, now);
        for (uint64_t row = 0; row < rows && st == VKLLM_OK; row++)
            if (now[row] < best[row]) best[row] = now[row];
            else { /* back to the kept round, its grid with it (row_errors recorded the new one) */
                memcpy(r->blocks + row * r->row_bytes, keep_blocks + row * r->row_bytes, r->row_bytes);
                memcpy(r->codes + row * n, keep_codes + row * n, n);
                for (uint64_t bi = 0; bi < n / r->be && st == VKLLM_OK; bi++) st = grid_of_block(r, row, bi);
            }
    }
    free(best), free(now), free(keep_blocks), free(keep_codes);
    return st;
}

vkllm_status quant_gptq_quantize(uint32_t type, float *w, uint64_t rows, uint64_t cols,
                                 const quant_gptq_hessian *g, const float *importance, void *out)
{
    const gptq_format *fmt = find_format(type);
    const quant_traits *traits = quant_get_traits(type);
    if (!fmt || !traits)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "gptq: type %s has no GPTQ rounding",
                          traits ? traits->name : "unknown");
    if (!g || g->cols != cols)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gptq: a Hessian of %llu columns for a weight of %llu",
                          g ? (unsigned long long)g->cols : 0ull, (unsigned long long)cols);
    if (cols % traits->block_elems)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gptq: %llu columns are not whole %s blocks",
                          (unsigned long long)cols, traits->name);
    gptq_run r = {.fmt = fmt, .g = g, .rows = rows, .cols = cols, .be = traits->block_elems,
                  .row_bytes = quant_row_size(type, cols), .importance = importance};
    r.pos = malloc(cols * sizeof *r.pos);
    r.wp = malloc(rows * cols * sizeof *r.wp);
    r.scale = malloc(rows * cols * sizeof *r.scale);
    r.off = malloc(rows * cols * sizeof *r.off);
    r.codes = malloc(rows * cols);
    r.blocks = out;
    vkllm_status st = r.pos && r.wp && r.scale && r.off && r.codes
                          ? VKLLM_OK
                          : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gptq: no memory for %llu x %llu weights",
                                       (unsigned long long)rows, (unsigned long long)cols);
    if (st == VKLLM_OK) {
        for (uint64_t k = 0; k < cols; k++) r.pos[g->perm[k]] = k;
        permute_weights(&r, w);
        st = run_gptq(&r, false);
        if (st == VKLLM_OK) st = refit_scales(&r, w);
        if (st == VKLLM_OK && g->rounds && fmt->refit && g->h) st = more_rounds(&r, w, g->rounds);
        if (st == VKLLM_OK && g->descent && g->h) st = descent_rounds(&r, w, g->descent);
    }
    const uint64_t bytes = r.row_bytes / (cols / r.be);
    _Alignas(16) uint8_t block[GPTQ_MAX_BLOCK];
    for (uint64_t row = 0; row < rows && st == VKLLM_OK; row++)
        for (uint64_t bi = 0; bi < cols / r.be; bi++) {
            uint8_t *dst = r.blocks + row * r.row_bytes + bi * bytes;
            memcpy(block, dst, bytes);
            fmt->set_levels(block, r.codes + row * cols + bi * r.be);
            memcpy(dst, block, bytes);
        }
    free(r.pos), free(r.wp), free(r.scale), free(r.off), free(r.codes);
    return st;
}
