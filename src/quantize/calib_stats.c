/* Calibration statistics (see calib_stats.h). */
#include "calib_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/parallel.h"
#include "runtime/error.h"

void calib_stats_free(calib_stats *s)
{
    if (!s) return;
    for (uint32_t i = 0; i < s->n_slots; i++) {
        free(s->slots[i].h);
        free(s->slots[i].cross);
        free(s->slots[i].abs_sum);
    }
    free(s->slots);
    free(s);
}

const calib_slot *calib_stats_find(const calib_stats *s, uint32_t layer, capture_kind kind)
{
    for (uint32_t i = 0; s && i < s->n_slots; i++)
        if (s->slots[i].layer == layer && s->slots[i].kind == kind) return &s->slots[i];
    return NULL;
}

bool calib_slot_of(const char *name, uint32_t n_layer, uint32_t *layer, capture_kind *kind)
{
    if (strcmp(name, "output.weight") == 0) {
        *layer = n_layer;
        *kind = CAPTURE_OUTPUT;
        return true;
    }
    static const struct {
        const char *suffix;
        capture_kind kind;
    } map[] = {{"attn_q.weight", CAPTURE_ATTN_IN},      {"attn_k.weight", CAPTURE_ATTN_IN},
               {"attn_v.weight", CAPTURE_ATTN_IN},      {"attn_qkv.weight", CAPTURE_ATTN_IN},
               {"attn_output.weight", CAPTURE_ATTN_OUT}, {"ffn_gate.weight", CAPTURE_FFN_IN},
               {"ffn_up.weight", CAPTURE_FFN_IN},       {"ffn_down.weight", CAPTURE_FFN_ACT}};
    unsigned l = 0;
    int used = 0;
    if (sscanf(name, "blk.%u.%n", &l, &used) != 1 || used == 0 || l >= n_layer) return false;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(name + used, map[i].suffix) == 0) {
            *layer = l;
            *kind = map[i].kind;
            return true;
        }
    return false;
}

typedef struct collect_run {
    calib_stats *s;
    uint32_t first, end;
    uint32_t kinds; /* mask of 1u << capture_kind */
    uint32_t threads;
} collect_run;

static vkllm_status plan(collect_run *r, const vkllm_context *ctx, bool cross)
{
    const uint32_t n_layer = ctx->model->cfg.n_layer;
    calib_stats *s = r->s;
    uint32_t max = (r->end - r->first) * CAPTURE_KINDS + 1;
    if (!(s->slots = calloc(max, sizeof *s->slots))) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "calibration");
    for (uint32_t l = r->first; l < r->end && l <= n_layer; l++)
        for (int k = 0; k < CAPTURE_KINDS; k++) {
            if (l == n_layer && k > 0) break;
            const capture_kind kind = l == n_layer ? CAPTURE_OUTPUT : (capture_kind)k;
            if (!(r->kinds & 1u << kind)) continue;
            calib_slot *slot = &s->slots[s->n_slots++];
            slot->layer = l;
            slot->kind = kind;
            slot->width = context_capture_width(ctx, slot->kind);
            slot->h = calloc((size_t)slot->width * slot->width, sizeof *slot->h);
            slot->abs_sum = calloc(slot->width, sizeof *slot->abs_sum);
            if (cross) slot->cross = calloc((size_t)slot->width * slot->width, sizeof *slot->cross);
            if (!slot->h || !slot->abs_sum || (cross && !slot->cross))
                return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "calibration: no memory for a %u x %u matrix",
                                  slot->width, slot->width);
        }
    return VKLLM_OK;
}

/* H += x x^T over a chunk's rows, the rows a of H owned by one thread (a = thread, thread + n, ...: the upper
 * half, mirrored at the end); each entry sums its tokens in order, so the threads change nothing in the result. */
typedef struct accumulate_job {
    calib_slot *slot;
    const float *x;   /* rows x w */
    const float *ref; /* rows x w, the reference pass's (cross only) */
    uint32_t rows, w;
} accumulate_job;

static void accumulate(void *p, uint32_t thread, uint32_t n_threads)
{
    const accumulate_job *j = p;
    for (uint32_t a = thread; a < j->w; a += n_threads) {
        float *ha = j->slot->h + (size_t)a * j->w;
        double abs_sum = j->slot->abs_sum[a];
        for (uint32_t row = 0; row < j->rows; row++) {
            const float *x = j->x + (size_t)row * j->w, xa = x[a];
            abs_sum += fabsf(xa);
            if (xa == 0) continue;
            for (uint32_t b = a; b < j->w; b++) ha[b] += xa * x[b];
        }
        j->slot->abs_sum[a] = abs_sum;
    }
}

/* cross += x_ref x^T over a chunk's rows, rows a of cross owned by one thread, tokens in order. */
static void accumulate_cross(void *p, uint32_t thread, uint32_t n_threads)
{
    const accumulate_job *j = p;
    for (uint32_t a = thread; a < j->w; a += n_threads) {
        float *ca = j->slot->cross + (size_t)a * j->w;
        for (uint32_t row = 0; row < j->rows; row++) {
            const float *x = j->x + (size_t)row * j->w, ra = j->ref[(size_t)row * j->w + a];
            if (ra == 0) continue;
            for (uint32_t b = 0; b < j->w; b++) ca[b] += ra * x[b];
        }
    }
}

static vkllm_status on_chunk(void *user, const vkllm_context *ctx, const vkllm_context *reference, uint32_t rows)
{
    collect_run *r = user;
    if (!r->s->slots) VKLLM_TRY(plan(r, ctx, reference != NULL));
    for (uint32_t i = 0; i < r->s->n_slots; i++) {
        calib_slot *slot = &r->s->slots[i];
        uint32_t w = 0, ref_w = 0;
        accumulate_job job = {slot, context_capture_rows(ctx, slot->layer, slot->kind, &w), NULL, rows, 0};
        job.w = w;
        /* threads only where the products outweigh starting them */
        const bool big = (uint64_t)w * w * rows >= (1u << 22);
        quant_parallel_run(accumulate, &job, big ? r->threads : 1);
        if (slot->cross) {
            job.ref = context_capture_rows(reference, slot->layer, slot->kind, &ref_w);
            if (ref_w != w)
                return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "calibration: layer %u's input is %u wide in the "
                                  "reference model, %u in the model", slot->layer, ref_w, w);
            quant_parallel_run(accumulate_cross, &job, big ? r->threads : 1);
        }
        slot->count += rows;
    }
    return VKLLM_OK;
}

vkllm_status calib_stats_collect(const calib_pass_options *po, uint32_t first, uint32_t end, uint32_t kinds,
                                 vkllm_progress_fn progress, void *progress_ctx, calib_stats **out)
{
    *out = NULL;
    calib_stats *s = calloc(1, sizeof *s);
    if (!s) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "calibration");
    s->first = first;
    s->end = end;
    collect_run r = {s, first, end, kinds ? kinds : ~0u, quant_threads()};
    calib_pass_options o = *po;
    uint32_t n_chunks = 0;
    /* The LM head's input (and so every row's logits) only when that kind is asked for: all 32,000 logits of
     * every row are most of a small model's pass. */
    o.want_output = (r.kinds & 1u << CAPTURE_OUTPUT) != 0;
    vkllm_status st = calib_pass_run(&o, on_chunk, &r, progress, progress_ctx, &n_chunks);
    for (uint32_t i = 0; st == VKLLM_OK && i < s->n_slots; i++) {
        calib_slot *slot = &s->slots[i];
        for (uint32_t a = 0; a < slot->width; a++)
            for (uint32_t b = a + 1; b < slot->width; b++)
                slot->h[(size_t)b * slot->width + a] = slot->h[(size_t)a * slot->width + b];
    }
    if (st != VKLLM_OK) {
        calib_stats_free(s);
        return st;
    }
    *out = s;
    return VKLLM_OK;
}
