/* The calibrated quantizers of vkllm quantize (see quantize_calib.h). */
#include "quantize_calib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq.h"
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
    quant_gptq_target *target;     /* the same input's float target (a sequential stage's), or NULL */
    float *mean_sq;                /* its diag(H) / tokens: the importance of the scale searches */
    double seconds_calibrating, seconds_factoring, seconds_awq;
    awq_scales *awq;
    uint32_t n_stage_passes;       /* sequential: the calibration passes run */
};

static uint64_t ne0_of(const gguf_file *in, const char *name)
{
    const gguf_tensor_info *t = gguf_find_tensor(in, name);
    return t ? t->ne[0] : 0;
}

static vkllm_status slot_for(quant_calib *c, uint32_t layer, capture_kind kind, const calib_slot **out);

vkllm_status quant_calib_create(const quant_calib_options *o, const gguf_file *in, const quant_recipe *recipe,
                                const quant_model_shape *shape, quant_calib **out)
{
    const uint32_t n_layer = shape->n_layer;
    *out = NULL;
    quant_calib *c = calloc(1, sizeof *c);
    if (!c) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "calibration");
    c->o = *o;
    if (!c->o.n_ctx) c->o.n_ctx = 512;
    c->n_layer = n_layer;
    c->h_layer = UINT32_MAX;
    if (o->sequential != QUANT_SEQUENTIAL_OFF && (o->awq || !o->gptq)) {
        free(c);
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "sequential calibration goes with GPTQ alone, not with AWQ");
    }
    /* The Hessians of one layer: two of the model width (attention and FFN inputs), the attention output's
     * and the FFN's (float each). */
    uint64_t e = ne0_of(in, "blk.0.attn_q.weight"), q = ne0_of(in, "blk.0.attn_output.weight"),
             f = ne0_of(in, "blk.0.ffn_down.weight");
    if (!e) e = ne0_of(in, "blk.0.attn_qkv.weight");
    const uint64_t per_layer = 4 * (2 * e * e + q * q + f * f), budget = o->max_bytes ? o->max_bytes : 2ull << 30;
    c->layers_per_group = per_layer ? (uint32_t)(budget / per_layer) : n_layer;
    if (c->layers_per_group == 0) c->layers_per_group = 1;
    if (c->layers_per_group > n_layer + 1) c->layers_per_group = n_layer + 1;
    if (o->awq) {
        if (c->layers_per_group <= n_layer) {
            vkllm_status st =
                vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "awq: the statistics of all %u layers (%llu MiB) exceed the budget "
                           "of %llu MiB", n_layer, (unsigned long long)(per_layer * n_layer >> 20),
                           (unsigned long long)(budget >> 20));
            quant_calib_free(c);
            return st;
        }
        const calib_slot *slot;
        vkllm_status st = slot_for(c, 0, CAPTURE_ATTN_IN, &slot); /* every layer */
        double started = vkllm_log_clock();
        if (st == VKLLM_OK)
            st = awq_search(in, o->awq_search_recipe ? o->awq_search_recipe : recipe, shape, c->stats, &c->awq);
        c->seconds_awq = vkllm_log_clock() - started;
        if (st != VKLLM_OK) {
            quant_calib_free(c);
            return st;
        }
    }
    *out = c;
    return VKLLM_OK;
}

void quant_calib_free(quant_calib *c)
{
    if (!c) return;
    if (c->seconds_calibrating > 0)
        vkllm_log(VKLLM_LOG_INFO, "calibration: %.1f s of forward passes and statistics (%u sequential passes), "
                  "%.1f s AWQ search, %.1f s factorising", c->seconds_calibrating, c->n_stage_passes, c->seconds_awq,
                  c->seconds_factoring);
    awq_free(c->awq);
    calib_stats_free(c->stats);
    quant_gptq_free(c->hessian);
    quant_gptq_target_free(c->target);
    free(c->mean_sq);
    free(c);
}

bool quant_calib_applies(const quant_calib *c, const char *name, quant_type type)
{
    uint32_t layer;
    capture_kind kind;
    if (!c) return false;
    if (awq_touches(c->awq, name)) return true;
    return c->o.gptq && quant_gptq_supports(type) && calib_slot_of(name, c->n_layer, &layer, &kind);
}

/* The statistics of (layer, kind): collected, with the group of layers from `layer` on, if not held. */
static vkllm_status slot_for(quant_calib *c, uint32_t layer, capture_kind kind, const calib_slot **out)
{
    if (c->o.sequential != QUANT_SEQUENTIAL_OFF) { /* measured by quant_calib_begin_stage only */
        *out = calib_stats_find(c->stats, layer, kind);
        if (!*out)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sequential calibration: layer %u's input %d was not "
                              "measured by the current stage", layer, (int)kind);
        return VKLLM_OK;
    }
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
        VKLLM_TRY(calib_stats_collect(&po, first, end, 0, NULL, NULL, &c->stats));
        c->seconds_calibrating += vkllm_log_clock() - started;
    }
    *out = calib_stats_find(c->stats, layer, kind);
    if (!*out) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "calibration: no statistics for layer %u", layer);
    return VKLLM_OK;
}

/* The float target's ridge, a fraction of mean(diag H): the fit has a row's cols unknowns from the slot's tokens,
 * so its noise grows as cols / tokens, and a ridge of RETARGET_RIDGE times that (never below GPTQ's damping) keeps
 * it from fitting the calibration text's noise where the text is short against the input.  Measured (Q4_0, mean
 * KL, docs/quantization.md): with GPTQ's 1% alone the float target lost to the quantized one on stories260K below
 * 1,000 tokens and gave llama-134m (inputs of 768 and 2,048, 1,022 tokens) 4x its KL; 4 still lost there (+13%);
 * 16 beats the quantized target on both (stories260K with 512 tokens and with the whole text, 21,000). */
enum { RETARGET_RIDGE = 16 };

double quant_calib_retarget_damping(double gptq_damp, uint32_t width, double tokens)
{
    const double by_tokens = tokens > 0 ? RETARGET_RIDGE * (double)width / tokens : 1.0;
    return by_tokens > gptq_damp ? by_tokens : gptq_damp;
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
    quant_gptq_target_free(c->target);
    c->target = NULL;
    free(c->mean_sq);
    double *h = malloc(cols * cols * sizeof *h);
    c->mean_sq = malloc(cols * sizeof *c->mean_sq);
    if (!h || !c->mean_sq) {
        free(h);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "calibration: a %llu x %llu Hessian",
                          (unsigned long long)cols, (unsigned long long)cols);
    }
    /* After AWQ the input is x / s: H becomes diag(1/s) H diag(1/s). */
    const float *s = awq_input_scales(c->awq, layer, kind);
    for (uint64_t i = 0; i < cols; i++)
        for (uint64_t j = 0; j < cols; j++)
            h[i * cols + j] = s ? (double)slot->h[i * cols + j] / ((double)s[i] * s[j]) : slot->h[i * cols + j];
    for (uint64_t i = 0; i < cols; i++)
        c->mean_sq[i] = slot->count > 0 ? (float)(h[i * cols + i] / slot->count) : 1.0f;
    double started = vkllm_log_clock();
    vkllm_status st = quant_gptq_prepare(h, cols, &c->o.gptq_params, &c->hessian);
    free(h);
    if (st == VKLLM_OK && slot->cross) /* a sequential stage with the unquantized model's output as target */
        st = quant_gptq_target_prepare(slot->h, slot->cross, cols,
                                       quant_calib_retarget_damping(c->o.gptq_params.damp, slot->width, slot->count),
                                       &c->target);
    c->seconds_factoring += vkllm_log_clock() - started;
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
    awq_apply(c->awq, name, w, rows, cols);
    const bool reads_capture = calib_slot_of(name, c->n_layer, &layer, &kind);
    const float *s = reads_capture ? awq_input_scales(c->awq, layer, kind) : NULL;
    float *scaled = NULL; /* an imatrix entry of the original model: the importance of x / s is imp / s^2 */
    if (importance && s && (scaled = malloc(cols * sizeof *scaled))) {
        for (uint64_t i = 0; i < cols; i++) scaled[i] = importance[i] / (s[i] * s[i]);
        importance = scaled;
    }
    vkllm_status st = VKLLM_OK;
    if (c->o.gptq && reads_capture && quant_gptq_supports(type)) {
        st = hessian_for(c, layer, kind, cols);
        if (st == VKLLM_OK && c->target) st = quant_gptq_retarget(c->target, w, rows);
        if (st == VKLLM_OK)
            st = quant_gptq_quantize(type, w, rows, cols, c->hessian, importance ? importance : c->mean_sq, out);
    } else { /* round to nearest (weighted by an imatrix), or a float type */
        const uint64_t row_bytes = quant_row_size(type, cols);
        for (uint64_t r = 0; r < rows && st == VKLLM_OK; r++)
            st = quant_quantize_row_weighted(type, w + r * cols, (uint8_t *)out + r * row_bytes, cols, importance);
    }
    free(scaled);
    return st;
}

bool quant_calib_is_sequential(const quant_calib *c) { return c && c->o.sequential != QUANT_SEQUENTIAL_OFF; }

uint32_t quant_calib_stage_count(const quant_calib *c)
{
    return c->o.sequential == QUANT_SEQUENTIAL_INPUT ? c->n_layer * CAPTURE_KINDS + 1 : c->n_layer + 1;
}

/* Stages in the forward pass's order: per input, (layer, kind) in the order the pass reaches them; per layer,
 * one stage per layer; the LM head's input last. */
static void stage_slot(const quant_calib *c, uint32_t stage, uint32_t *layer, uint32_t *kinds)
{
    if (c->o.sequential == QUANT_SEQUENTIAL_INPUT) {
        *layer = stage / CAPTURE_KINDS;
        *kinds = *layer == c->n_layer ? 1u << CAPTURE_OUTPUT : 1u << (stage % CAPTURE_KINDS);
    } else {
        *layer = stage;
        *kinds = stage == c->n_layer ? 1u << CAPTURE_OUTPUT : (1u << CAPTURE_KINDS) - 1;
    }
}

uint32_t quant_calib_stage_of(const quant_calib *c, const char *name)
{
    uint32_t layer;
    capture_kind kind;
    if (!calib_slot_of(name, c->n_layer, &layer, &kind)) return UINT32_MAX;
    if (c->o.sequential != QUANT_SEQUENTIAL_INPUT) return layer;
    return layer == c->n_layer ? c->n_layer * CAPTURE_KINDS : layer * CAPTURE_KINDS + (uint32_t)kind;
}

uint32_t quant_calib_stage_layers(const quant_calib *c, uint32_t stage)
{
    uint32_t layer, kinds;
    stage_slot(c, stage, &layer, &kinds);
    return layer < c->n_layer ? layer + 1 : c->n_layer;
}

vkllm_status quant_calib_begin_stage(quant_calib *c, uint32_t stage, const char *model_path)
{
    uint32_t layer, kinds;
    stage_slot(c, stage, &layer, &kinds);
    calib_stats_free(c->stats);
    c->stats = NULL;
    quant_gptq_free(c->hessian); /* the statistics it was factorised from are gone */
    c->hessian = NULL;
    quant_gptq_target_free(c->target);
    c->target = NULL;
    c->h_layer = UINT32_MAX;
    calib_pass_options po = {.model = model_path, .text_path = c->o.text_path, .n_ctx = c->o.n_ctx,
                             .chunks = c->o.chunks, .min_chunks = 1,
                             .reference = c->o.quantized_target ? NULL : c->o.model};
    double started = vkllm_log_clock();
    vkllm_log(VKLLM_LOG_INFO, "sequential calibration: stage %u of %u, layer %u, on the model quantized so far",
              stage + 1, quant_calib_stage_count(c), layer);
    vkllm_status st = calib_stats_collect(&po, layer, layer + 1, kinds, NULL, NULL, &c->stats);
    c->seconds_calibrating += vkllm_log_clock() - started;
    c->n_stage_passes++;
    return st;
}
