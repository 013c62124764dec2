/* Synthetic models: presets, the tensor plan, metadata, and the streaming writer that generates,
 * quantizes and writes one row at a time (a 7B model never sits in memory). */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

static const synth_preset presets[] = {
    /* name            arch     embd  layer head kv  ff     vocab   ctx    rope_base  eps   bias   tied   vocab */
    {"tiny", "llama", 256, 2, 4, 2, 512, 512, 512, 10000.0f, 1e-5f, false, false, SYNTH_VOCAB_SPM},
    {"tiny-qwen2", "qwen2", 256, 2, 4, 2, 512, 600, 512, 1000000.0f, 1e-6f, true, true, SYNTH_VOCAB_QWEN2},
    {"llama-134m", "llama", 768, 12, 12, 12, 2048, 32000, 2048, 10000.0f, 1e-5f, false, false, SYNTH_VOCAB_SPM},
    {"tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f, 1e-5f, false, false, SYNTH_VOCAB_SPM},
    {"llama2-7b", "llama", 4096, 32, 32, 32, 11008, 32000, 4096, 10000.0f, 1e-5f, false, false, SYNTH_VOCAB_SPM},
    {"llama3-8b", "llama", 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0f, 1e-5f, false, false,
     SYNTH_VOCAB_LLAMA3},
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1000000.0f, 1e-6f, true, true,
     SYNTH_VOCAB_QWEN2},
};

const synth_preset *synth_preset_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0) return &presets[i];
    return NULL;
}

const synth_preset *synth_preset_at(size_t index)
{
    return index < sizeof presets / sizeof presets[0] ? &presets[index] : NULL;
}

static uint32_t head_dim(const synth_preset *p) { return p->n_embd / p->n_head; }

/* ---- plan ---- */

typedef struct plan_builder {
    synth_plan *plan;
    size_t capacity;
} plan_builder;

static vkllm_status plan_add(plan_builder *b, const char *name, uint64_t ne0, uint64_t ne1, float mean, float std)
{
    if (b->plan->n_tensors == b->capacity)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "synth: more tensors than planned at '%s'", name);
    synth_tensor *t = &b->plan->tensors[b->plan->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->mean = mean;
    t->std = std;
    return VKLLM_OK;
}

static vkllm_status plan_layer(plan_builder *b, const synth_preset *p, uint32_t il)
{
    const uint64_t embd = p->n_embd, q_dim = (uint64_t)p->n_head * head_dim(p),
                   kv_dim = (uint64_t)p->n_head_kv * head_dim(p), ff = p->n_ff;
    /* Projections in N(0, 0.02) like GPT-2's initialisation; the two that feed the residual stream are
     * scaled down by sqrt(2 * layers) so it stays near unit size through every layer (no F16 overflow). */
    const float proj = 0.02f, resid = 0.02f / sqrtf(2.0f * (float)p->n_layer), small = 0.02f;
    char name[48];
#define LAYER(suffix) (snprintf(name, sizeof name, "blk.%u.%s", il, suffix), name)
    VKLLM_TRY(plan_add(b, LAYER("attn_norm.weight"), embd, 1, 1.0f, small));
    VKLLM_TRY(plan_add(b, LAYER("attn_q.weight"), embd, q_dim, 0.0f, proj));
    if (p->attn_bias) VKLLM_TRY(plan_add(b, LAYER("attn_q.bias"), q_dim, 1, 0.0f, small));
    VKLLM_TRY(plan_add(b, LAYER("attn_k.weight"), embd, kv_dim, 0.0f, proj));
    if (p->attn_bias) VKLLM_TRY(plan_add(b, LAYER("attn_k.bias"), kv_dim, 1, 0.0f, small));
    VKLLM_TRY(plan_add(b, LAYER("attn_v.weight"), embd, kv_dim, 0.0f, proj));
    if (p->attn_bias) VKLLM_TRY(plan_add(b, LAYER("attn_v.bias"), kv_dim, 1, 0.0f, small));
    VKLLM_TRY(plan_add(b, LAYER("attn_output.weight"), q_dim, embd, 0.0f, resid));
    VKLLM_TRY(plan_add(b, LAYER("ffn_norm.weight"), embd, 1, 1.0f, small));
    VKLLM_TRY(plan_add(b, LAYER("ffn_gate.weight"), embd, ff, 0.0f, proj));
    VKLLM_TRY(plan_add(b, LAYER("ffn_up.weight"), embd, ff, 0.0f, proj));
    VKLLM_TRY(plan_add(b, LAYER("ffn_down.weight"), ff, embd, 0.0f, resid));
#undef LAYER
    return VKLLM_OK;
}

static vkllm_status check_preset(const synth_preset *p)
{
    if (!p || !p->n_head || !p->n_head_kv || p->n_embd % p->n_head || head_dim(p) % 2 || p->n_head % p->n_head_kv ||
        !p->n_layer || !p->n_ff || p->n_vocab < 300)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "synth: preset '%s' has inconsistent shapes",
                          p ? p->name : "(null)");
    return VKLLM_OK;
}

static void model_shape(const synth_preset *p, quant_model_shape *shape)
{
    memset(shape, 0, sizeof *shape);
    snprintf(shape->arch, sizeof shape->arch, "%s", p->arch);
    shape->n_layer = p->n_layer;
    shape->n_head = p->n_head;
    shape->n_head_kv = p->n_head_kv;
    shape->n_attn_v = p->n_layer;
    shape->tied_embeddings = p->tied_output;
}

vkllm_status synth_plan_create(const synth_preset *p, const quant_recipe *recipe, synth_plan *out)
{
    memset(out, 0, sizeof *out);
    VKLLM_TRY(check_preset(p));
    plan_builder b = {out, 4 + (size_t)p->n_layer * 12};
    out->tensors = calloc(b.capacity, sizeof *out->tensors);
    if (!out->tensors) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "synth: no memory for the plan");
    model_shape(p, &out->shape);
    vkllm_status status = plan_add(&b, "token_embd.weight", p->n_embd, p->n_vocab, 0.0f, 0.02f);
    for (uint32_t il = 0; status == VKLLM_OK && il < p->n_layer; il++) status = plan_layer(&b, p, il);
    if (status == VKLLM_OK) status = plan_add(&b, "output_norm.weight", p->n_embd, 1, 1.0f, 0.02f);
    /* The output projection gives logits of about unit size. */
    if (status == VKLLM_OK && !p->tied_output)
        status = plan_add(&b, "output.weight", p->n_embd, p->n_vocab, 0.0f, 1.0f / sqrtf((float)p->n_embd));
    if (status != VKLLM_OK) {
        synth_plan_free(out);
        return status;
    }
    for (size_t i = 0; i < out->n_tensors; i++) {
        synth_tensor *t = &out->tensors[i];
        t->type = quant_recipe_tensor_type(recipe, &out->shape, t->name, t->n_dims, t->ne, QUANT_F32);
    }
    return VKLLM_OK;
}

void synth_plan_free(synth_plan *plan)
{
    free(plan->tensors);
    memset(plan, 0, sizeof *plan);
}

/* ---- metadata ---- */

static vkllm_status set_arch_u32(gguf_writer *w, const synth_preset *p, const char *suffix, uint32_t v)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s", p->arch, suffix);
    return gguf_writer_set_u32(w, key, v);
}

static vkllm_status set_arch_f32(gguf_writer *w, const synth_preset *p, const char *suffix, float v)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s", p->arch, suffix);
    return gguf_writer_set_f32(w, key, v);
}

/* In the order llama.cpp's convert_hf_to_gguf.py writes them. */
vkllm_status synth_add_metadata(const synth_preset *p, const quant_recipe *recipe, gguf_writer *w)
{
    VKLLM_TRY(check_preset(p));
    VKLLM_TRY(gguf_writer_set_str(w, "general.architecture", p->arch));
    VKLLM_TRY(gguf_writer_set_str(w, "general.type", "model"));
    VKLLM_TRY(gguf_writer_set_str(w, "general.name", p->name));
    VKLLM_TRY(set_arch_u32(w, p, "block_count", p->n_layer));
    VKLLM_TRY(set_arch_u32(w, p, "context_length", p->n_ctx));
    VKLLM_TRY(set_arch_u32(w, p, "embedding_length", p->n_embd));
    VKLLM_TRY(set_arch_u32(w, p, "feed_forward_length", p->n_ff));
    VKLLM_TRY(set_arch_u32(w, p, "attention.head_count", p->n_head));
    VKLLM_TRY(set_arch_u32(w, p, "attention.head_count_kv", p->n_head_kv));
    VKLLM_TRY(set_arch_f32(w, p, "rope.freq_base", p->rope_base));
    VKLLM_TRY(set_arch_f32(w, p, "attention.layer_norm_rms_epsilon", p->rms_eps));
    VKLLM_TRY(gguf_writer_set_u32(w, "general.file_type", recipe->ftype));
    if (strcmp(p->arch, "llama") == 0) VKLLM_TRY(set_arch_u32(w, p, "vocab_size", p->n_vocab));
    VKLLM_TRY(set_arch_u32(w, p, "rope.dimension_count", head_dim(p)));
    VKLLM_TRY(synth_add_vocab(p, w));
    return gguf_writer_set_u32(w, "general.quantization_version", 2);
}

/* ---- weights ---- */

/* splitmix64: a tiny generator whose every output is a good hash of its counter, so each row gets its own
 * stream from (seed, tensor, row) and rows can be produced in any order. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t name_hash(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *name; name++) h = (h ^ (uint8_t)*name) * 0x100000001b3ull;
    return h;
}

/* Unit-variance noise from the sum of four 16-bit uniforms (Irwin-Hall): integer sums and one float
 * multiply, so the values are the same on every machine, and bounded (|z| < 3.5, no outliers). */
static void fill_row(const synth_tensor *t, uint64_t seed, uint64_t row, float *out)
{
    uint64_t state = mix64(seed ^ mix64(name_hash(t->name) + row));
    const float scale = t->std / 37837.2273f; /* 65536 / sqrt(3): the sum's standard deviation */
    for (uint64_t i = 0; i < t->ne[0]; i++) {
        state += 0x9e3779b97f4a7c15ull;
        uint64_t r = mix64(state);
        int32_t sum = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) + (int32_t)((r >> 32) & 0xffff) +
                      (int32_t)(r >> 48) - 2 * 65535;
        out[i] = t->mean + (float)sum * scale;
    }
}

typedef struct tensor_source {
    const synth_tensor *tensor;
    const synth_options *options;
    float *row;       /* ne[0] floats */
    uint8_t *packed;  /* one row in the tensor's type */
    uint64_t *done;   /* bytes written so far, all tensors */
    uint64_t total;
} tensor_source;

static vkllm_status produce_tensor(void *ctx, gguf_sink *sink)
{
    tensor_source *s = ctx;
    const synth_tensor *t = s->tensor;
    uint64_t row_bytes = quant_row_size(t->type, t->ne[0]);
    for (uint64_t r = 0; r < t->ne[1]; r++) {
        fill_row(t, s->options->seed, r, s->row);
        const void *bytes = s->row;
        if (t->type != QUANT_F32) {
            VKLLM_TRY(quant_quantize_row(t->type, s->row, s->packed, t->ne[0]));
            bytes = s->packed;
        }
        VKLLM_TRY(gguf_sink_write(sink, bytes, row_bytes));
        *s->done += row_bytes;
        if (s->options->progress) s->options->progress(s->options->progress_ctx, t->name, *s->done, s->total);
    }
    return VKLLM_OK;
}

static uint64_t tensor_bytes(const synth_tensor *t) { return quant_row_size(t->type, t->ne[0]) * t->ne[1]; }

static vkllm_status write_plan(const synth_preset *p, const synth_options *o, const synth_plan *plan,
                               gguf_writer *w, tensor_source *sources, const char *path)
{
    uint64_t widest = 0, total = 0, done = 0;
    for (size_t i = 0; i < plan->n_tensors; i++) {
        if (plan->tensors[i].ne[0] > widest) widest = plan->tensors[i].ne[0];
        total += tensor_bytes(&plan->tensors[i]);
    }
    float *row = malloc(widest * sizeof *row);
    uint8_t *packed = malloc(widest * sizeof *row); /* no type is wider than F32 */
    vkllm_status status = row && packed ? synth_add_metadata(p, &o->recipe, w)
                                        : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "synth: no memory for a row");
    for (size_t i = 0; status == VKLLM_OK && i < plan->n_tensors; i++) {
        const synth_tensor *t = &plan->tensors[i];
        sources[i] = (tensor_source){t, o, row, packed, &done, total};
        status = gguf_writer_add_tensor_stream(w, t->name, t->type, t->n_dims, t->ne, tensor_bytes(t),
                                               produce_tensor, &sources[i]);
    }
    if (status == VKLLM_OK) status = gguf_writer_write(w, path);
    free(row);
    free(packed);
    return status;
}

vkllm_status synth_write(const synth_preset *p, const synth_options *o, const char *path)
{
    synth_plan plan;
    VKLLM_TRY(synth_plan_create(p, &o->recipe, &plan));
    gguf_writer *w = NULL;
    tensor_source *sources = calloc(plan.n_tensors, sizeof *sources);
    vkllm_status status = sources ? gguf_writer_create(&w)
                                  : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "synth: no memory for the plan");
    if (status == VKLLM_OK) status = write_plan(p, o, &plan, w, sources, path);
    gguf_writer_free(w);
    free(sources);
    synth_plan_free(&plan);
    if (status != VKLLM_OK) return vkllm_fail_context(status, "synth %s (%s) -> %s", p->name, o->recipe.name, path);
    return VKLLM_OK;
}
