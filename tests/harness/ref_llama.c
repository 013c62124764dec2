#include "ref_llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "matmul_check.h"
#include "quant/quant.h"
#include "ref_attention.h"
#include "runtime/error.h"

/* A weight matrix; quantized: a block type, whose products the GPU's integer path computes on x quantized
 * to 8-bit blocks. */
typedef struct ref_matrix {
    double *w;
    bool quantized;
} ref_matrix;

typedef struct ref_layer {
    double *attn_norm, *ffn_norm;       /* [dim] */
    ref_matrix wq, wk, wv, wo;          /* [n_head*hd][dim], [n_kv*hd][dim] x2, [dim][n_head*hd] */
    double *bq, *bk, *bv;               /* biases (qwen2) or NULL */
    ref_matrix w_gate, w_up, w_down;    /* [ff][dim], [ff][dim], [dim][ff] */
} ref_layer;

struct ref_model {
    uint32_t dim, n_layer, n_head, n_kv, head_dim, ff, vocab;
    double eps, rope_base;
    bool neox;                      /* qwen2: rotate (i, i + hd/2); llama: adjacent pairs */
    int cache_k, cache_v;           /* ref_model_set_cache: quant_type each K / V row round-trips through, -1 none */
    bool rotate_k;
    const float *k_center;          /* ref_model_set_k_center: [n_layer][n_kv][k_center_pairs][2], or NULL */
    uint32_t k_center_pairs;
    double *embd;                   /* [vocab][dim] */
    bool embd_quantized;
    double *embd_rows;              /* [vocab][dim]: the rows looked up (embd, or its F16 rounding) */
    double *out_norm;               /* [dim] */
    ref_matrix output;              /* [vocab][dim] (the embedding when tied) */
    ref_layer *layers;
};

/* Tensor as doubles, rows x cols; NULL if absent (optional).  *quantized (if given): of a block type. */
static double *load_tensor_q(const gguf_file *f, const char *name, uint64_t expect_elems, bool optional,
                             bool *quantized)
{
    const gguf_tensor_info *t = gguf_find_tensor(f, name);
    if (quantized) *quantized = t && quant_get_traits(t->type) && quant_get_traits(t->type)->block_elems > 1;
    if (!t) {
        if (!optional) fprintf(stderr, "ref: missing tensor %s\n", name);
        return NULL;
    }
    uint64_t cols = t->ne[0], rows = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) rows *= t->ne[d];
    if (rows * cols != expect_elems) {
        fprintf(stderr, "ref: %s has %llu elements, expected %llu\n", name, (unsigned long long)(rows * cols),
                (unsigned long long)expect_elems);
        return NULL;
    }
    double *out = malloc(rows * cols * sizeof *out);
    float *row = malloc(cols * sizeof *row);
    uint64_t row_bytes = quant_row_size(t->type, cols);
    for (uint64_t r = 0; r < rows && out && row; r++) {
        if (quant_dequantize_row(t->type, (const uint8_t *)t->data + r * row_bytes, row, cols) != VKLLM_OK) {
            free(out);
            out = NULL;
            break;
        }
        for (uint64_t c = 0; c < cols; c++) out[r * cols + c] = row[c];
    }
    free(row);
    return out;
}

static double *load_tensor(const gguf_file *f, const char *name, uint64_t expect_elems, bool optional)
{
    return load_tensor_q(f, name, expect_elems, optional, NULL);
}

static ref_matrix load_matrix(const gguf_file *f, const char *name, uint64_t expect_elems, bool optional)
{
    ref_matrix m;
    m.w = load_tensor_q(f, name, expect_elems, optional, &m.quantized);
    return m;
}

static char *key(char *buf, size_t n, const char *arch, const char *suffix)
{
    snprintf(buf, n, "%s.%s", arch, suffix);
    return buf;
}

vkllm_status ref_model_load(const char *path, ref_model **out)
{
    gguf_file *f;
    VKLLM_TRY(gguf_open(path, &f));
    ref_model *m = calloc(1, sizeof *m);
    if (m) m->cache_k = m->cache_v = -1;
    gguf_str arch_s;
    VKLLM_TRY(gguf_get_str(f, "general.architecture", &arch_s));
    char arch[32], k[128];
    snprintf(arch, sizeof arch, "%.*s", (int)arch_s.len, arch_s.data);
    m->neox = strcmp(arch, "qwen2") == 0;
    VKLLM_TRY(gguf_get_u32(f, key(k, sizeof k, arch, "embedding_length"), &m->dim));
    VKLLM_TRY(gguf_get_u32(f, key(k, sizeof k, arch, "block_count"), &m->n_layer));
    VKLLM_TRY(gguf_get_u32(f, key(k, sizeof k, arch, "attention.head_count"), &m->n_head));
    m->n_kv = gguf_u32_or(f, key(k, sizeof k, arch, "attention.head_count_kv"), m->n_head);
    VKLLM_TRY(gguf_get_u32(f, key(k, sizeof k, arch, "feed_forward_length"), &m->ff));
    m->head_dim = m->dim / m->n_head;
    m->eps = gguf_f32_or(f, key(k, sizeof k, arch, "attention.layer_norm_rms_epsilon"), 1e-5f);
    m->rope_base = gguf_f32_or(f, key(k, sizeof k, arch, "rope.freq_base"), 10000.0f);
    const gguf_tensor_info *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "ref: no token_embd.weight");
    m->vocab = (uint32_t)te->ne[1];
    uint32_t dim = m->dim, qd = m->n_head * m->head_dim, kvd = m->n_kv * m->head_dim;
    m->embd = load_tensor_q(f, "token_embd.weight", (uint64_t)m->vocab * dim, false, &m->embd_quantized);
    m->out_norm = load_tensor(f, "output_norm.weight", dim, false);
    m->output = load_matrix(f, "output.weight", (uint64_t)m->vocab * dim, true);
    if (!m->output.w) m->output = (ref_matrix){m->embd, m->embd_quantized};
    m->embd_rows = m->embd;
    if (m->embd_quantized && m->embd) {
        /* vkllm keeps a quantized embedding table as F16 (src/model/model.c): the rows the model looks up are
         * those halves; the tied LM head still multiplies the quantized matrix. */
        m->embd_rows = malloc((uint64_t)m->vocab * dim * sizeof *m->embd_rows);
        if (!m->embd_rows) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "ref: embedding");
        for (uint64_t i = 0; i < (uint64_t)m->vocab * dim; i++)
            m->embd_rows[i] = quant_f16_to_f32(quant_f32_to_f16((float)m->embd[i]));
    }
    m->layers = calloc(m->n_layer, sizeof *m->layers);
    for (uint32_t l = 0; l < m->n_layer; l++) {
        ref_layer *L = &m->layers[l];
#define T(field, name, n, opt) snprintf(k, sizeof k, "blk.%u.%s", l, name), L->field = load_tensor(f, k, n, opt)
#define M(field, name, n) snprintf(k, sizeof k, "blk.%u.%s", l, name), L->field = load_matrix(f, k, n, false)
        T(attn_norm, "attn_norm.weight", dim, false);
        T(ffn_norm, "ffn_norm.weight", dim, false);
        M(wq, "attn_q.weight", (uint64_t)qd * dim);
        M(wk, "attn_k.weight", (uint64_t)kvd * dim);
        M(wv, "attn_v.weight", (uint64_t)kvd * dim);
        M(wo, "attn_output.weight", (uint64_t)dim * qd);
        T(bq, "attn_q.bias", qd, true);
        T(bk, "attn_k.bias", kvd, true);
        T(bv, "attn_v.bias", kvd, true);
        M(w_gate, "ffn_gate.weight", (uint64_t)m->ff * dim);
        M(w_up, "ffn_up.weight", (uint64_t)m->ff * dim);
        M(w_down, "ffn_down.weight", (uint64_t)dim * m->ff);
#undef T
#undef M
        if (!L->attn_norm || !L->ffn_norm || !L->wq.w || !L->wk.w || !L->wv.w || !L->wo.w || !L->w_gate.w ||
            !L->w_up.w || !L->w_down.w) {
            gguf_close(f);
            ref_model_free(m);
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "ref: layer %u incomplete in %s", l, path);
        }
    }
    gguf_close(f);
    *out = m;
    return VKLLM_OK;
}

void ref_model_free(ref_model *m)
{
    if (!m) return;
    for (uint32_t l = 0; l < m->n_layer && m->layers; l++) {
        ref_layer *L = &m->layers[l];
        double *all[] = {L->attn_norm, L->ffn_norm, L->wq.w, L->wk.w, L->wv.w, L->wo.w, L->bq, L->bk, L->bv,
                         L->w_gate.w, L->w_up.w, L->w_down.w};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    }
    free(m->layers);
    if (m->output.w != m->embd) free(m->output.w);
    if (m->embd_rows != m->embd) free(m->embd_rows);
    free(m->embd);
    free(m->out_norm);
    free(m);
}

uint32_t ref_model_n_vocab(const ref_model *m) { return m->vocab; }

bool ref_model_has_quantized(const ref_model *m)
{
    bool any = m->output.quantized;
    for (uint32_t l = 0; l < m->n_layer; l++) {
        const ref_layer *L = &m->layers[l];
        any = any || L->wq.quantized || L->wk.quantized || L->wv.quantized || L->wo.quantized ||
              L->w_gate.quantized || L->w_up.quantized || L->w_down.quantized;
    }
    return any;
}

static void rmsnorm(double *out, const double *x, const double *w, uint32_t n, double eps)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / n + eps);
    for (uint32_t i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

/* out[r] = sum_c w[r][c] * x[c] (+ bias); with q8 and quantized weights, x as the GPU's integer path sees it:
 * rounded to float (its activations), then its q8 round trip (th_q8_quantize). */
static void matvec(double *out, const ref_matrix *m, const double *x, const double *bias, uint32_t rows,
                   uint32_t cols, bool q8)
{
    double *xq = NULL;
    if (q8 && m->quantized && cols > 0 && cols % 32 == 0) {
        float *xf = calloc(cols, sizeof *xf), *d = calloc(cols / 32, sizeof *d);
        int8_t *levels = malloc(cols);
        xq = malloc(sizeof *xq * cols);
        assert_true(xf && d && levels && xq);
        for (uint32_t c = 0; c < cols; c++) xf[c] = (float)x[c];
        th_q8_quantize(xf, cols, levels, d);
        for (uint32_t c = 0; c < cols; c++) xq[c] = (double)d[c / 32] * levels[c];
        x = xq;
        free(xf), free(d), free(levels);
    }
    for (uint32_t r = 0; r < rows; r++) {
        double s = bias ? bias[r] : 0;
        for (uint32_t c = 0; c < cols; c++) s += m->w[(uint64_t)r * cols + c] * x[c];
        out[r] = s;
    }
    free(xq);
}

static void rope(double *v, uint32_t n_heads, uint32_t hd, uint32_t pos, double base, bool neox)
{
    for (uint32_t h = 0; h < n_heads; h++) {
        double *x = v + h * hd;
        for (uint32_t i = 0; i < hd / 2; i++) {
            double theta = pos * pow(base, -2.0 * i / hd);
            double c = cos(theta), s = sin(theta);
            uint32_t a = neox ? i : 2 * i, b = neox ? i + hd / 2 : 2 * i + 1;
            double x0 = x[a], x1 = x[b];
            x[a] = x0 * c - x1 * s;
            x[b] = x0 * s + x1 * c;
        }
    }
}

void ref_model_set_cache(ref_model *m, int k_type, int v_type, bool rotate_k)
{
    m->cache_k = k_type;
    m->cache_v = v_type;
    m->rotate_k = rotate_k;
}

void ref_model_set_k_center(ref_model *m, const float *center, uint32_t pairs)
{
    m->k_center = center;
    m->k_center_pairs = pairs;
}

/* A row as the cache holds it: rounded to float (the GPU's activations), then through the CPU quantizer; rotated
 * (segments of r) before and back after when r is not 0. */
static void cache_round_trip(double *row, uint32_t n, int type, uint32_t r)
{
    if (type < 0) return;
    float *f = malloc(n * sizeof *f);
    uint8_t *blocks = malloc(quant_row_size((uint32_t)type, n));
    assert_true(f && blocks);
    for (uint32_t i = 0; i < n; i++) f[i] = (float)row[i];
    if (r) ref_hadamard_segments(f, n, r);
    th_check_status(quant_quantize_row((uint32_t)type, f, blocks, n), "cache quantize");
    th_check_status(quant_dequantize_row((uint32_t)type, blocks, f, n), "cache dequantize");
    if (r) ref_hadamard_segments(f, n, r);
    for (uint32_t i = 0; i < n; i++) row[i] = f[i];
    free(f);
    free(blocks);
}

void ref_model_forward(ref_model *m, const int32_t *tokens, uint32_t n, double *logits)
{
    ref_model_forward_q8(m, tokens, n, false, false, logits);
}

void ref_model_forward_q8(ref_model *m, const int32_t *tokens, uint32_t n, bool q8_layers, bool q8_head,
                          double *logits)
{
    uint32_t dim = m->dim, hd = m->head_dim, qd = m->n_head * hd, kvd = m->n_kv * hd, ff = m->ff;
    double *x = malloc(dim * sizeof *x), *h = malloc(dim * sizeof *h), *q = malloc(qd * sizeof *q);
    double *att = malloc(qd * sizeof *att), *o = malloc(dim * sizeof *o), *score = malloc(n * sizeof *score);
    double *g = malloc(ff * sizeof *g), *u = malloc(ff * sizeof *u);
    double *kc = malloc((size_t)m->n_layer * n * kvd * sizeof *kc), *vc = malloc((size_t)m->n_layer * n * kvd * sizeof *vc);
    for (uint32_t p = 0; p < n; p++) {
        memcpy(x, m->embd_rows + (uint64_t)tokens[p] * dim, dim * sizeof *x);
        for (uint32_t l = 0; l < m->n_layer; l++) {
            const ref_layer *L = &m->layers[l];
            double *k = kc + ((size_t)l * n + p) * kvd, *v = vc + ((size_t)l * n + p) * kvd;
            rmsnorm(h, x, L->attn_norm, dim, m->eps);
            matvec(q, &L->wq, h, L->bq, qd, dim, q8_layers);
            matvec(k, &L->wk, h, L->bk, kvd, dim, q8_layers);
            matvec(v, &L->wv, h, L->bv, kvd, dim, q8_layers);
            rope(q, m->n_head, hd, p, m->rope_base, m->neox);
            rope(k, m->n_kv, hd, p, m->rope_base, m->neox);
            float *c_row = NULL; /* a centered cache holds the key minus the mean key at p */
            if (m->k_center && m->cache_k >= 0) {
                c_row = malloc(kvd * sizeof *c_row);
                assert_true(c_row != NULL);
                ref_key_center_row(m->k_center + (size_t)l * m->n_kv * m->k_center_pairs * 2, m->k_center_pairs,
                                   m->n_kv, hd, hd, m->rope_base, 1.0, p, 0, c_row);
                for (uint32_t i = 0; i < kvd; i++) k[i] -= c_row[i];
            }
            cache_round_trip(k, kvd, m->cache_k, m->rotate_k ? ref_rotation_segment(hd) : 0);
            for (uint32_t i = 0; c_row && i < kvd; i++) k[i] += c_row[i];
            free(c_row);
            cache_round_trip(v, kvd, m->cache_v, 0);
            for (uint32_t head = 0; head < m->n_head; head++) {
                uint32_t kvh = head / (m->n_head / m->n_kv);
                double max = -INFINITY, sum = 0;
                for (uint32_t t = 0; t <= p; t++) {
                    const double *kt = kc + ((size_t)l * n + t) * kvd + kvh * hd;
                    double s = 0;
                    for (uint32_t i = 0; i < hd; i++) s += q[head * hd + i] * kt[i];
                    score[t] = s / sqrt((double)hd);
                    if (score[t] > max) max = score[t];
                }
                for (uint32_t t = 0; t <= p; t++) sum += (score[t] = exp(score[t] - max));
                for (uint32_t i = 0; i < hd; i++) {
                    double acc = 0;
                    for (uint32_t t = 0; t <= p; t++) acc += score[t] * vc[((size_t)l * n + t) * kvd + kvh * hd + i];
                    att[head * hd + i] = acc / sum;
                }
            }
            matvec(o, &L->wo, att, NULL, dim, qd, q8_layers);
            for (uint32_t i = 0; i < dim; i++) x[i] += o[i];
            rmsnorm(h, x, L->ffn_norm, dim, m->eps);
            matvec(g, &L->w_gate, h, NULL, ff, dim, q8_layers);
            matvec(u, &L->w_up, h, NULL, ff, dim, q8_layers);
            for (uint32_t i = 0; i < ff; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            matvec(o, &L->w_down, g, NULL, dim, ff, q8_layers);
            for (uint32_t i = 0; i < dim; i++) x[i] += o[i];
        }
    }
    rmsnorm(h, x, m->out_norm, dim, m->eps);
    matvec(logits, &m->output, h, NULL, m->vocab, dim, q8_head);
    free(x), free(h), free(q), free(att), free(o), free(score), free(g), free(u), free(kc), free(vc);
}
