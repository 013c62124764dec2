/* llama2.c checkpoint + tokenizer -> llama GGUF, with the metadata, token table and tensor layout of
 * llama.cpp's convert-llama2c-to-ggml.  Weights are copied unchanged: llama2.c rotates adjacent pairs in
 * RoPE, which is what llama.cpp's "llama" architecture does, so unlike Hugging Face checkpoints no
 * row permutation of wq/wk is needed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "llama2c.h"
#include "quant/quant.h"
#include "runtime/error.h"

/* llama.cpp's llama_token_type values, as stored in tokenizer.ggml.token_type. */
enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_BYTE = 6 };
enum { TOKEN_ID_UNK = 0, TOKEN_ID_BOS = 1, TOKEN_ID_EOS = 2 };

/* SentencePiece's visible space, U+2581. */
static const char SPACE_MARK[] = "\xe2\x96\x81";

/* "<0xAB>": llama2.c's byte-fallback pieces. */
static bool is_byte_token(const char *text, uint32_t len)
{
    static const char hex[] = "0123456789ABCDEFabcdef";
    return len == 6 && memcmp(text, "<0x", 3) == 0 && text[5] == '>' && text[3] && strchr(hex, text[3]) && text[4] &&
           strchr(hex, text[4]);
}

static int32_t token_type(uint32_t id, const char *text, uint32_t len)
{
    if (id == TOKEN_ID_UNK) return TOKEN_UNKNOWN;
    if (id == TOKEN_ID_BOS || id == TOKEN_ID_EOS || len == 0) return TOKEN_CONTROL;
    if (is_byte_token(text, len)) return TOKEN_BYTE;
    return TOKEN_NORMAL;
}

/* The GGUF text of a token: llama2.c stores BOS/EOS as "\n<s>\n" / "\n</s>\n" and spaces as ' ';
 * llama.cpp's vocabulary wants "<s>", "</s>", "<unk>" and U+2581 for spaces.  Returns a malloc'd string. */
static char *token_text(uint32_t id, const char *raw, uint32_t len, uint64_t *out_len)
{
    static const char *const special[] = {"<unk>", "<s>", "</s>"};
    if (id <= TOKEN_ID_EOS) {
        *out_len = strlen(special[id]);
        return strdup(special[id]);
    }
    uint64_t spaces = 0;
    for (uint32_t i = 0; i < len; i++) spaces += raw[i] == ' ';
    uint64_t n = len + spaces * (sizeof SPACE_MARK - 2);
    char *text = malloc((size_t)n + 1);
    if (!text) return NULL;
    char *p = text;
    for (uint32_t i = 0; i < len; i++) {
        if (raw[i] == ' ') {
            memcpy(p, SPACE_MARK, sizeof SPACE_MARK - 1);
            p += sizeof SPACE_MARK - 1;
        } else {
            *p++ = raw[i];
        }
    }
    *p = '\0';
    *out_len = n;
    return text;
}

static vkllm_status add_vocab(gguf_writer *w, const llama2c_vocab *v)
{
    uint32_t n = v->n_tokens;
    char **texts = calloc(n, sizeof *texts);
    uint64_t *lens = calloc(n, sizeof *lens);
    int32_t *types = calloc(n, sizeof *types);
    vkllm_status status = VKLLM_OK;
    if (!texts || !lens || !types)
        status = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "convert: no memory for the vocabulary");
    for (uint32_t i = 0; status == VKLLM_OK && i < n; i++) {
        texts[i] = token_text(i, v->text[i], v->len[i], &lens[i]);
        types[i] = token_type(i, v->text[i], v->len[i]);
        if (!texts[i]) status = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "convert: no memory for token %u", i);
    }
    if (status == VKLLM_OK)
        status = gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)texts, lens, n);
    if (status == VKLLM_OK) status = gguf_writer_set_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v->score, n);
    if (status == VKLLM_OK) status = gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n);
    if (status == VKLLM_OK) status = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    for (uint32_t i = 0; texts && i < n; i++) free(texts[i]);
    free(texts);
    free(lens);
    free(types);
    return status;
}

/* general.name: the checkpoint's file name without directory and extension. */
static void model_name(const char *path, char *out, size_t size)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
}

static vkllm_status add_hparams(gguf_writer *w, const llama2c_config *c, const char *model_path)
{
    char name[256];
    model_name(model_path, name, sizeof name);
    VKLLM_TRY(gguf_writer_set_str(w, "general.architecture", "llama"));
    VKLLM_TRY(gguf_writer_set_str(w, "general.name", name));
    VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", TOKEN_ID_UNK));
    VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", TOKEN_ID_BOS));
    VKLLM_TRY(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", TOKEN_ID_EOS));
    VKLLM_TRY(gguf_writer_set_u32(w, "llama.context_length", c->seq_len));
    VKLLM_TRY(gguf_writer_set_u32(w, "llama.embedding_length", c->dim));
    VKLLM_TRY(gguf_writer_set_u32(w, "llama.feed_forward_length", c->hidden_dim));
    VKLLM_TRY(gguf_writer_set_u32(w, "llama.attention.head_count", c->n_heads));
    VKLLM_TRY(gguf_writer_set_u32(w, "llama.attention.head_count_kv", c->n_kv_heads));
    VKLLM_TRY(gguf_writer_set_u32(w, "llama.block_count", c->n_layers));
    VKLLM_TRY(gguf_writer_set_u32(w, "llama.rope.dimension_count", c->dim / c->n_heads));
    VKLLM_TRY(gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
    return gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
}

/* An F32 tensor of `rows` rows of `cols` (ggml ne = {cols, rows}; rows == 0 means a vector). */
static vkllm_status add_f32(gguf_writer *w, const char *name, const float *data, uint64_t cols, uint64_t rows)
{
    uint64_t ne[2] = {cols, rows};
    uint64_t count = cols * (rows ? rows : 1);
    return gguf_writer_add_tensor(w, name, QUANT_F32, rows ? 2 : 1, ne, data, count * sizeof(float));
}

/* One per-layer tensor: its GGUF name suffix, the llama2.c array holding all layers, and its shape. */
typedef struct layer_tensor {
    const char *suffix;
    const float *all_layers;
    uint64_t cols, rows; /* rows == 0: a vector */
} layer_tensor;

static vkllm_status add_layer(gguf_writer *w, const llama2c_model *m, uint32_t layer)
{
    const llama2c_config *c = &m->config;
    uint64_t dim = c->dim, kv_dim = dim / c->n_heads * c->n_kv_heads, ffn = c->hidden_dim;
    /* llama.cpp's order within a block; w1/w3 are the gate/up projections, w2 the down projection. */
    const layer_tensor tensors[] = {
        {"attn_q.weight", m->wq, dim, dim},       {"attn_k.weight", m->wk, dim, kv_dim},
        {"attn_v.weight", m->wv, dim, kv_dim},    {"attn_output.weight", m->wo, dim, dim},
        {"attn_norm.weight", m->rms_att, dim, 0}, {"ffn_gate.weight", m->w1, dim, ffn},
        {"ffn_down.weight", m->w2, ffn, dim},     {"ffn_up.weight", m->w3, dim, ffn},
        {"ffn_norm.weight", m->rms_ffn, dim, 0},
    };
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
        const layer_tensor *t = &tensors[i];
        char name[64];
        snprintf(name, sizeof name, "blk.%" PRIu32 ".%s", layer, t->suffix);
        uint64_t per_layer = t->cols * (t->rows ? t->rows : 1);
        VKLLM_TRY(add_f32(w, name, t->all_layers + layer * per_layer, t->cols, t->rows));
    }
    return VKLLM_OK;
}

static vkllm_status add_tensors(gguf_writer *w, const llama2c_model *m)
{
    const llama2c_config *c = &m->config;
    VKLLM_TRY(add_f32(w, "token_embd.weight", m->token_embedding, c->dim, c->vocab_size));
    VKLLM_TRY(add_f32(w, "output_norm.weight", m->rms_final, c->dim, 0));
    if (!c->shared_classifier) VKLLM_TRY(add_f32(w, "output.weight", m->wcls, c->dim, c->vocab_size));
    for (uint32_t layer = 0; layer < c->n_layers; layer++) VKLLM_TRY(add_layer(w, m, layer));
    return VKLLM_OK;
}

static vkllm_status build_and_write(const llama2c_model *m, const llama2c_vocab *v, const char *model_path,
                                    const char *out_path)
{
    gguf_writer *w;
    VKLLM_TRY(gguf_writer_create(&w));
    vkllm_status status = add_vocab(w, v);
    if (status == VKLLM_OK) status = add_hparams(w, &m->config, model_path);
    if (status == VKLLM_OK) status = add_tensors(w, m);
    if (status == VKLLM_OK) status = gguf_writer_write(w, out_path);
    gguf_writer_free(w);
    return status;
}

vkllm_status llama2c_convert(const char *model_path, const char *tokenizer_path, const char *out_path)
{
    llama2c_model *model;
    VKLLM_TRY(llama2c_model_open(model_path, &model));
    llama2c_vocab *vocab;
    vkllm_status status = llama2c_vocab_load(tokenizer_path, model->config.vocab_size, &vocab);
    if (status == VKLLM_OK) {
        status = build_and_write(model, vocab, model_path, out_path);
        llama2c_vocab_free(vocab);
    }
    llama2c_model_close(model);
    return status;
}
