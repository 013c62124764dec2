/* Readers of llama2.c's legacy checkpoint and tokenizer files (formats in llama2c.h, following run.c). */
#include "llama2c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/mapped_file.h"
#include "runtime/error.h"

#define LLAMA2C_HEADER_INTS 7

/* Element counts of the arrays, in file order; all checked against overflow. */
typedef struct llama2c_layout {
    uint64_t embedding, layer_norm, wq, wk, wv, wo, w1, w2, w3, final_norm, freq_cis, wcls;
} llama2c_layout;

/* a * b, or false on 64-bit overflow. */
static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a) return false;
    *out = a * b;
    return true;
}

static vkllm_status read_config(const char *path, const mapped_file *map, llama2c_config *c)
{
    if (map->size < LLAMA2C_HEADER_INTS * sizeof(int32_t))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "llama2.c checkpoint %s: %" PRIu64 " bytes is shorter than the "
                                                  "28-byte header (7 int32)",
                          path, map->size);
    int32_t h[LLAMA2C_HEADER_INTS];
    memcpy(h, map->data, sizeof h);
    static const char *const names[LLAMA2C_HEADER_INTS] = {"dim",        "hidden_dim", "n_layers", "n_heads",
                                                           "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < LLAMA2C_HEADER_INTS; i++)
        if (h[i] == 0 || (h[i] < 0 && i != 5) || h[i] == INT32_MIN)
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "llama2.c checkpoint %s: header %s = %" PRId32
                                                      " (expected a positive int32)",
                              path, names[i], h[i]);
    *c = (llama2c_config){(uint32_t)h[0], (uint32_t)h[1], (uint32_t)h[2], (uint32_t)h[3],
                          (uint32_t)h[4], (uint32_t)(h[5] < 0 ? -h[5] : h[5]), (uint32_t)h[6], h[5] > 0};
    if (c->dim % c->n_heads != 0 || (c->dim / c->n_heads) % 2 != 0)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "llama2.c checkpoint %s: dim %" PRIu32 " / n_heads %" PRIu32
                                                  " must give an even head size",
                          path, c->dim, c->n_heads);
    if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "llama2.c checkpoint %s: n_kv_heads %" PRIu32
                                                  " must divide n_heads %" PRIu32,
                          path, c->n_kv_heads, c->n_heads);
    return VKLLM_OK;
}

static bool compute_layout(const llama2c_config *c, llama2c_layout *l, uint64_t *total_floats)
{
    uint64_t dim = c->dim, layers = c->n_layers, head_size = dim / c->n_heads, kv_dim = head_size * c->n_kv_heads;
    uint64_t sq, kvsq, ffn;
    bool ok = mul_ok(c->vocab_size, dim, &l->embedding) && mul_ok(layers, dim, &l->layer_norm) &&
              mul_ok(dim, dim, &sq) && mul_ok(layers, sq, &l->wq) && mul_ok(kv_dim, dim, &kvsq) &&
              mul_ok(layers, kvsq, &l->wk) && mul_ok(c->hidden_dim, dim, &ffn) && mul_ok(layers, ffn, &l->w1) &&
              mul_ok(c->seq_len, head_size, &l->freq_cis); /* real and imaginary halves: seq_len * head_size / 2 each */
    if (!ok) return false;
    l->wv = l->wk;
    l->wo = l->wq;
    l->w2 = l->w3 = l->w1;
    l->final_norm = dim;
    l->wcls = c->shared_classifier ? 0 : l->embedding;
    const uint64_t parts[] = {l->embedding, l->layer_norm, l->wq, l->wk, l->wv, l->wo, l->layer_norm,
                              l->w1, l->w2, l->w3, l->final_norm, l->freq_cis, l->wcls};
    uint64_t total = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (parts[i] > UINT64_MAX - total) return false;
        total += parts[i];
    }
    *total_floats = total;
    return true;
}

/* The file must be exactly the header plus the arrays the header implies. */
static vkllm_status read_layout(const char *path, const mapped_file *map, llama2c_config *c, llama2c_layout *l)
{
    VKLLM_TRY(read_config(path, map, c));
    uint64_t floats = 0, expected = 0;
    if (!compute_layout(c, l, &floats) || !mul_ok(floats, sizeof(float), &expected) ||
        expected > UINT64_MAX - LLAMA2C_HEADER_INTS * sizeof(int32_t))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "llama2.c checkpoint %s: header sizes overflow 64 bits", path);
    expected += LLAMA2C_HEADER_INTS * sizeof(int32_t);
    if (expected != map->size)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT,
                          "llama2.c checkpoint %s: file is %" PRIu64 " bytes, but the header (dim %" PRIu32
                          ", hidden_dim %" PRIu32 ", %" PRIu32 " layers, %" PRIu32 " heads, %" PRIu32
                          " kv heads, vocab %" PRIu32 " %s, seq_len %" PRIu32 ") implies %" PRIu64,
                          path, map->size, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                          c->vocab_size, c->shared_classifier ? "shared" : "separate classifier", c->seq_len, expected);
    return VKLLM_OK;
}

vkllm_status llama2c_model_open(const char *path, llama2c_model **out)
{
    *out = NULL;
    mapped_file map;
    if (mapped_file_open(path, &map) != VKLLM_OK) return vkllm_fail_context(VKLLM_ERROR_IO, "llama2.c checkpoint");
    llama2c_config c = {0};
    llama2c_layout l = {0};
    vkllm_status status = read_layout(path, &map, &c, &l);
    llama2c_model *m = status == VKLLM_OK ? calloc(1, sizeof *m) : NULL;
    if (status == VKLLM_OK && !m)
        status = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "llama2.c checkpoint %s: no memory", path);
    if (status != VKLLM_OK) {
        mapped_file_close(&map);
        return status;
    }
    /* The header is 28 bytes, so every float array sits at a multiple of 4 in a page-aligned mapping. */
    const float *p = (const float *)(map.data + LLAMA2C_HEADER_INTS * sizeof(int32_t));
    m->config = c;
    m->token_embedding = p, p += l.embedding;
    m->rms_att = p, p += l.layer_norm;
    m->wq = p, p += l.wq;
    m->wk = p, p += l.wk;
    m->wv = p, p += l.wv;
    m->wo = p, p += l.wo;
    m->rms_ffn = p, p += l.layer_norm;
    m->w1 = p, p += l.w1;
    m->w2 = p, p += l.w2;
    m->w3 = p, p += l.w3;
    m->rms_final = p, p += l.final_norm;
    p += l.freq_cis; /* RoPE tables that run.c no longer uses */
    m->wcls = c.shared_classifier ? m->token_embedding : p;
    m->map = map.data;
    m->map_size = map.size;
    *out = m;
    return VKLLM_OK;
}

void llama2c_model_close(llama2c_model *model)
{
    if (!model) return;
    mapped_file map = {model->map, model->map_size};
    mapped_file_close(&map);
    free(model);
}

void llama2c_vocab_free(llama2c_vocab *vocab)
{
    if (!vocab) return;
    if (vocab->text)
        for (uint32_t i = 0; i < vocab->n_tokens; i++) free(vocab->text[i]);
    free(vocab->text);
    free(vocab->len);
    free(vocab->score);
    free(vocab);
}

static vkllm_status parse_vocab(const char *path, const mapped_file *map, llama2c_vocab *v)
{
    uint64_t pos = 0;
    int32_t max_len;
    if (map->size < 4)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "llama2.c tokenizer %s: %" PRIu64 " bytes, too short for "
                                                  "max_token_length",
                          path, map->size);
    memcpy(&max_len, map->data, 4);
    if (max_len < 0)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "llama2.c tokenizer %s: max_token_length %" PRId32
                                                  " (expected >= 0)",
                          path, max_len);
    v->max_token_length = (uint32_t)max_len;
    pos = 4;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        int32_t len;
        if (map->size - pos < 8)
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT,
                              "llama2.c tokenizer %s: ends at token %" PRIu32 " (offset %" PRIu64
                              "), but the model's vocab_size is %" PRIu32,
                              path, i, pos, v->n_tokens);
        memcpy(&v->score[i], map->data + pos, 4);
        memcpy(&len, map->data + pos + 4, 4);
        pos += 8;
        if (len < 0 || (uint64_t)len > map->size - pos)
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT,
                              "llama2.c tokenizer %s: token %" PRIu32 " length %" PRId32 " at offset %" PRIu64
                              " (expected 0..%" PRIu64 ", the bytes left)",
                              path, i, len, pos - 4, map->size - pos);
        v->len[i] = (uint32_t)len;
        if (!(v->text[i] = malloc((size_t)len + 1)))
            return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "llama2.c tokenizer %s: no memory", path);
        memcpy(v->text[i], map->data + pos, (size_t)len);
        v->text[i][len] = '\0';
        pos += (uint64_t)len;
    }
    if (pos != map->size)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "llama2.c tokenizer %s: %" PRIu64 " bytes left after %" PRIu32
                                                  " tokens (the model's vocab_size); is it the model's tokenizer?",
                          path, map->size - pos, v->n_tokens);
    return VKLLM_OK;
}

vkllm_status llama2c_vocab_load(const char *path, uint32_t n_tokens, llama2c_vocab **out)
{
    *out = NULL;
    mapped_file map;
    if (mapped_file_open(path, &map) != VKLLM_OK) return vkllm_fail_context(VKLLM_ERROR_IO, "llama2.c tokenizer");
    llama2c_vocab *v = calloc(1, sizeof *v);
    vkllm_status status = VKLLM_OK;
    if (v) {
        v->n_tokens = n_tokens;
        v->text = calloc(n_tokens ? n_tokens : 1, sizeof *v->text);
        v->len = calloc(n_tokens ? n_tokens : 1, sizeof *v->len);
        v->score = calloc(n_tokens ? n_tokens : 1, sizeof *v->score);
    }
    if (!v || !v->text || !v->len || !v->score)
        status = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "llama2.c tokenizer %s: no memory for %" PRIu32 " tokens",
                            path, n_tokens);
    else
        status = parse_vocab(path, &map, v);
    mapped_file_close(&map);
    if (status != VKLLM_OK) {
        llama2c_vocab_free(v);
        return status;
    }
    *out = v;
    return VKLLM_OK;
}
