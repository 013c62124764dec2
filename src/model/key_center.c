/* The mean key a centered K cache subtracts (vkllm_context_params.center_k, docs/kv-cache.md).
 *
 * A trained model's keys carry a large common part in their low-frequency RoPE pairs (stories260K: means of 8-19
 * against spreads of 2-4), and a Q8_0 / Q4_0 block's scale follows its largest value, so that common part sets the
 * quantization step of every key.  A centered cache stores k - R(pos) m instead, m the mean key before RoPE: the
 * Q/K/V store's bias subtracts m (RoPE then rotates it to the key's position), and attention adds q . R(pos) m
 * back, so every score is the key's own and only the quantization error changes.
 *
 * m is estimated once per model, when the first context that wants it is created: a pass over KEY_CENTER_TOKENS
 * tokens (BOS, then ids from a fixed pseudo-random sequence: the same m for every run of the model) in a small
 * context of its own with activation capture, the mean of each layer's attention input (what the K projection
 * reads) over the positions after BOS, times the K weight's rows on the host.  Only the KEY_CENTER_PAIRS
 * lowest-frequency pairs of each head are centered: attention's add-back costs a complex product per pair and key, and
 * the slowly turning pairs are where the common part stays put. */
#include "context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "runtime/error.h"
#include "runtime/log.h"

#define KEY_CENTER_TOKENS 128
#define KEY_CENTER_PAIRS 4

/* The calibration pass: tokens through a fresh context with capture on; means[l][c] = the mean over positions
 * 1.. of layer l's attention input. */
static vkllm_status attention_input_means(vkllm_model *m, double *means)
{
    const model_config *c = &m->cfg;
    const uint32_t n = KEY_CENTER_TOKENS;
    vkllm_context_params p = vkllm_context_default_params();
    p.n_ctx = n;
    p.n_batch = n;
    p.n_outputs_max = 1;
    p.center_k = 0;
    vkllm_context *ctx;
    VKLLM_TRY(vkllm_context_create(m, &p, &ctx));
    vkllm_token tokens[KEY_CENTER_TOKENS];
    int32_t pos[KEY_CENTER_TOKENS], seq[KEY_CENTER_TOKENS];
    int8_t want[KEY_CENTER_TOKENS];
    uint32_t state = 0x9e3779b9u;
    int32_t bos = tokenizer_bos(m->tok);
    for (uint32_t i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        tokens[i] = i == 0 && bos >= 0 ? bos : (vkllm_token)((state >> 8) % c->n_vocab);
        pos[i] = (int32_t)i;
        seq[i] = 0;
        want[i] = i == n - 1;
    }
    vkllm_batch batch = {n, tokens, pos, seq, want};
    vkllm_status st = context_capture_enable(ctx);
    if (st == VKLLM_OK) st = vkllm_decode(ctx, &batch);
    for (uint32_t l = 0; l < c->n_layer && st == VKLLM_OK; l++) {
        uint32_t width;
        const float *rows = context_capture_rows(ctx, l, CAPTURE_ATTN_IN, &width);
        double *mean = means + (uint64_t)l * c->n_embd;
        for (uint32_t col = 0; col < c->n_embd; col++) mean[col] = 0;
        for (uint32_t t = 1; t < n; t++)
            for (uint32_t col = 0; col < c->n_embd; col++) mean[col] += rows[(uint64_t)t * width + col];
        for (uint32_t col = 0; col < c->n_embd; col++) mean[col] /= n - 1;
    }
    vkllm_context_free(ctx);
    return st;
}

/* Layer l's mean key in the centered pairs (center[h][i] = (x, y) of pair n_rot / 2 - pairs + i of kv head h),
 * from its attention input's mean, and its stacked Q/K/V bias with the mean taken off the centered K rows. */
static vkllm_status layer_center(vkllm_model *m, uint32_t l, uint32_t pairs, const double *mean, float *center,
                                 float *bias)
{
    const model_config *c = &m->cfg;
    const uint32_t q_rows = c->n_head * c->head_dim, rows = q_rows + 2 * c->n_head_kv * c->head_dim;
    const vkr_buffer *model_bias = &m->layers[l].bqkv; /* the loader's stacked bias (empty without biases) */
    if (model_bias->size) VKLLM_TRY(vkr_download(m->dev, model_bias, 0, bias, 4ull * rows));
    else memset(bias, 0, 4ull * rows);
    char name[64];
    snprintf(name, sizeof name, "blk.%u.attn_k.weight", l);
    const gguf_tensor_info *t = gguf_find_tensor(m->gguf, name);
    if (!t) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: no %s", m->path, name);
    float *row = malloc(c->n_embd * sizeof *row);
    if (!row) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "key center: a row of %u", c->n_embd);
    const uint64_t row_bytes = quant_row_size(t->type, c->n_embd);
    vkllm_status st = VKLLM_OK;
    for (uint32_t h = 0; h < c->n_head_kv && st == VKLLM_OK; h++)
        for (uint32_t i = 0; i < 2 * pairs && st == VKLLM_OK; i++) {
            const uint32_t r = h * c->head_dim + c->n_rot - 2 * pairs + i; /* a row of the stacked K */
            st = quant_dequantize_row(t->type, (const uint8_t *)t->data + model_qk_source_row(c, r) * row_bytes,
                                      row, c->n_embd);
            double k = bias[q_rows + r];
            for (uint32_t col = 0; st == VKLLM_OK && col < c->n_embd; col++) k += row[col] * mean[col];
            center[h * 2 * pairs + i] = (float)k;
            bias[q_rows + r] -= (float)k;
        }
    free(row);
    return st;
}

vkllm_status model_key_center(vkllm_model *m)
{
    if (m->k_center_pairs) return VKLLM_OK;
    const model_config *c = &m->cfg;
    const uint32_t pairs = c->n_rot / 2 < KEY_CENTER_PAIRS ? c->n_rot / 2 : KEY_CENTER_PAIRS;
    if (!pairs) return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "key center: the model rotates no dims (n_rot 0)");
    double started = vkllm_log_clock();
    const uint32_t rows = (c->n_head + 2 * c->n_head_kv) * c->head_dim, centers = 2 * pairs * c->n_head_kv;
    double *means = malloc((uint64_t)c->n_layer * c->n_embd * sizeof *means);
    float *bias = malloc((uint64_t)c->n_layer * rows * sizeof *bias);
    float *center = malloc((uint64_t)c->n_layer * centers * sizeof *center);
    vkllm_status st = means && bias && center ? VKLLM_OK
                                              : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "key center: %u layers",
                                                           c->n_layer);
    if (st == VKLLM_OK) st = attention_input_means(m, means);
    for (uint32_t l = 0; l < c->n_layer && st == VKLLM_OK; l++)
        st = layer_center(m, l, pairs, means + (uint64_t)l * c->n_embd, center + (uint64_t)l * centers,
                          bias + (uint64_t)l * rows);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(m->dev, 4ull * c->n_layer * rows, VKR_MEMORY_DEVICE, &m->k_center_bias);
    if (st == VKLLM_OK) st = vkr_upload(m->dev, &m->k_center_bias, 0, bias, 4ull * c->n_layer * rows);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(m->dev, 4ull * c->n_layer * centers, VKR_MEMORY_DEVICE, &m->k_center);
    if (st == VKLLM_OK) st = vkr_upload(m->dev, &m->k_center, 0, center, 4ull * c->n_layer * centers);
    if (st == VKLLM_OK) {
        m->k_center_pairs = pairs;
        vkllm_log(VKLLM_LOG_INFO, "key center: %u RoPE pairs per head from %u tokens in %.1f ms", pairs,
                  KEY_CENTER_TOKENS, 1e3 * (vkllm_log_clock() - started));
    } else {
        vkr_buffer_free(m->dev, &m->k_center_bias);
        vkr_buffer_free(m->dev, &m->k_center);
    }
    free(means);
    free(bias);
    free(center);
    return st == VKLLM_OK ? VKLLM_OK : vkllm_fail_context(st, "estimating the mean key of %s", m->path);
}
