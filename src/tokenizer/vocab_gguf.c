/* Loads the vocabulary from a GGUF file's tokenizer.ggml.* metadata, with llama.cpp's defaults for
 * what the file leaves out (llama_vocab::impl::load). */
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "runtime/error.h"
#include "tokenizer.h"
#include "vocab.h"

static bool str_is(gguf_str s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (gguf_str_eq(s, names[i])) return true;
    return false;
}

#define STR_IS(s, ...) str_is((s), (const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* A key the tokenizer cannot do without, of the given type (and element type for arrays). */
static vkllm_status required_kv(const gguf_file *file, const char *key, gguf_value_type type,
                                gguf_value_type element, const gguf_kv **out)
{
    const gguf_kv *kv = gguf_find_kv(file, key);
    if (!kv) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: no %s", file->path, key);
    if (kv->type != type || (type == GGUF_TYPE_ARRAY && kv->value.arr.type != element))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %s has the wrong type", file->path, key);
    *out = kv;
    return VKLLM_OK;
}

static vkllm_status read_kind(const gguf_file *file, vocab_kind *kind)
{
    const gguf_kv *kv = NULL;
    VKLLM_TRY(required_kv(file, "tokenizer.ggml.model", GGUF_TYPE_STRING, GGUF_TYPE_STRING, &kv));
    const gguf_str model = kv->value.str;
    if (gguf_str_eq(model, "llama")) *kind = VOCAB_SPM;
    else if (gguf_str_eq(model, "gpt2")) *kind = VOCAB_BPE;
    else
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: tokenizer.ggml.model \"%.*s\" is not supported (llama, gpt2)",
                          file->path, (int)model.len, model.data);
    return VKLLM_OK;
}

/* tokenizer.ggml.pre of a BPE vocabulary, and the flags llama.cpp ties to it. */
static vkllm_status read_pre(const gguf_file *file, vocab *v)
{
    const gguf_kv *kv = gguf_find_kv(file, "tokenizer.ggml.pre");
    if (!kv) return VKLLM_OK; /* llama.cpp warns and uses "default" */
    if (kv->type != GGUF_TYPE_STRING)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: tokenizer.ggml.pre is not a string", file->path);
    const gguf_str pre = kv->value.str;
    if (gguf_str_eq(pre, "default")) {
        v->pre = VOCAB_PRE_DEFAULT;
    } else if (STR_IS(pre, "llama3", "llama-v3", "llama-bpe")) {
        v->pre = VOCAB_PRE_LLAMA3;
        v->ignore_merges = true;
        v->add_bos = true;
    } else if (STR_IS(pre, "qwen2", "deepseek-r1-qwen")) {
        v->pre = VOCAB_PRE_QWEN2;
        v->clean_spaces = false;
    } else if (STR_IS(pre, "gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling")) {
        v->pre = VOCAB_PRE_GPT2;
    } else {
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: pre-tokenizer \"%.*s\" is not supported (default, gpt-2, "
                          "llama-bpe, qwen2)", file->path, (int)pre.len, pre.data);
    }
    return VKLLM_OK;
}

/* An optional numeric array of at least n entries of one of two element types; NULL-kind when absent. */
static vkllm_status optional_array(const gguf_file *file, const char *key, gguf_value_type a, gguf_value_type b,
                                   uint32_t n, gguf_array *out, bool *present)
{
    *present = false;
    const gguf_kv *kv = gguf_find_kv(file, key);
    if (!kv) return VKLLM_OK;
    if (kv->type != GGUF_TYPE_ARRAY || (kv->value.arr.type != a && kv->value.arr.type != b))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %s has the wrong type", file->path, key);
    if (kv->value.arr.count < n)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: %s has %llu entries for %u tokens", file->path, key,
                          (unsigned long long)kv->value.arr.count, n);
    *out = kv->value.arr;
    *present = true;
    return VKLLM_OK;
}

static vkllm_status read_tokens(const gguf_file *file, const gguf_array *texts, vocab *v)
{
    gguf_array scores, types;
    bool has_scores, has_types;
    VKLLM_TRY(optional_array(file, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, GGUF_TYPE_INT32, v->n_tokens, &scores,
                             &has_scores));
    VKLLM_TRY(optional_array(file, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, GGUF_TYPE_INT32, v->n_tokens, &types,
                             &has_types));
    uint64_t cursor = 0;
    for (uint32_t id = 0; id < v->n_tokens; id++) {
        gguf_str text;
        if (!gguf_array_next_str(texts, &cursor, &text))
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: tokenizer.ggml.tokens ends at %u of %u", file->path, id,
                              v->n_tokens);
        const float score = has_scores ? (float)gguf_array_f64(&scores, id) : 0.0f;
        const uint32_t attr = has_types ? vocab_attr_from_gguf_type(gguf_array_i64(&types, id)) : TOKEN_ATTR_NORMAL;
        VKLLM_TRY(vocab_set_token(v, id, text.data, (size_t)text.len, score, attr));
    }
    return VKLLM_OK;
}

static vkllm_status read_merges(const gguf_file *file, vocab *v)
{
    const gguf_kv *kv = NULL;
    VKLLM_TRY(required_kv(file, "tokenizer.ggml.merges", GGUF_TYPE_ARRAY, GGUF_TYPE_STRING, &kv));
    const gguf_array merges = kv->value.arr;
    uint64_t cursor = 0;
    gguf_str line;
    while (gguf_array_next_str(&merges, &cursor, &line)) VKLLM_TRY(vocab_add_merge(v, line.data, (size_t)line.len));
    if (v->n_merges != merges.count)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: tokenizer.ggml.merges ends at %u of %llu", file->path,
                          v->n_merges, (unsigned long long)merges.count);
    return VKLLM_OK;
}

/* A special id from the file replaces the default only if it names a token (llama.cpp warns otherwise). */
static void read_special_id(const gguf_file *file, const char *key, const vocab *v, int32_t *id)
{
    const gguf_kv *kv = gguf_find_kv(file, key);
    if (!kv) return;
    int64_t value;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        value = kv->value.u64 > (uint64_t)INT32_MAX ? -1 : (int64_t)kv->value.u64;
        break;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        value = kv->value.i64;
        break;
    default: return;
    }
    if (value >= 0 && value < (int64_t)v->n_tokens) *id = (int32_t)value;
}

static void read_flag(const gguf_file *file, const char *key, bool *flag)
{
    const gguf_kv *kv = gguf_find_kv(file, key);
    if (kv && kv->type == GGUF_TYPE_BOOL) *flag = kv->value.b;
}

static vkllm_status load(const gguf_file *file, const gguf_array *texts, vocab *v)
{
    if (v->kind == VOCAB_BPE) {
        VKLLM_TRY(read_pre(file, v));
        VKLLM_TRY(read_merges(file, v));
    }
    read_flag(file, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    VKLLM_TRY(read_tokens(file, texts, v));
    read_special_id(file, "tokenizer.ggml.bos_token_id", v, &v->bos);
    read_special_id(file, "tokenizer.ggml.eos_token_id", v, &v->eos);
    read_special_id(file, "tokenizer.ggml.eot_token_id", v, &v->eot);
    read_special_id(file, "tokenizer.ggml.eom_token_id", v, &v->eom);
    read_special_id(file, "tokenizer.ggml.unknown_token_id", v, &v->unk);
    read_special_id(file, "tokenizer.ggml.padding_token_id", v, &v->pad);
    read_flag(file, "tokenizer.ggml.add_bos_token", &v->add_bos);
    read_flag(file, "tokenizer.ggml.add_eos_token", &v->add_eos);
    return vocab_finish(v);
}

vkllm_status tokenizer_create_from_gguf(const gguf_file *file, tokenizer **out)
{
    *out = NULL;
    vocab_kind kind = VOCAB_SPM;
    VKLLM_TRY(read_kind(file, &kind));
    const gguf_kv *kv = NULL;
    VKLLM_TRY(required_kv(file, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY, GGUF_TYPE_STRING, &kv));
    const gguf_array texts = kv->value.arr;
    if (texts.count == 0 || texts.count > (uint64_t)INT32_MAX)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", file->path,
                          (unsigned long long)texts.count);
    vocab *v;
    VKLLM_TRY(vocab_create(kind, (uint32_t)texts.count, &v));
    const vkllm_status status = load(file, &texts, v); /* its messages name the file */
    if (status != VKLLM_OK) {
        vocab_free(v);
        return status;
    }
    *out = v;
    return VKLLM_OK;
}
