/* Loading: metadata and shapes checked first, then every weight uploaded (quantized types repacked by
 * ops_weight_create), so a bad file fails before any device memory is spent. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/matmul/matmul_fused.h"
#include "quant/quant.h"
#include "runtime/error.h"
#include "runtime/log.h"

/* Host memory the embedding's F16 conversion fills before each upload. */
#define EMBEDDING_SLAB_BYTES (16u << 20)

/* Debug log line of one tensor (or stacked group) converted and uploaded since `started`. */
static void log_tensor(vkllm_model *m, const char *name, uint32_t type, uint64_t bytes, double started)
{
    m->tensors_loaded++;
    if (!vkllm_log_enabled(VKLLM_LOG_DEBUG)) return;
    vkllm_log(VKLLM_LOG_DEBUG, "load: %-30s %-5s %9.2f MiB in %8.1f ms (%llu submits so far)", name,
              quant_get_traits(type) ? quant_get_traits(type)->name : "?", (double)bytes / 1048576.0,
              1e3 * (vkllm_log_clock() - started), (unsigned long long)vkr_submit_count(m->dev));
}

static vkllm_status upload_f32(vkllm_model *m, const gguf_tensor_info *t, vkr_buffer *out)
{
    if (t->type != QUANT_F32)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: tensor '%.*s' must be F32 (is %s)", m->path, (int)t->name.len,
                          t->name.data, quant_get_traits(t->type)->name);
    VKLLM_TRY(vkr_buffer_alloc(m->dev, t->size, VKR_MEMORY_DEVICE, out));
    return vkr_upload(m->dev, out, 0, t->data, t->size);
}

static vkllm_status vector(vkllm_model *m, const char *name, uint32_t n, bool optional, vkr_buffer *out)
{
    const gguf_tensor_info *t;
    uint64_t ne[1] = {n};
    VKLLM_TRY(model_tensor(m->gguf, name, 1, ne, optional, &t));
    if (!t) return VKLLM_OK;
    m->n_params += n;
    m->weight_bytes += t->size;
    double started = vkllm_log_clock();
    VKLLM_TRY(upload_f32(m, t, out));
    log_tensor(m, name, t->type, t->size, started);
    return VKLLM_OK;
}

static vkllm_status matrix(vkllm_model *m, const char *name, uint32_t rows, uint32_t cols, ops_weight **out)
{
    const gguf_tensor_info *t;
    uint64_t ne[2] = {cols, rows};
    VKLLM_TRY(model_tensor(m->gguf, name, 2, ne, false, &t));
    m->n_params += (uint64_t)rows * cols;
    m->weight_bytes += t->size;
    double started = vkllm_log_clock();
    vkllm_status st = ops_weight_create(m->ops, t->type, rows, cols, t->data, out);
    if (st != VKLLM_OK) return vkllm_fail_context(st, "%s: tensor '%s'", m->path, name);
    log_tensor(m, name, t->type, t->size, started);
    return VKLLM_OK;
}

/* The embedding table as get_rows reads it: F32 or F16 as stored, any other type dequantized to F16. */
static vkllm_status embedding_upload(vkllm_model *m, const gguf_tensor_info *t);

static vkllm_status embedding(vkllm_model *m)
{
    const gguf_tensor_info *t;
    uint64_t ne[2] = {m->cfg.n_embd, m->cfg.n_vocab};
    VKLLM_TRY(model_tensor(m->gguf, "token_embd.weight", 2, ne, false, &t));
    m->n_params += (uint64_t)m->cfg.n_vocab * m->cfg.n_embd;
    m->weight_bytes += t->size;
    double started = vkllm_log_clock();
    vkllm_status st = embedding_upload(m, t);
    if (st != VKLLM_OK)
        return vkllm_fail_context(st, "%s: token_embd.weight (get_rows' table, one allocation)", m->path);
    log_tensor(m, "token_embd.weight (as get_rows' table)", t->type, t->size, started);
    return VKLLM_OK;
}

static vkllm_status embedding_upload(vkllm_model *m, const gguf_tensor_info *t)
{
    const model_config *c = &m->cfg;
    if (t->type == QUANT_F32 || t->type == QUANT_F16) {
        m->token_embd_type = t->type;
        VKLLM_TRY(vkr_buffer_alloc(m->dev, (t->size + 3) / 4 * 4, VKR_MEMORY_DEVICE, &m->token_embd));
        return vkr_upload(m->dev, &m->token_embd, 0, t->data, t->size);
    }
    m->token_embd_type = QUANT_F16;
    uint64_t n = (uint64_t)c->n_vocab * c->n_embd, row_bytes = quant_row_size(t->type, c->n_embd);
    VKLLM_TRY(vkr_buffer_alloc(m->dev, (n * 2 + 3) / 4 * 4, VKR_MEMORY_DEVICE, &m->token_embd));
    /* Rows are converted into a slab of host memory and each slab is uploaded at once: an upload is a queue
     * submission and a fence wait, and one per row cost a 32,000-row embedding seconds on a real GPU. */
    uint64_t half_row_bytes = 2ull * c->n_embd;
    uint32_t slab_rows = (uint32_t)(EMBEDDING_SLAB_BYTES / half_row_bytes ? EMBEDDING_SLAB_BYTES / half_row_bytes : 1);
    if (slab_rows > c->n_vocab) slab_rows = c->n_vocab;
    float *row = malloc(c->n_embd * sizeof *row);
    uint16_t *slab = malloc(slab_rows * half_row_bytes);
    vkllm_status st = row && slab ? VKLLM_OK : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "embedding slab");
    for (uint32_t first = 0; first < c->n_vocab && st == VKLLM_OK; first += slab_rows) {
        uint32_t rows = c->n_vocab - first < slab_rows ? c->n_vocab - first : slab_rows;
        for (uint32_t r = 0; r < rows && st == VKLLM_OK; r++) {
            st = quant_dequantize_row(t->type, (const uint8_t *)t->data + (uint64_t)(first + r) * row_bytes, row,
                                      c->n_embd);
            uint16_t *half = slab + (size_t)r * c->n_embd;
            for (uint32_t i = 0; i < c->n_embd && st == VKLLM_OK; i++) half[i] = quant_f32_to_f16(row[i]);
        }
        if (st == VKLLM_OK)
            st = vkr_upload(m->dev, &m->token_embd, first * half_row_bytes, slab, rows * half_row_bytes);
    }
    free(row);
    free(slab);
    return st;
}

/* Tensor blk.l.suffix, shape-checked, counted in the model's size. */
static vkllm_status layer_tensor(vkllm_model *m, uint32_t l, const char *suffix, uint32_t n_dims, uint32_t rows,
                                 uint32_t cols, const gguf_tensor_info **out)
{
    char name[96];
    snprintf(name, sizeof name, "blk.%u.%s", l, suffix);
    uint64_t ne[2] = {n_dims == 1 ? rows : cols, rows};
    VKLLM_TRY(model_tensor(m->gguf, name, n_dims, ne, false, out));
    m->n_params += (uint64_t)rows * (n_dims == 1 ? 1 : cols);
    m->weight_bytes += (*out)->size;
    return VKLLM_OK;
}

/* A weight from row pointers; rows[] is freed here. */
static vkllm_status weight_from_rows(vkllm_model *m, uint32_t l, const char *what, uint32_t type, uint32_t n_rows,
                                     uint32_t cols, const void **rows, ops_weight **out)
{
    double started = vkllm_log_clock();
    vkllm_status st = ops_weight_create_rows(m->ops, type, n_rows, cols, rows, out);
    free(rows);
    if (st != VKLLM_OK) return vkllm_fail_context(st, "%s: layer %u %s", m->path, l, what);
    char name[64];
    snprintf(name, sizeof name, "blk.%u %s", l, what);
    log_tensor(m, name, type, quant_row_size(type, cols) * n_rows, started);
    return VKLLM_OK;
}

/* Source row of row r of Q or K (r counts within the matrix): NeoX models are permuted into RoPE's normal
 * layout, head by head (the same permutation on Q and K leaves every q.k, so attention, unchanged). */
uint32_t model_qk_source_row(const model_config *c, uint32_t r)
{
    if (!c->rope_neox) return r;
    return r / c->head_dim * c->head_dim + ops_rope_neox_source_row(r % c->head_dim, c->n_rot);
}

/* Row pointers of Q, K or V ([rows][n_embd] in t), Q/K rows permuted by qk_source_row. */
static void qkv_rows(const model_config *c, const gguf_tensor_info *t, bool is_qk, uint32_t rows, const void **out)
{
    uint64_t row_bytes = quant_row_size(t->type, c->n_embd);
    for (uint32_t r = 0; r < rows; r++)
        out[r] = (const uint8_t *)t->data + (is_qk ? model_qk_source_row(c, r) : r) * row_bytes;
}

/* Q, K and V stacked into one weight when they share a type (else three), biases stacked alike. */
static vkllm_status qkv_weights(vkllm_model *m, uint32_t l, model_layer *L)
{
    const model_config *c = &m->cfg;
    const char *names[3] = {"attn_q.weight", "attn_k.weight", "attn_v.weight"};
    const char *bias_names[3] = {"attn_q.bias", "attn_k.bias", "attn_v.bias"};
    uint32_t rows[3] = {c->n_head * c->head_dim, c->n_head_kv * c->head_dim, c->n_head_kv * c->head_dim};
    uint32_t total = rows[0] + rows[1] + rows[2];
    const gguf_tensor_info *t[3];
    for (int i = 0; i < 3; i++) VKLLM_TRY(layer_tensor(m, l, names[i], 2, rows[i], c->n_embd, &t[i]));
    if (t[0]->type == t[1]->type && t[1]->type == t[2]->type) {
        const void **ptrs = malloc(total * sizeof *ptrs);
        if (!ptrs) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "layer %u Q/K/V rows", l);
        for (uint32_t i = 0, first = 0; i < 3; first += rows[i], i++) qkv_rows(c, t[i], i < 2, rows[i], ptrs + first);
        VKLLM_TRY(weight_from_rows(m, l, "stacked Q/K/V", t[0]->type, total, c->n_embd, ptrs, &L->wqkv));
    } else {
        ops_weight **apart[3] = {&L->wq, &L->wk, &L->wv};
        for (uint32_t i = 0; i < 3; i++) {
            const void **ptrs = malloc(rows[i] * sizeof *ptrs);
            if (!ptrs) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "layer %u %s rows", l, names[i]);
            qkv_rows(c, t[i], i < 2, rows[i], ptrs);
            VKLLM_TRY(weight_from_rows(m, l, names[i], t[i]->type, rows[i], c->n_embd, ptrs, apart[i]));
        }
    }
    if (!c->attn_bias) return VKLLM_OK;
    float *bias = malloc(total * sizeof *bias);
    if (!bias) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "layer %u Q/K/V biases", l);
    vkllm_status st = VKLLM_OK;
    for (uint32_t i = 0, first = 0; i < 3 && st == VKLLM_OK; first += rows[i], i++) {
        const gguf_tensor_info *b;
        st = layer_tensor(m, l, bias_names[i], 1, rows[i], 1, &b);
        if (st == VKLLM_OK && b->type != QUANT_F32)
            st = vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: layer %u %s must be F32 (is %s)", m->path, l, bias_names[i],
                            quant_get_traits(b->type)->name);
        for (uint32_t r = 0; r < rows[i] && st == VKLLM_OK; r++)
            bias[first + r] = ((const float *)b->data)[i < 2 ? model_qk_source_row(c, r) : r];
    }
    double started = vkllm_log_clock();
    if (st == VKLLM_OK) st = vkr_buffer_alloc(m->dev, total * sizeof *bias, VKR_MEMORY_DEVICE, &L->bqkv);
    if (st == VKLLM_OK) st = vkr_upload(m->dev, &L->bqkv, 0, bias, total * sizeof *bias);
    free(bias);
    if (st == VKLLM_OK) {
        char name[64];
        snprintf(name, sizeof name, "blk.%u stacked Q/K/V bias", l);
        log_tensor(m, name, QUANT_F32, total * sizeof *bias, started);
    }
    return st;
}

/* Gate and up rows alternating in one weight when they share a type (else two). */
static vkllm_status gate_up_weights(vkllm_model *m, uint32_t l, model_layer *L)
{
    const model_config *c = &m->cfg;
    const gguf_tensor_info *gate, *up;
    VKLLM_TRY(layer_tensor(m, l, "ffn_gate.weight", 2, c->n_ff, c->n_embd, &gate));
    VKLLM_TRY(layer_tensor(m, l, "ffn_up.weight", 2, c->n_ff, c->n_embd, &up));
    if (gate->type != up->type) {
        double started = vkllm_log_clock();
        VKLLM_TRY(ops_weight_create(m->ops, gate->type, c->n_ff, c->n_embd, gate->data, &L->w_gate));
        log_tensor(m, "ffn_gate.weight", gate->type, gate->size, started);
        started = vkllm_log_clock();
        VKLLM_TRY(ops_weight_create(m->ops, up->type, c->n_ff, c->n_embd, up->data, &L->w_up));
        log_tensor(m, "ffn_up.weight", up->type, up->size, started);
        return VKLLM_OK;
    }
    const void **ptrs = malloc(2ull * c->n_ff * sizeof *ptrs);
    if (!ptrs) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "layer %u gate/up rows", l);
    uint64_t row_bytes = quant_row_size(gate->type, c->n_embd);
    for (uint32_t r = 0; r < c->n_ff; r++) {
        ptrs[2 * r] = (const uint8_t *)gate->data + r * row_bytes;
        ptrs[2 * r + 1] = (const uint8_t *)up->data + r * row_bytes;
    }
    return weight_from_rows(m, l, "stacked gate/up", gate->type, 2 * c->n_ff, c->n_embd, ptrs, &L->w_gate_up);
}

static vkllm_status load_layer(vkllm_model *m, uint32_t l)
{
    const model_config *c = &m->cfg;
    model_layer *L = &m->layers[l];
    uint32_t qd = c->n_head * c->head_dim;
    char name[96];
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%u.%s", l, suffix), name)
    VKLLM_TRY(vector(m, NAME("attn_norm.weight"), c->n_embd, false, &L->attn_norm));
    VKLLM_TRY(vector(m, NAME("ffn_norm.weight"), c->n_embd, false, &L->ffn_norm));
    VKLLM_TRY(qkv_weights(m, l, L));
    VKLLM_TRY(matrix(m, NAME("attn_output.weight"), c->n_embd, qd, &L->wo));
    VKLLM_TRY(gate_up_weights(m, l, L));
    VKLLM_TRY(matrix(m, NAME("ffn_down.weight"), c->n_embd, c->n_ff, &L->w_down));
#undef NAME
    return VKLLM_OK;
}

/* Every shape is checked before anything is uploaded. */
static vkllm_status check_shapes(vkllm_model *m)
{
    const model_config *c = &m->cfg;
    uint32_t qd = c->n_head * c->head_dim, kvd = c->n_head_kv * c->head_dim;
    const gguf_tensor_info *t;
    uint64_t embd[2] = {c->n_embd, c->n_vocab}, vec[1] = {c->n_embd};
    VKLLM_TRY(model_tensor(m->gguf, "output_norm.weight", 1, vec, false, &t));
    VKLLM_TRY(model_tensor(m->gguf, "output.weight", 2, embd, true, &t));
    for (uint32_t l = 0; l < c->n_layer; l++) {
        struct { const char *suffix; uint32_t n_dims; uint64_t ne[2]; bool optional; } want[] = {
            {"attn_norm.weight", 1, {c->n_embd}, false}, {"ffn_norm.weight", 1, {c->n_embd}, false},
            {"attn_q.weight", 2, {c->n_embd, qd}, false}, {"attn_k.weight", 2, {c->n_embd, kvd}, false},
            {"attn_v.weight", 2, {c->n_embd, kvd}, false}, {"attn_output.weight", 2, {qd, c->n_embd}, false},
            {"ffn_gate.weight", 2, {c->n_embd, c->n_ff}, false}, {"ffn_up.weight", 2, {c->n_embd, c->n_ff}, false},
            {"ffn_down.weight", 2, {c->n_ff, c->n_embd}, false}, {"attn_q.bias", 1, {qd}, !c->attn_bias},
            {"attn_k.bias", 1, {kvd}, !c->attn_bias}, {"attn_v.bias", 1, {kvd}, !c->attn_bias},
        };
        for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%u.%s", l, want[i].suffix);
            VKLLM_TRY(model_tensor(m->gguf, name, want[i].n_dims, want[i].ne, want[i].optional, &t));
        }
    }
    return VKLLM_OK;
}

/* Weights in a layer's largest matrix below which a model runs without lavapipe's worker threads.  Each
 * dispatch handed to them costs two thread switches (tens of microseconds on a virtual machine); split over two
 * cores, a matrix saves half of its one-thread time (about half a nanosecond per weight), so the handoff pays
 * from about 10^5 weights on.  stories260K (64 x 172) decodes several times faster without the workers;
 * llama-134m (768 x 2048) faster with them (docs/performance.md). */
#define CPU_THREADS_SMALL_LAYER 131072u

int vkllm_cpu_threads_auto(uint32_t n_embd, uint32_t n_ff)
{
    uint64_t widest = n_ff > n_embd ? n_ff : n_embd;
    return (uint64_t)n_embd * widest < CPU_THREADS_SMALL_LAYER ? 1 : 0;
}

/* cpu_threads as the runtime takes it (0: leave the environment alone), from the parameter, VKLLM_CPU_THREADS,
 * LP_NUM_THREADS and the model's shape (vkllm_model_params.cpu_threads). */
static vkllm_status resolve_cpu_threads(int param, const model_config *cfg, uint32_t *out)
{
    *out = 0;
    if (param >= 0) {
        *out = (uint32_t)param;
        return VKLLM_OK;
    }
    const char *env = getenv("VKLLM_CPU_THREADS");
    if (env && *env) {
        uint64_t v = 0;
        if (!vkr_parse_decimal(env, 1024, &v))
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "VKLLM_CPU_THREADS='%.40s' is not a thread count 0..1024 "
                              "(1: no worker threads, 0: the driver's default)", env);
        *out = (uint32_t)v;
        return VKLLM_OK;
    }
    const char *lp = getenv("LP_NUM_THREADS");
    if (lp && *lp) return VKLLM_OK; /* the user's choice for lavapipe */
    *out = (uint32_t)vkllm_cpu_threads_auto(cfg->n_embd, cfg->n_ff);
    return VKLLM_OK;
}

static vkllm_status load(vkllm_model *m)
{
    double started = vkllm_log_clock();
    vkllm_log(VKLLM_LOG_INFO, "load: mapping %s", m->path);
    VKLLM_TRY(gguf_open(m->path, &m->gguf));
    vkllm_log(VKLLM_LOG_INFO, "load: mapped %.1f MiB, %llu tensors, in %.1f ms", (double)m->gguf->map_size / 1048576.0,
              (unsigned long long)m->gguf->n_tensors, 1e3 * (vkllm_log_clock() - started));
    VKLLM_TRY(model_config_read(m->gguf, &m->cfg));
    VKLLM_TRY(check_shapes(m));
    vkllm_status st = tokenizer_create_from_gguf(m->gguf, &m->tok);
    if (st != VKLLM_OK) return vkllm_fail_context(st, "%s: tokenizer", m->path);
    /* One embedding row (and one output row) per token: a shorter token list would let the model produce ids
     * it cannot print; a longer one, ids get_rows reads past its table with. */
    if (tokenizer_n_vocab(m->tok) != m->cfg.n_vocab)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key 'tokenizer.ggml.tokens' has %u tokens, but "
                          "token_embd.weight has %u rows: the vocabulary and the embedding table must match", m->path,
                          tokenizer_n_vocab(m->tok), m->cfg.n_vocab);
    gguf_str tmpl = {"", 0};
    if (gguf_find_kv(m->gguf, "tokenizer.chat_template")) VKLLM_TRY(gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl));
    m->chat_template = malloc(tmpl.len + 1);
    if (!m->chat_template) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "chat template");
    memcpy(m->chat_template, tmpl.data, tmpl.len);
    m->chat_template[tmpl.len] = '\0';

    double device_started = vkllm_log_clock();
    if (!m->device_options.host)
        VKLLM_TRY(resolve_cpu_threads(m->cpu_threads_param, &m->cfg, &m->device_options.cpu_threads));
    VKLLM_TRY(vkr_device_create_with(&m->device_options, &m->dev));
    VKLLM_TRY(ops_create(m->dev, &m->ops));
    vkllm_log(VKLLM_LOG_INFO, "load: device '%s' ready in %.1f ms; uploading the weights of %u layers",
              vkr_device_caps(m->dev)->name, 1e3 * (vkllm_log_clock() - device_started), m->cfg.n_layer);
    double upload_started = vkllm_log_clock();
    VKLLM_TRY(embedding(m));
    VKLLM_TRY(vector(m, "output_norm.weight", m->cfg.n_embd, false, &m->output_norm));
    if (m->cfg.tied_output) {
        const gguf_tensor_info *t = gguf_find_tensor(m->gguf, "token_embd.weight");
        double tied_started = vkllm_log_clock();
        VKLLM_TRY(ops_weight_create(m->ops, t->type, m->cfg.n_vocab, m->cfg.n_embd, t->data, &m->output));
        log_tensor(m, "token_embd.weight (as the output)", t->type, t->size, tied_started);
    } else {
        VKLLM_TRY(matrix(m, "output.weight", m->cfg.n_vocab, m->cfg.n_embd, &m->output));
    }
    m->layers = calloc(m->cfg.n_layer, sizeof *m->layers);
    if (!m->layers) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "layers");
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) VKLLM_TRY(load_layer(m, l));
    double now = vkllm_log_clock();
    vkllm_log(VKLLM_LOG_INFO, "load: %u weights (%.1f MiB of device memory held) uploaded in %.2f s with %llu submits; "
              "the whole load took %.2f s", m->tensors_loaded,
              (double)vkr_memory_in_use(m->dev, VKR_MEMORY_DEVICE) / 1048576.0, now - upload_started,
              (unsigned long long)vkr_submit_count(m->dev), now - started);
    return VKLLM_OK;
}

vkllm_model_params vkllm_model_default_params(void)
{
    return (vkllm_model_params){
        .device = NULL, .disable_features = 0, .validation = -1, .host_device = NULL, .cpu_threads = -1};
}

/* The public feature bits are the runtime's: one list, checked here. */
#define SAME_BIT(feature) ((unsigned)VKLLM_FEATURE_##feature == (unsigned)VKR_DISABLE_##feature)
_Static_assert(SAME_BIT(F16) && SAME_BIT(STORAGE16) && SAME_BIT(STORAGE8) && SAME_BIT(SUBGROUP) && SAME_BIT(INT_DOT) &&
                   SAME_BIT(TEXEL) && SAME_BIT(COOPMAT),
               "vkllm_feature and VKR_DISABLE_* differ");
#undef SAME_BIT

vkllm_status vkllm_model_load(const char *path, vkllm_model **out) { return vkllm_model_load_params(path, NULL, out); }

vkllm_status vkllm_model_load_params(const char *path, const vkllm_model_params *params, vkllm_model **out)
{
    if (!out) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_model_load: out is NULL");
    *out = NULL;
    if (!path) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_model_load: path is NULL");
    vkllm_model_params defaults = vkllm_model_default_params();
    if (!params) params = &defaults;
    if (params->disable_features & ~(uint32_t)VKR_DISABLE_ALL)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_model_load: disable_features 0x%x has bits that name "
                          "no feature (VKLLM_FEATURE_*: 0x%x)", params->disable_features, (unsigned)VKR_DISABLE_ALL);
    if (params->cpu_threads < -1 || params->cpu_threads > 1024)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_model_load: cpu_threads %d is outside -1..1024 (-1: "
                          "automatic, 0: the driver's default, 1: no worker threads)", params->cpu_threads);
    vkllm_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "loading %s", path);
    }
    m->device_options = (vkr_device_options){
        .device = params->device, .validation = params->validation, .disable = params->disable_features};
    m->cpu_threads_param = params->cpu_threads;
    vkr_host_device host;
    if (params->host_device) {
        const vkllm_host_device *h = params->host_device;
        host = (vkr_host_device){
            .instance = (VkInstance)h->instance, .physical = (VkPhysicalDevice)h->physical_device,
            .device = (VkDevice)h->device, .queue_family = h->queue_family, .queue = (VkQueue)h->queue,
            .get_instance_proc_addr = (PFN_vkGetInstanceProcAddr)h->get_instance_proc_addr,
            .api_version = h->api_version, .enabled_features = h->enabled_features,
            .enabled_extensions = h->enabled_extensions, .n_enabled_extensions = h->n_enabled_extensions,
            .queue_lock = h->queue_lock, .queue_unlock = h->queue_unlock, .queue_lock_user = h->queue_lock_user};
        m->device_options.host = &host;
    }
    vkllm_status st = load(m);
    m->device_options.device = NULL; /* the caller's string: not kept past the load */
    m->device_options.host = NULL;   /* and the caller's structure */
    if (st != VKLLM_OK) {
        vkllm_model_free(m);
        return st;
    }
    *out = m;
    return VKLLM_OK;
}

void vkllm_model_free(vkllm_model *m)
{
    if (!m) return;
    if (m->layers) {
        for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
            model_layer *L = &m->layers[l];
            vkr_buffer *vectors[] = {&L->attn_norm, &L->ffn_norm, &L->bqkv};
            for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) vkr_buffer_free(m->dev, vectors[i]);
            ops_weight *weights[] = {L->wqkv, L->wq, L->wk, L->wv, L->wo, L->w_gate_up, L->w_gate, L->w_up, L->w_down};
            for (size_t i = 0; i < sizeof weights / sizeof *weights; i++) ops_weight_free(m->ops, weights[i]);
        }
        free(m->layers);
    }
    if (m->dev) {
        ops_weight_free(m->ops, m->output);
        vkr_buffer_free(m->dev, &m->token_embd);
        vkr_buffer_free(m->dev, &m->output_norm);
        vkr_buffer_free(m->dev, &m->k_center);
        vkr_buffer_free(m->dev, &m->k_center_bias);
    }
    ops_free(m->ops);
    vkr_device_destroy(m->dev);
    tokenizer_free(m->tok);
    gguf_close(m->gguf);
    free(m->chat_template);
    free(m->path);
    free(m);
}

void vkllm_model_get_info(const vkllm_model *m, vkllm_model_info *info)
{
    const model_config *c = &m->cfg;
    *info = (vkllm_model_info){.architecture = c->arch_name, .device = vkr_device_caps(m->dev)->name,
                               .n_vocab = c->n_vocab, .n_embd = c->n_embd, .n_layer = c->n_layer,
                               .n_head = c->n_head, .n_head_kv = c->n_head_kv, .n_ff = c->n_ff,
                               .n_ctx_train = c->n_ctx_train, .n_params = m->n_params,
                               .file_bytes = m->weight_bytes, .chat_template = m->chat_template,
                               .cpu_threads = vkr_device_cpu_workers(m->dev)};
}

void vkllm_model_memory(const vkllm_model *m, uint64_t *device_bytes, uint64_t *peak_device_bytes)
{
    *device_bytes = vkr_memory_in_use(m->dev, VKR_MEMORY_DEVICE);
    *peak_device_bytes = vkr_memory_peak_device(m->dev);
}
