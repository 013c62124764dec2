#include "model_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quant/quant.h"
#include "runtime/error.h"

static const char *key(char *buf, size_t n, const model_config *c, const char *suffix)
{
    snprintf(buf, n, "%s.%s", c->arch_name, suffix);
    return buf;
}

static vkllm_status read_arch(const gguf_file *f, model_config *c)
{
    gguf_str arch;
    VKLLM_TRY(gguf_get_str(f, "general.architecture", &arch));
    snprintf(c->arch_name, sizeof c->arch_name, "%.*s", (int)(arch.len < 31 ? arch.len : 31), arch.data);
    if (gguf_str_eq(arch, "llama")) c->arch = MODEL_ARCH_LLAMA;
    else if (gguf_str_eq(arch, "qwen2")) c->arch = MODEL_ARCH_QWEN2;
    else
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: architecture '%.*s' is not supported (vkllm runs llama and qwen2)",
                          f->path, (int)arch.len, arch.data);
    return VKLLM_OK;
}

/* An optional key: the fallback when absent, an error naming the key when present with a type or value that
 * does not fit (gguf_get_* name the key and type). */
static vkllm_status optional_u32(const gguf_file *f, const model_config *c, const char *suffix, uint32_t fallback,
                                 uint32_t *out)
{
    char k[96];
    key(k, sizeof k, c, suffix);
    *out = fallback;
    if (!gguf_find_kv(f, k)) return VKLLM_OK;
    return gguf_get_u32(f, k, out);
}

static vkllm_status optional_f32(const gguf_file *f, const model_config *c, const char *suffix, float fallback,
                                 float *out)
{
    char k[96];
    key(k, sizeof k, c, suffix);
    *out = fallback;
    if (!gguf_find_kv(f, k)) return VKLLM_OK;
    return gguf_get_f32(f, k, out);
}

/* A float the forward pass uses, finite and within [lo, hi]: an epsilon of 1e30 or a rope base of inf loads
 * without complaint otherwise and turns every activation into 0 or NaN. */
static vkllm_status check_range(const gguf_file *f, const model_config *c, const char *suffix, float v, double lo,
                                double hi)
{
    if (isfinite(v) && v >= lo && v <= hi) return VKLLM_OK;
    char k[96];
    return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' = %g is outside [%g, %g]", f->path,
                      key(k, sizeof k, c, suffix), (double)v, lo, hi);
}

/* The largest linear RoPE scaling factor accepted: far beyond any context extension in use (32 or so). */
#define MAX_ROPE_SCALE_FACTOR 1e6

static vkllm_status read_rope_scaling(const gguf_file *f, model_config *c)
{
    char k[96];
    c->rope_freq_scale = 1.0f;
    gguf_str type;
    if (gguf_find_kv(f, key(k, sizeof k, c, "rope.scaling.type"))) {
        VKLLM_TRY(gguf_get_str(f, k, &type));
        if (gguf_str_eq(type, "linear")) {
            float factor;
            VKLLM_TRY(optional_f32(f, c, "rope.scaling.factor", 1.0f, &factor));
            VKLLM_TRY(check_range(f, c, "rope.scaling.factor", factor, 1e-6, MAX_ROPE_SCALE_FACTOR));
            c->rope_freq_scale = 1.0f / factor;
        } else if (!gguf_str_eq(type, "none")) {
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: rope scaling '%.*s' is not supported (linear and none are)",
                              f->path, (int)type.len, type.data);
        }
    } else if (gguf_find_kv(f, key(k, sizeof k, c, "rope.scale_linear"))) {
        float factor;
        VKLLM_TRY(optional_f32(f, c, "rope.scale_linear", 1.0f, &factor));
        VKLLM_TRY(check_range(f, c, "rope.scale_linear", factor, 1e-6, MAX_ROPE_SCALE_FACTOR));
        c->rope_freq_scale = 1.0f / factor;
    }
    if (gguf_find_tensor(f, "rope_freqs.weight"))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: per-dimension RoPE frequency factors (rope_freqs.weight, "
                          "Llama 3.1 scaling) are not supported yet", f->path);
    return VKLLM_OK;
}

static vkllm_status required_u32(const gguf_file *f, const model_config *c, const char *suffix, uint32_t *out)
{
    char k[96];
    key(k, sizeof k, c, suffix);
    if (!gguf_find_kv(f, k)) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' is missing", f->path, k);
    VKLLM_TRY(gguf_get_u32(f, k, out));
    if (*out == 0) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' is 0", f->path, k);
    return VKLLM_OK;
}

/* Widths past this are no model's, and keep every product of two of them (rows x columns of a weight, heads x
 * head size) inside the 32-bit sizes the shaders index with. */
#define MAX_DIMENSION (1u << 20)
#define MAX_LAYERS 4096u

static vkllm_status check_at_most(const gguf_file *f, const model_config *c, const char *suffix, uint32_t v,
                                  uint32_t max)
{
    if (v <= max) return VKLLM_OK;
    char k[96];
    return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' = %u is above the largest supported, %u", f->path,
                      key(k, sizeof k, c, suffix), v, max);
}

/* Head counts and sizes: each a divisor or multiple the attention and RoPE shaders rely on. */
static vkllm_status check_heads(const gguf_file *f, model_config *c)
{
    char k[96], k2[96], k3[96];
    if (c->n_head_kv == 0 || c->n_head % c->n_head_kv)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' = %u is not a multiple of '%s' = %u (each "
                          "key/value head serves a whole number of query heads)", f->path,
                          key(k, sizeof k, c, "attention.head_count"), c->n_head,
                          key(k2, sizeof k2, c, "attention.head_count_kv"), c->n_head_kv);
    if (!gguf_find_kv(f, key(k, sizeof k, c, "attention.key_length")) && c->n_embd % c->n_head)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' = %u does not divide '%s' = %u, and no '%s' "
                          "gives the head size", f->path, key(k, sizeof k, c, "attention.head_count"), c->n_head,
                          key(k2, sizeof k2, c, "embedding_length"), c->n_embd,
                          key(k3, sizeof k3, c, "attention.key_length"));
    if (c->head_dim == 0 || c->head_dim % 2 || c->head_dim > MAX_DIMENSION)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: head size %u (metadata key '%s', else %s / %s) must be even, "
                          "positive and at most %u (RoPE rotates pairs)", f->path, c->head_dim,
                          key(k, sizeof k, c, "attention.key_length"), "embedding_length", "attention.head_count",
                          MAX_DIMENSION);
    if (c->n_rot > c->head_dim || c->n_rot % 2)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' = %u must be even and at most the head size %u",
                          f->path, key(k, sizeof k, c, "rope.dimension_count"), c->n_rot, c->head_dim);
    if ((uint64_t)c->n_head * c->head_dim > MAX_DIMENSION)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %u heads of size %u ('%s') make attention %llu wide, above %u",
                          f->path, c->n_head, c->head_dim, key(k, sizeof k, c, "attention.head_count"),
                          (unsigned long long)c->n_head * c->head_dim, MAX_DIMENSION);
    return VKLLM_OK;
}

vkllm_status model_config_read(const gguf_file *f, model_config *c)
{
    memset(c, 0, sizeof *c);
    char k[96];
    VKLLM_TRY(read_arch(f, c));
    VKLLM_TRY(required_u32(f, c, "embedding_length", &c->n_embd));
    VKLLM_TRY(required_u32(f, c, "block_count", &c->n_layer));
    VKLLM_TRY(required_u32(f, c, "attention.head_count", &c->n_head));
    VKLLM_TRY(required_u32(f, c, "feed_forward_length", &c->n_ff));
    VKLLM_TRY(check_at_most(f, c, "embedding_length", c->n_embd, MAX_DIMENSION));
    VKLLM_TRY(check_at_most(f, c, "block_count", c->n_layer, MAX_LAYERS));
    VKLLM_TRY(check_at_most(f, c, "attention.head_count", c->n_head, MAX_DIMENSION));
    VKLLM_TRY(check_at_most(f, c, "feed_forward_length", c->n_ff, MAX_DIMENSION));
    VKLLM_TRY(optional_u32(f, c, "attention.head_count_kv", c->n_head, &c->n_head_kv));
    VKLLM_TRY(optional_u32(f, c, "context_length", 2048, &c->n_ctx_train));
    if (c->n_ctx_train == 0)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' is 0", f->path, key(k, sizeof k, c, "context_length"));
    VKLLM_TRY(optional_u32(f, c, "attention.key_length", c->n_embd / c->n_head, &c->head_dim));
    VKLLM_TRY(optional_u32(f, c, "rope.dimension_count", c->head_dim, &c->n_rot));
    VKLLM_TRY(optional_f32(f, c, "attention.layer_norm_rms_epsilon", 1e-5f, &c->rms_eps));
    /* Models use 1e-5 or 1e-6; the range is wide, but a value past it scales every norm to nothing or NaN. */
    VKLLM_TRY(check_range(f, c, "attention.layer_norm_rms_epsilon", c->rms_eps, 1e-12, 0.1));
    VKLLM_TRY(optional_f32(f, c, "rope.freq_base", 10000.0f, &c->rope_base));
    VKLLM_TRY(check_range(f, c, "rope.freq_base", c->rope_base, 1e-3, 1e12));
    c->rope_neox = c->arch == MODEL_ARCH_QWEN2;
    VKLLM_TRY(read_rope_scaling(f, c));
    VKLLM_TRY(check_heads(f, c));
    const gguf_tensor_info *embd = gguf_find_tensor(f, "token_embd.weight");
    if (!embd || embd->n_dims != 2)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: tensor 'token_embd.weight' %s", f->path,
                          embd ? "is not 2-D" : "is missing");
    if (embd->ne[0] != c->n_embd)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: token_embd.weight rows have %llu elements, metadata key '%s' "
                          "is %u", f->path, (unsigned long long)embd->ne[0], key(k, sizeof k, c, "embedding_length"),
                          c->n_embd);
    if (embd->ne[1] == 0 || embd->ne[1] > INT32_MAX)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: token_embd.weight has %llu rows (tokens); 1 to %d are supported",
                          f->path, (unsigned long long)embd->ne[1], INT32_MAX);
    c->n_vocab = (uint32_t)embd->ne[1];
    /* block_count layers, no more: a file with more would load with the rest silently ignored. */
    char name[64];
    snprintf(name, sizeof name, "blk.%u.attn_norm.weight", c->n_layer);
    if (gguf_find_tensor(f, name))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' = %u, but the file has tensor '%s'", f->path,
                          key(k, sizeof k, c, "block_count"), c->n_layer, name);
    c->tied_output = gguf_find_tensor(f, "output.weight") == NULL;
    c->attn_bias = gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
    return VKLLM_OK;
}

static void shape_text(char *buf, size_t n, uint32_t n_dims, const uint64_t *ne)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < n_dims && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, "%s%llu", d ? ", " : "", (unsigned long long)ne[d]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

vkllm_status model_tensor(const gguf_file *f, const char *name, uint32_t n_dims, const uint64_t *ne, bool optional,
                          const gguf_tensor_info **out)
{
    *out = NULL;
    const gguf_tensor_info *t = gguf_find_tensor(f, name);
    if (!t) {
        if (optional) return VKLLM_OK;
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: tensor '%s' is missing", f->path, name);
    }
    /* Trailing dimensions of 1 are the same shape. */
    bool same = true;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t want = d < n_dims ? ne[d] : 1, have = d < t->n_dims ? t->ne[d] : 1;
        same = same && want == have;
    }
    if (!same) {
        char want[96], have[96];
        shape_text(want, sizeof want, n_dims, ne);
        shape_text(have, sizeof have, t->n_dims, t->ne);
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: tensor '%s' has shape %s, expected %s", f->path, name, have, want);
    }
    const quant_traits *traits = quant_get_traits(t->type);
    if (!traits || !traits->supported)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: tensor '%s' has type %s (%u), which vkllm cannot run", f->path,
                          name, traits ? traits->name : "unknown", t->type);
    *out = t;
    return VKLLM_OK;
}
