#include "model_config.h"

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

static vkllm_status read_rope_scaling(const gguf_file *f, model_config *c)
{
    char k[96];
    c->rope_freq_scale = 1.0f;
    gguf_str type;
    if (gguf_find_kv(f, key(k, sizeof k, c, "rope.scaling.type"))) {
        VKLLM_TRY(gguf_get_str(f, k, &type));
        if (gguf_str_eq(type, "linear")) {
            float factor = gguf_f32_or(f, key(k, sizeof k, c, "rope.scaling.factor"), 1.0f);
            if (!(factor > 0)) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %s = %g", f->path, k, (double)factor);
            c->rope_freq_scale = 1.0f / factor;
        } else if (!gguf_str_eq(type, "none")) {
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: rope scaling '%.*s' is not supported (linear and none are)",
                              f->path, (int)type.len, type.data);
        }
    } else if (gguf_find_kv(f, key(k, sizeof k, c, "rope.scale_linear"))) {
        float factor = gguf_f32_or(f, k, 1.0f);
        if (factor > 0) c->rope_freq_scale = 1.0f / factor;
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

vkllm_status model_config_read(const gguf_file *f, model_config *c)
{
    memset(c, 0, sizeof *c);
    char k[96];
    VKLLM_TRY(read_arch(f, c));
    VKLLM_TRY(required_u32(f, c, "embedding_length", &c->n_embd));
    VKLLM_TRY(required_u32(f, c, "block_count", &c->n_layer));
    VKLLM_TRY(required_u32(f, c, "attention.head_count", &c->n_head));
    VKLLM_TRY(required_u32(f, c, "feed_forward_length", &c->n_ff));
    c->n_head_kv = gguf_u32_or(f, key(k, sizeof k, c, "attention.head_count_kv"), c->n_head);
    c->n_ctx_train = gguf_u32_or(f, key(k, sizeof k, c, "context_length"), 2048);
    c->head_dim = gguf_u32_or(f, key(k, sizeof k, c, "attention.key_length"), c->n_embd / c->n_head);
    c->n_rot = gguf_u32_or(f, key(k, sizeof k, c, "rope.dimension_count"), c->head_dim);
    c->rms_eps = gguf_f32_or(f, key(k, sizeof k, c, "attention.layer_norm_rms_epsilon"), 1e-5f);
    c->rope_base = gguf_f32_or(f, key(k, sizeof k, c, "rope.freq_base"), 10000.0f);
    c->rope_neox = c->arch == MODEL_ARCH_QWEN2;
    VKLLM_TRY(read_rope_scaling(f, c));
    if (c->n_head_kv == 0 || c->n_head % c->n_head_kv)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %u query heads are not a multiple of %u key/value heads",
                          f->path, c->n_head, c->n_head_kv);
    if (c->head_dim == 0 || c->head_dim % 2 || c->n_rot > c->head_dim || c->n_rot % 2)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: head size %u with %u rotary dimensions", f->path, c->head_dim,
                          c->n_rot);
    if (!(c->rms_eps > 0) || !(c->rope_base > 0))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: rms epsilon %g, rope base %g", f->path, (double)c->rms_eps,
                          (double)c->rope_base);
    const gguf_tensor_info *embd = gguf_find_tensor(f, "token_embd.weight");
    if (!embd || embd->n_dims != 2)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: tensor 'token_embd.weight' %s", f->path,
                          embd ? "is not 2-D" : "is missing");
    if (embd->ne[0] != c->n_embd)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: token_embd.weight rows have %llu elements, the model width is %u",
                          f->path, (unsigned long long)embd->ne[0], c->n_embd);
    c->n_vocab = (uint32_t)embd->ne[1];
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
