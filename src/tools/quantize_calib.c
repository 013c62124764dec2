/* The calibrated quantizers of vkllm quantize (see quantize_calib.h). */
#include "quantize_calib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib_stats.h"
#include "runtime/error.h"
#include "runtime/log.h"

struct quant_calib {
    quant_calib_options o;
    uint32_t n_layer, layers_per_group;
    calib_stats *stats;            /* the group held now */
    /* The last factorised input, reused by the weights after it that read the same one. */
    uint32_t h_layer;
    capture_kind h_kind;
    quant_gptq_hessian *hessian;
    float *mean_sq;                /* its diag(H) / tokens: the importance of the scale searches */
    double seconds_calibrating, seconds_factoring;
};

static uint64_t ne0_of(const gguf_file *in, const char *name)
{
    const gguf_tensor_info *t = gguf_find_tensor(in, name);
    return t ? t->ne[0] : 0;
}

vkllm_status quant_calib_create(const quant_calib_options *o, const gguf_file *in, uint32_t n_layer,
                                quant_calib **out)
{
    *out = NULL;
    quant_calib *c = calloc(1, sizeof *c);
    if (!c) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "calibration");
    c->o = *o;
    if (!c->o.n_ctx) c->o.n_ctx = 512;
    c->n_layer = n_layer;
    c->h_layer = UINT32_MAX;
    /* The Hessians of one layer: two of the model width (attention and FFN inputs), the attention output's
     * and the FFN's (float each). */
    uint64_t e = ne0_of(in, "blk.0.attn_q.weight"), q = ne0_of(in, "blk.0.attn_output.weight"),
             f = ne0_of(in, "blk.0.ffn_down.weight");
    if (!e) e = ne0_of(in, "blk.0.attn_qkv.weight");
    const uint64_t per_layer = 4 * (2 * e * e + q * q + f * f), budget = o->max_bytes ? o->max_bytes : 2ull << 30;
    c->layers_per_group = per_layer ? (uint32_t)(budget / per_layer) : n_layer;
    if (c->layers_per_group == 0) c->layers_per_group = 1;
    if (c->layers_per_group > n_layer + 1) c->layers_per_group = n_layer + 1;
    *out = c;
    return VKLLM_OK;
}

void quant_calib_free(quant_calib *c)
{
    if (!c) return;
    if (c->seconds_calibrating > 0)
        vkllm_log(VKLLM_LOG_INFO, "calibration: %.1f s of forward passes and statistics, %.1f s factorising",
                  c->seconds_calibrating, c->seconds_factoring);
    calib_stats_free(c->stats);
    quant_gptq_free(c->hessian);
    free(c->mean_sq);
    free(c);
}

bool quant_calib_applies(const quant_calib *c, const char *name, quant_type type)
{
    uint32_t layer;
    capture_kind kind;
    return c && quant_gptq_supports(type) && calib_slot_of(name, c->n_layer, &layer, &kind);
}

/* The statistics of (layer, kind): collected, with the group of layers from `layer` on, if not held. */
static vkllm_status slot_for(quant_calib *c, uint32_t layer, capture_kind kind, const calib_slot **out)
{
    if (!c->stats || layer < c->stats->first || layer >= c->stats->end) {
        calib_stats_free(c->stats);
        c->stats = NULL;
        /* Everything at once when it fits (whatever tensor the file lists first), else a group from here on. */
        const uint32_t first = c->layers_per_group > c->n_layer ? 0 : layer;
        uint32_t end = first + c->layers_per_group;
        if (end > c->n_layer + 1) end = c->n_layer + 1;
        calib_pass_options po = {.model = c->o.model, .text_path = c->o.text_path, .n_ctx = c->o.n_ctx,
                                 .chunks = c->o.chunks, .min_chunks = 1};
        double started = vkllm_log_clock();
        vkllm_log(VKLLM_LOG_INFO, "calibrating layers %u-%u on %s", first, end - 1, c->o.text_path);
        VKLLM_TRY(calib_stats_collect(&po, first, end, NULL, NULL, &c->stats));
        c->seconds_calibrating += vkllm_log_clock() - started;
    }
    *out = calib_stats_find(c->stats, layer, kind);
    if (!*out) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "calibration: no statistics for layer %u", layer);
    return VKLLM_OK;
}

static vkllm_status hessian_for(quant_calib *c, uint32_t layer, capture_kind kind, uint64_t cols)
{
    if (c->hessian && c->h_layer == layer && c->h_kind == kind) return VKLLM_OK;
    const calib_slot *slot = NULL;
    VKLLM_TRY(slot_for(c, layer, kind, &slot));
    if (slot->width != cols)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "calibration: layer %u's input has %u columns, the weight %llu",
                          layer, slot->width, (unsigned long long)cols);
    quant_gptq_free(c->hessian);
    c->hessian = NULL;
    free(c->mean_sq);
    double *h = malloc(cols * cols * sizeof *h);
    c->mean_sq = malloc(cols * sizeof *c->mean_sq);
    if (!h || !c->mean_sq) {
        free(h);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "calibration: a %llu x %llu Hessian", (unsigned long long)cols,
                          (unsigned long long)cols);
    }
    for (uint64_t i = 0; i < cols * cols; i++) h[i] = slot->h[i];
    for (uint64_t i = 0; i < cols; i++)
        c->mean_sq[i] = slot->count > 0 ? (float)(slot->h[i * cols + i] / slot->count) : 1.0f;
    double started = vkllm_log_clock();
    vkllm_status st = quant_gptq_prepare(h, cols, &c->o.gptq, &c->hessian);
    c->seconds_factoring += vkllm_log_clock() - started;
    free(h);
    VKLLM_TRY(st);
    c->h_layer = layer;
    c->h_kind = kind;
    return VKLLM_OK;
}

vkllm_status quant_calib_quantize(quant_calib *c, const char *name, quant_type type, float *w, uint64_t rows,
                                  uint64_t cols, const float *importance, void *out)
{
    uint32_t layer;
    capture_kind kind;
    if (!calib_slot_of(name, c->n_layer, &layer, &kind))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "calibration: '%s' reads no captured input", name);
    VKLLM_TRY(hessian_for(c, layer, kind, cols));
    return quant_gptq_quantize(type, w, rows, cols, c->hessian, importance ? importance : c->mean_sq, out);
}
