/* The Medusa heads' GGUF file (keys in docs/speculative.md) and its check against the base model: heads trained on
 * one model are meaningless on another, so a file names its base by shapes and a vocabulary hash, and a mismatch is
 * refused with both sides named. */
#include "medusa.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const void *data, uint64_t n)
{
    const uint8_t *p = data;
    for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static void copy_str(char *dst, size_t cap, gguf_str s)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.data, n);
    dst[n] = 0;
}

static void str_or_empty(const gguf_file *f, const char *key, char *dst, size_t cap)
{
    gguf_str s;
    dst[0] = 0;
    if (gguf_find_kv(f, key) && gguf_get_str(f, key, &s) == VKLLM_OK) copy_str(dst, cap, s);
}

vkllm_status medusa_base_from_gguf(const gguf_file *f, medusa_base *out)
{
    memset(out, 0, sizeof *out);
    str_or_empty(f, "general.name", out->name, sizeof out->name);
    str_or_empty(f, "general.architecture", out->arch, sizeof out->arch);
    const gguf_tensor_info *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: no 2-D token_embd.weight: not a base model", f->path);
    out->n_embd = (uint32_t)emb->ne[0];
    out->n_vocab = (uint32_t)emb->ne[1];
    char key[64];
    snprintf(key, sizeof key, "%s.block_count", out->arch);
    out->n_layer = gguf_u32_or(f, key, 0);
    gguf_array toks;
    if (gguf_get_array(f, "tokenizer.ggml.tokens", &toks) != VKLLM_OK)
        return vkllm_fail_context(VKLLM_ERROR_BAD_FORMAT, "%s: the vocabulary hash needs tokenizer.ggml.tokens",
                                  f->path);
    uint64_t cursor = 0, h = FNV_OFFSET;
    gguf_str s;
    while (gguf_array_next_str(&toks, &cursor, &s)) h = fnv(fnv(h, s.data, s.len), "", 1);
    out->vocab_hash = h;
    uint64_t sum = 0; /* a sum: the same tensors in another order hash the same */
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        uint64_t th = fnv(FNV_OFFSET, t->name.data, t->name.len);
        th = fnv(th, t->ne, sizeof t->ne[0] * t->n_dims);
        sum += th;
    }
    out->shape_hash = sum;
    return VKLLM_OK;
}

static vkllm_status dequantize(const gguf_file *f, const gguf_tensor_info *t, uint64_t rows, uint64_t cols, float *dst)
{
    if (t->n_dims != 2 || t->ne[0] != cols || t->ne[1] != rows)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %.*s is not [%" PRIu64 " x %" PRIu64 "]", f->path,
                          (int)t->name.len, t->name.data, rows, cols);
    uint64_t rb = quant_row_size(t->type, cols);
    for (uint64_t r = 0; r < rows; r++)
        VKLLM_TRY(quant_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, dst + r * cols, cols));
    return VKLLM_OK;
}

vkllm_status medusa_output_matrix(const gguf_file *f, float **out)
{
    medusa_base b;
    VKLLM_TRY(medusa_base_from_gguf(f, &b));
    const gguf_tensor_info *t = gguf_find_tensor(f, "output.weight");
    if (!t) t = gguf_find_tensor(f, "token_embd.weight"); /* tied embeddings */
    float *m = malloc(sizeof *m * b.n_vocab * b.n_embd);
    if (!m) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "medusa: output matrix of %s", f->path);
    vkllm_status st = dequantize(f, t, b.n_vocab, b.n_embd, m);
    if (st != VKLLM_OK) {
        free(m);
        return st;
    }
    *out = m;
    return VKLLM_OK;
}

vkllm_status medusa_heads_alloc(medusa_heads *h, uint32_t n_heads, uint32_t n_embd, uint32_t n_vocab, bool own_out)
{
    memset(h, 0, sizeof *h);
    if (n_heads == 0 || n_heads > MEDUSA_MAX_HEADS || n_embd == 0 || n_vocab == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "medusa: %u heads (1..%u), n_embd %u, n_vocab %u", n_heads,
                          MEDUSA_MAX_HEADS, n_embd, n_vocab);
    h->n_heads = n_heads;
    h->n_embd = n_embd;
    h->n_vocab = n_vocab;
    h->w = calloc((size_t)n_heads * n_embd * n_embd, sizeof *h->w);
    h->b = calloc((size_t)n_heads * n_embd, sizeof *h->b);
    if (own_out) h->out = calloc((size_t)n_vocab * n_embd, sizeof *h->out);
    if (!h->w || !h->b || (own_out && !h->out)) {
        medusa_heads_free(h);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "medusa: %u heads of %u", n_heads, n_embd);
    }
    return VKLLM_OK;
}

void medusa_heads_free(medusa_heads *h)
{
    free(h->w);
    free(h->b);
    free(h->out);
    memset(h, 0, sizeof *h);
}

vkllm_status medusa_heads_save(const medusa_heads *h, const char *path)
{
    gguf_writer *w;
    VKLLM_TRY(gguf_writer_create(&w));
    char name[192];
    snprintf(name, sizeof name, "Medusa heads for %s", h->base.name[0] ? h->base.name : "a model");
    uint64_t n = h->n_embd;
    vkllm_status st = gguf_writer_set_str(w, "general.architecture", "medusa");
    if (st == VKLLM_OK) st = gguf_writer_set_str(w, "general.name", name);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.head_count", h->n_heads);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.embedding_length", h->n_embd);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.vocab_size", h->n_vocab);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.first_offset", 2);
    if (st == VKLLM_OK) st = gguf_writer_set_str(w, "medusa.base.name", h->base.name);
    if (st == VKLLM_OK) st = gguf_writer_set_str(w, "medusa.base.architecture", h->base.arch);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.base.embedding_length", h->base.n_embd);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.base.vocab_size", h->base.n_vocab);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.base.block_count", h->base.n_layer);
    if (st == VKLLM_OK) st = gguf_writer_set_scalar(w, "medusa.base.vocab_hash", GGUF_TYPE_UINT64, &h->base.vocab_hash);
    if (st == VKLLM_OK) st = gguf_writer_set_scalar(w, "medusa.base.shape_hash", GGUF_TYPE_UINT64, &h->base.shape_hash);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.training.tokens", h->train_tokens);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "medusa.training.seed", h->train_seed);
    for (uint32_t i = 0; st == VKLLM_OK && i < h->n_heads; i++) {
        char tn[64];
        uint64_t ne_w[2] = {n, n}, ne_b[1] = {n};
        snprintf(tn, sizeof tn, "blk.%u.weight", i);
        st = gguf_writer_add_tensor(w, tn, QUANT_F32, 2, ne_w, h->w + (size_t)i * n * n, 4 * n * n);
        snprintf(tn, sizeof tn, "blk.%u.bias", i);
        if (st == VKLLM_OK) st = gguf_writer_add_tensor(w, tn, QUANT_F32, 1, ne_b, h->b + (size_t)i * n, 4 * n);
    }
    uint64_t ne_o[2] = {n, h->n_vocab};
    if (st == VKLLM_OK && h->out)
        st = gguf_writer_add_tensor(w, "output.weight", QUANT_F32, 2, ne_o, h->out, 4 * n * h->n_vocab);
    if (st == VKLLM_OK) st = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return st;
}

static vkllm_status load_u64(const gguf_file *f, const char *key, uint64_t *out)
{
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_UINT64)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %s (uint64) missing", f->path, key);
    *out = kv->value.u64;
    return VKLLM_OK;
}

static vkllm_status load_from(const gguf_file *f, medusa_heads *h)
{
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch) != VKLLM_OK || !gguf_str_eq(arch, "medusa"))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: general.architecture is not \"medusa\": not a heads file "
                          "(`vkllm medusa-train` makes one)", f->path);
    uint32_t k, n, v;
    VKLLM_TRY(gguf_get_u32(f, "medusa.head_count", &k));
    VKLLM_TRY(gguf_get_u32(f, "medusa.embedding_length", &n));
    VKLLM_TRY(gguf_get_u32(f, "medusa.vocab_size", &v));
    if (gguf_u32_or(f, "medusa.first_offset", 2) != 2)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: medusa.first_offset must be 2 (head 0 predicts the token "
                          "after next)", f->path);
    const gguf_tensor_info *out = gguf_find_tensor(f, "output.weight");
    VKLLM_TRY(medusa_heads_alloc(h, k, n, v, out != NULL));
    medusa_base *b = &h->base;
    str_or_empty(f, "medusa.base.name", b->name, sizeof b->name);
    str_or_empty(f, "medusa.base.architecture", b->arch, sizeof b->arch);
    VKLLM_TRY(gguf_get_u32(f, "medusa.base.embedding_length", &b->n_embd));
    VKLLM_TRY(gguf_get_u32(f, "medusa.base.vocab_size", &b->n_vocab));
    b->n_layer = gguf_u32_or(f, "medusa.base.block_count", 0);
    VKLLM_TRY(load_u64(f, "medusa.base.vocab_hash", &b->vocab_hash));
    VKLLM_TRY(load_u64(f, "medusa.base.shape_hash", &b->shape_hash));
    h->train_tokens = gguf_u32_or(f, "medusa.training.tokens", 0);
    h->train_seed = gguf_u32_or(f, "medusa.training.seed", 0);
    for (uint32_t i = 0; i < k; i++) {
        char tn[64];
        snprintf(tn, sizeof tn, "blk.%u.weight", i);
        const gguf_tensor_info *t = gguf_find_tensor(f, tn);
        if (!t) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %s missing (medusa.head_count %u)", f->path, tn, k);
        VKLLM_TRY(dequantize(f, t, n, n, h->w + (size_t)i * n * n));
        snprintf(tn, sizeof tn, "blk.%u.bias", i);
        t = gguf_find_tensor(f, tn);
        if (!t || t->n_dims != 1 || t->ne[0] != n)
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %s missing or not [%u]", f->path, tn, n);
        VKLLM_TRY(quant_dequantize_row(t->type, t->data, h->b + (size_t)i * n, n));
    }
    if (out) VKLLM_TRY(dequantize(f, out, v, n, h->out));
    return VKLLM_OK;
}

vkllm_status medusa_heads_load(const char *path, medusa_heads *out)
{
    gguf_file *f;
    memset(out, 0, sizeof *out);
    VKLLM_TRY(gguf_open(path, &f));
    vkllm_status st = load_from(f, out);
    gguf_close(f);
    if (st != VKLLM_OK) medusa_heads_free(out);
    return st;
}

vkllm_status medusa_heads_check(const medusa_heads *h, const medusa_base *base, const char *heads_path,
                                const char *base_path)
{
    const medusa_base *t = &h->base;
    const char *what = NULL;
    if (h->n_embd != base->n_embd || t->n_embd != base->n_embd) what = "embedding length";
    else if (h->n_vocab != base->n_vocab || t->n_vocab != base->n_vocab) what = "vocabulary size";
    else if (t->vocab_hash != base->vocab_hash) what = "vocabulary (token texts' hash)";
    else if (t->shape_hash != base->shape_hash) what = "tensor shapes' hash";
    if (!what) return VKLLM_OK;
    return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                      "%s: these Medusa heads were trained on another model (\"%s\", %s, n_embd %u, n_vocab %u, %u "
                      "layers, vocab hash %016" PRIx64 ", shape hash %016" PRIx64 ") than %s (\"%s\", %s, n_embd %u, "
                      "n_vocab %u, %u layers, vocab hash %016" PRIx64 ", shape hash %016" PRIx64 "): the %s differs; "
                      "train heads for this model with `vkllm medusa-train`",
                      heads_path, t->name, t->arch, t->n_embd, t->n_vocab, t->n_layer, t->vocab_hash, t->shape_hash,
                      base_path, base->name, base->arch, base->n_embd, base->n_vocab, base->n_layer, base->vocab_hash,
                      base->shape_hash, what);
}
