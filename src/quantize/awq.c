/* AWQ's scale search and fold (see awq.h). */
#include "awq.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/parallel.h"
#include "quant/quant.h"
#include "runtime/error.h"
#include "runtime/log.h"

enum { AWQ_GRID = 20, AWQ_MAX_ROWS = 128 }; /* alpha steps; rows of each weight the search measures */

/* One folded group: the columns of `readers` times s, 1/s into `producer` (a norm vector, or rows of a weight). */
typedef struct awq_group {
    uint32_t layer;
    capture_kind kind;
    uint32_t width;
    float *s;
    float alpha;
    char producer[96];
    bool producer_rows; /* the producer is a weight whose rows are divided (up, v), not a norm vector */
    char readers[3][96];
} awq_group;

struct awq_scales {
    awq_group *groups;
    uint32_t n_groups;
};

void awq_free(awq_scales *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < s->n_groups; i++) free(s->groups[i].s);
    free(s->groups);
    free(s);
}

/* A weight as F32 rows (from any type vkllm decodes). */
static vkllm_status load_rows(const gguf_tensor_info *t, uint64_t first, uint64_t count, float *out)
{
    const uint64_t n = t->ne[0], row_bytes = quant_row_size(t->type, n);
    for (uint64_t r = 0; r < count; r++)
        VKLLM_TRY(quant_dequantize_row(t->type, (const uint8_t *)t->data + (first + r) * row_bytes, out + r * n, n));
    return VKLLM_OK;
}

/* The error of rounding the sampled rows w (rows x n) with columns scaled by s: sum e^T H e. */
static vkllm_status scaled_error(quant_type type, const float *w, uint64_t rows, uint64_t n, const float *s,
                                 const float *h, float *scratch, uint8_t *packed, double *out)
{
    double total = 0;
    for (uint64_t r = 0; r < rows; r++) {
        const float *wr = w + r * n;
        for (uint64_t i = 0; i < n; i++) scratch[i] = wr[i] * s[i];
        VKLLM_TRY(quant_quantize_row(type, scratch, packed, n));
        VKLLM_TRY(quant_dequantize_row(type, packed, scratch, n));
        for (uint64_t i = 0; i < n; i++) scratch[i] = wr[i] - scratch[i] / s[i];
        for (uint64_t i = 0; i < n; i++) {
            if (scratch[i] == 0) continue;
            /* (H e)_i in eight float lanes (what the compiler vectorises), summed in double: the comparison
             * between alphas needs far less than float's precision. */
            float lanes[8] = {0};
            const float *hi = h + i * n;
            uint64_t j = 0;
            for (; j + 8 <= n; j += 8)
                for (int l = 0; l < 8; l++) lanes[l] += hi[j + l] * scratch[j + l];
            double acc = 0;
            for (; j < n; j++) acc += (double)hi[j] * scratch[j];
            for (int l = 0; l < 8; l++) acc += lanes[l];
            total += scratch[i] * acc;
        }
    }
    *out = total;
    return VKLLM_OK;
}

typedef struct reader {
    quant_type type;
    float *w; /* sampled rows */
    uint64_t rows;
} reader;

/* s = mean|x|^alpha, divided by sqrt(max s * min s). */
static void scales_for(const float *mean_abs, uint64_t n, float alpha, float *s)
{
    float lo = INFINITY, hi = 0;
    for (uint64_t i = 0; i < n; i++) {
        s[i] = powf(mean_abs[i], alpha);
        lo = fminf(lo, s[i]), hi = fmaxf(hi, s[i]);
    }
    const float norm = sqrtf(lo * hi);
    for (uint64_t i = 0; i < n; i++) s[i] /= norm;
}

/* The alphas of a search, dealt out to threads (step = thread, + n_threads, ...), each total computed as on one. */
typedef struct alpha_job {
    const reader *readers;
    int n_readers;
    uint64_t n;
    const float *mean_abs, *h;
    double totals[AWQ_GRID + 1];
    vkllm_status st[QUANT_MAX_THREADS];
} alpha_job;

static void alpha_region(void *p, uint32_t thread, uint32_t n_threads)
{
    alpha_job *job = p;
    const uint64_t n = job->n;
    float *s = malloc(n * sizeof *s), *scratch = malloc(n * sizeof *scratch);
    uint8_t *packed = malloc(n * 2 + 64);
    vkllm_status st = s && scratch && packed ? VKLLM_OK : VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    for (uint32_t step = thread; step <= AWQ_GRID && st == VKLLM_OK; step += n_threads) {
        scales_for(job->mean_abs, n, (float)step / AWQ_GRID, s);
        double total = 0;
        for (int k = 0; k < job->n_readers && st == VKLLM_OK; k++) {
            double e = 0;
            st = scaled_error(job->readers[k].type, job->readers[k].w, job->readers[k].rows, n, s, job->h, scratch,
                              packed, &e);
            total += e;
        }
        job->totals[step] = total;
    }
    job->st[thread] = st;
    free(s), free(scratch), free(packed);
}

/* Searches alpha for one group; g->s receives the best scales. */
static vkllm_status search_group(const gguf_file *in, const quant_recipe *recipe, const quant_model_shape *shape,
                                 const calib_slot *slot, awq_group *g)
{
    const uint64_t n = slot->width;
    reader readers[3] = {{0}};
    float *mean_abs = malloc(n * sizeof *mean_abs);
    g->s = malloc(n * sizeof *g->s);
    vkllm_status st = mean_abs && g->s
                          ? VKLLM_OK
                          : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "awq: no memory");
    int n_readers = 0;
    for (int k = 0; k < 3 && g->readers[k][0] && st == VKLLM_OK; k++) {
        const gguf_tensor_info *t = gguf_find_tensor(in, g->readers[k]);
        if (!t || t->ne[0] != n) continue;
        quant_type type = quant_recipe_tensor_type(recipe, shape, g->readers[k], t->n_dims, t->ne, (quant_type)t->type);
        const quant_traits *tr = quant_get_traits(type);
        if (!tr || tr->block_elems == 1) continue; /* a float type: no rounding to protect */
        reader *r = &readers[n_readers++];
        r->type = type;
        const uint64_t rows = t->ne[1], take = rows < AWQ_MAX_ROWS ? rows : AWQ_MAX_ROWS;
        r->rows = take;
        if (!(r->w = malloc(take * n * sizeof *r->w))) {
            st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "awq: no memory");
            break;
        }
        for (uint64_t i = 0; i < take && st == VKLLM_OK; i++) st = load_rows(t, i * rows / take, 1, r->w + i * n);
    }
    double best = INFINITY;
    for (uint64_t i = 0; i < n && st == VKLLM_OK; i++) {
        mean_abs[i] = slot->count > 0 ? (float)(slot->abs_sum[i] / slot->count) : 1.0f;
        if (!(mean_abs[i] > 1e-6f)) mean_abs[i] = 1e-6f;
        g->s[i] = 1.0f;
    }
    g->alpha = 0;
    if (st == VKLLM_OK && n_readers > 0) {
        alpha_job *job = calloc(1, sizeof *job);
        if (!job) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "awq: no memory");
        const uint32_t threads = quant_threads() < AWQ_GRID + 1 ? quant_threads() : AWQ_GRID + 1;
        if (job) {
            *job = (alpha_job){.readers = readers, .n_readers = n_readers, .n = n, .mean_abs = mean_abs, .h = slot->h};
            quant_parallel_run(alpha_region, job, threads);
        }
        for (uint32_t t = 0; job && t < threads && st == VKLLM_OK; t++)
            if (job->st[t] != VKLLM_OK) st = vkllm_fail(job->st[t], "awq: the search of layer %u failed", g->layer);
        for (int step = 0; step <= AWQ_GRID && st == VKLLM_OK; step++) /* the first lowest, as in step order */
            if (job->totals[step] < best) {
                best = job->totals[step];
                g->alpha = (float)step / AWQ_GRID;
            }
        if (st == VKLLM_OK && best < INFINITY) scales_for(mean_abs, n, g->alpha, g->s);
        free(job);
    }
    for (int k = 0; k < 3; k++) free(readers[k].w);
    free(mean_abs);
    return st;
}

vkllm_status awq_search(const gguf_file *in, const quant_recipe *recipe, const quant_model_shape *shape,
                        const calib_stats *stats, awq_scales **out)
{
    *out = NULL;
    awq_scales *a = calloc(1, sizeof *a);
    if (!a || !(a->groups = calloc((size_t)shape->n_layer * 4, sizeof *a->groups))) {
        free(a);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "awq: no memory");
    }
    const bool v_to_o = shape->n_head_kv == shape->n_head;
    vkllm_status st = VKLLM_OK;
    for (uint32_t l = 0; l < shape->n_layer && st == VKLLM_OK; l++) {
        for (int k = 0; k < CAPTURE_KINDS && st == VKLLM_OK; k++) {
            if (k == CAPTURE_ATTN_OUT && !v_to_o) continue;
            const calib_slot *slot = calib_stats_find(stats, l, (capture_kind)k);
            if (!slot) {
                st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "awq: no calibration statistics for layer %u", l);
                break;
            }
            awq_group *g = &a->groups[a->n_groups];
            *g = (awq_group){.layer = l, .kind = (capture_kind)k, .width = slot->width};
            switch (k) {
            case CAPTURE_ATTN_IN:
                snprintf(g->producer, sizeof g->producer, "blk.%u.attn_norm.weight", l);
                snprintf(g->readers[0], 96, "blk.%u.attn_q.weight", l);
                snprintf(g->readers[1], 96, "blk.%u.attn_k.weight", l);
                snprintf(g->readers[2], 96, "blk.%u.attn_v.weight", l);
                break;
            case CAPTURE_ATTN_OUT:
                snprintf(g->producer, sizeof g->producer, "blk.%u.attn_v.weight", l);
                g->producer_rows = true;
                snprintf(g->readers[0], 96, "blk.%u.attn_output.weight", l);
                break;
            case CAPTURE_FFN_IN:
                snprintf(g->producer, sizeof g->producer, "blk.%u.ffn_norm.weight", l);
                snprintf(g->readers[0], 96, "blk.%u.ffn_gate.weight", l);
                snprintf(g->readers[1], 96, "blk.%u.ffn_up.weight", l);
                break;
            default:
                snprintf(g->producer, sizeof g->producer, "blk.%u.ffn_up.weight", l);
                g->producer_rows = true;
                snprintf(g->readers[0], 96, "blk.%u.ffn_down.weight", l);
                break;
            }
            /* Only where every tensor is there in the expected shape (no biases to fold: llama). */
            const gguf_tensor_info *p = gguf_find_tensor(in, g->producer);
            const uint64_t expect = g->producer_rows ? (p && p->n_dims == 2 ? p->ne[1] : 0) : (p ? p->ne[0] : 0);
            if (!p || expect != slot->width) continue;
            char bias[112];
            snprintf(bias, sizeof bias, "blk.%u.attn_v.bias", l);
            if (k == CAPTURE_ATTN_OUT && gguf_find_tensor(in, bias)) continue;
            st = search_group(in, recipe, shape, slot, g);
            a->n_groups++;
        }
    }
    if (st != VKLLM_OK) {
        awq_free(a);
        return st;
    }
    for (uint32_t i = 0; i < a->n_groups; i++)
        vkllm_log(VKLLM_LOG_DEBUG, "awq: layer %u, %s: alpha %.2f", a->groups[i].layer, a->groups[i].producer,
                  (double)a->groups[i].alpha);
    *out = a;
    return VKLLM_OK;
}

bool awq_apply(const awq_scales *a, const char *name, float *data, uint64_t rows, uint64_t cols)
{
    bool changed = false;
    for (uint32_t i = 0; a && i < a->n_groups; i++) {
        const awq_group *g = &a->groups[i];
        if (strcmp(name, g->producer) == 0) {
            if (g->producer_rows && rows == g->width) /* row r of the producer makes channel r */
                for (uint64_t r = 0; r < rows; r++)
                    for (uint64_t c = 0; c < cols; c++) data[r * cols + c] /= g->s[r];
            else if (!g->producer_rows && cols == g->width)
                for (uint64_t c = 0; c < cols; c++) data[c] /= g->s[c];
            changed = true;
        }
        for (int k = 0; k < 3; k++)
            if (g->readers[k][0] && strcmp(name, g->readers[k]) == 0 && cols == g->width) {
                for (uint64_t r = 0; r < rows; r++)
                    for (uint64_t c = 0; c < cols; c++) data[r * cols + c] *= g->s[c];
                changed = true;
            }
    }
    return changed;
}

bool awq_touches(const awq_scales *a, const char *name)
{
    for (uint32_t i = 0; a && i < a->n_groups; i++) {
        if (strcmp(name, a->groups[i].producer) == 0) return true;
        for (int k = 0; k < 3; k++)
            if (strcmp(name, a->groups[i].readers[k]) == 0) return true;
    }
    return false;
}

const float *awq_input_scales(const awq_scales *a, uint32_t layer, capture_kind kind)
{
    for (uint32_t i = 0; a && i < a->n_groups; i++)
        if (a->groups[i].layer == layer && a->groups[i].kind == kind) return a->groups[i].s;
    return NULL;
}
