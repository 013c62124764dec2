/* llama.cpp's per-tensor type choice (src/llama-quant.cpp: tensor_allows_quantization,
 * llama_tensor_get_type_impl, tensor_type_fallback), for the dense llama-family models vkllm runs and
 * the non-IQ file types.  The branches keep llama.cpp's order so the two can be read side by side. */
#include "quant_recipe.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

typedef struct recipe_entry {
    const char *name;
    quant_ftype ftype;
    quant_type base;
    bool pure;
} recipe_entry;

static const recipe_entry recipes[] = {
    {"F32", QUANT_FTYPE_ALL_F32, QUANT_F32, true},   {"F16", QUANT_FTYPE_F16, QUANT_F16, true},
    {"BF16", QUANT_FTYPE_BF16, QUANT_BF16, true},    {"Q8_0", QUANT_FTYPE_Q8_0, QUANT_Q8_0, true},
    {"Q4_0", QUANT_FTYPE_Q4_0, QUANT_Q4_0, true},    {"Q4_1", QUANT_FTYPE_Q4_1, QUANT_Q4_1, true},
    {"Q5_0", QUANT_FTYPE_Q5_0, QUANT_Q5_0, true},    {"Q5_1", QUANT_FTYPE_Q5_1, QUANT_Q5_1, true},
    /* llama.cpp spells the pure K types by the mixture it records (Q4_K is its alias of Q4_K_M). */
    {"Q3_K", QUANT_FTYPE_Q3_K_M, QUANT_Q3_K, true},  {"Q4_K", QUANT_FTYPE_Q4_K_M, QUANT_Q4_K, true},
    {"Q5_K", QUANT_FTYPE_Q5_K_M, QUANT_Q5_K, true},  {"Q6_K", QUANT_FTYPE_Q6_K, QUANT_Q6_K, true},
    {"Q2_K", QUANT_FTYPE_Q2_K, QUANT_Q2_K, false},   {"Q3_K_S", QUANT_FTYPE_Q3_K_S, QUANT_Q3_K, false},
    {"Q3_K_M", QUANT_FTYPE_Q3_K_M, QUANT_Q3_K, false}, {"Q3_K_L", QUANT_FTYPE_Q3_K_L, QUANT_Q3_K, false},
    {"Q4_K_S", QUANT_FTYPE_Q4_K_S, QUANT_Q4_K, false}, {"Q4_K_M", QUANT_FTYPE_Q4_K_M, QUANT_Q4_K, false},
    {"Q5_K_S", QUANT_FTYPE_Q5_K_S, QUANT_Q5_K, false}, {"Q5_K_M", QUANT_FTYPE_Q5_K_M, QUANT_Q5_K, false},
};

static bool same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (toupper((unsigned char)*a) != toupper((unsigned char)*b)) return false;
    return *a == *b;
}

bool quant_recipe_from_name(const char *name, bool force_pure, quant_recipe *out)
{
    for (size_t i = 0; name && i < sizeof recipes / sizeof recipes[0]; i++) {
        if (!same_name(name, recipes[i].name)) continue;
        *out = (quant_recipe){.name = recipes[i].name, .ftype = recipes[i].ftype, .base = recipes[i].base,
                              .pure = recipes[i].pure || force_pure};
        return true;
    }
    return false;
}

const char *quant_recipe_names(void)
{
    return "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q3_K Q4_K Q5_K Q6_K (pure); "
           "Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M (llama.cpp mixtures)";
}

typedef enum tensor_category {
    CAT_TOKEN_EMBD,
    CAT_ATTN_Q,
    CAT_ATTN_K,
    CAT_ATTN_V, /* attn_v, attn_qkv, attn_kv_b: llama.cpp treats them alike */
    CAT_ATTN_OUTPUT,
    CAT_FFN_DOWN,
    CAT_OUTPUT,
    CAT_OTHER,
} tensor_category;

static bool has(const char *name, const char *part) { return strstr(name, part) != NULL; }

/* llama.cpp's tensor_get_category, same order of tests. */
static tensor_category category_of(const char *name)
{
    if (strcmp(name, "output.weight") == 0) return CAT_OUTPUT;
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "per_layer_token_embd.weight") == 0)
        return CAT_TOKEN_EMBD;
    if (has(name, "attn_qkv.weight") || has(name, "attn_kv_b.weight") || has(name, "attn_v.weight")) return CAT_ATTN_V;
    if (has(name, "attn_k.weight")) return CAT_ATTN_K;
    if (has(name, "attn_q.weight")) return CAT_ATTN_Q;
    if (has(name, "attn_output.weight")) return CAT_ATTN_OUTPUT;
    if (has(name, "ffn_down")) return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* llama.cpp's tensor_allows_quantization, for the names a llama-family file can hold. */
static bool allows_quantization(const char *name, uint32_t n_dims)
{
    size_t len = strlen(name);
    if (n_dims < 2 || len < 6 || strcmp(name + len - 6, "weight") != 0) return false;
    static const char *const never[] = {"_norm.weight", "ffn_gate_inp.weight", "position_embd.weight",
                                        "token_types.weight", "attn_rel_b.weight"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (has(name, never[i])) return false;
    return true;
}

static bool is_quantized(quant_type type) { return type != QUANT_F32 && type != QUANT_F16 && type != QUANT_BF16; }

static uint32_t block_of(quant_type type) { return quant_get_traits(type)->block_elems; }

/* The layers that get more bits in the mixtures: the first and last eighth and every third in between. */
static bool use_more_bits(int i_layer, int n_layer)
{
    return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

static int layer_of(const char *name)
{
    int layer = -1;
    if (sscanf(name, "blk.%d.", &layer) != 1) return -1;
    return layer;
}

/* llama.cpp's LLM_TYPE_70B test for the architectures vkllm knows. */
static bool is_70b(const quant_model_shape *m)
{
    if (m->n_layer != 80) return false;
    if (strcmp(m->arch, "llama") == 0) return m->n_head != m->n_head_kv;
    return strcmp(m->arch, "qwen2") == 0;
}

static quant_type output_type(quant_type type, const quant_model_shape *m, uint64_t ne0)
{
    if (strcmp(m->arch, "falcon") == 0 || ne0 % block_of(type) != 0) return QUANT_Q8_0;
    return type != QUANT_Q8_0 ? QUANT_Q6_K : type;
}

static quant_type attn_v_type(quant_ftype ftype, quant_type type, const quant_model_shape *m, int i_wv)
{
    uint32_t n_gqa = m->n_head_kv ? m->n_head / m->n_head_kv : 0;
    if (ftype == QUANT_FTYPE_Q2_K) type = n_gqa >= 4 ? QUANT_Q4_K : QUANT_Q3_K;
    else if (ftype == QUANT_FTYPE_Q3_K_M) type = i_wv < 2 ? QUANT_Q5_K : QUANT_Q4_K;
    else if (ftype == QUANT_FTYPE_Q3_K_L) type = QUANT_Q5_K;
    else if ((ftype == QUANT_FTYPE_Q4_K_M || ftype == QUANT_FTYPE_Q5_K_M) && use_more_bits(i_wv, (int)m->n_attn_v))
        type = QUANT_Q6_K;
    else if (ftype == QUANT_FTYPE_Q4_K_S && i_wv < 4) type = QUANT_Q5_K;
    /* A 70B model's attn_v is 8x smaller than attn_q (8 heads share it): more bits cost little. */
    if (is_70b(m) && (type == QUANT_Q3_K || type == QUANT_Q4_K)) type = QUANT_Q5_K;
    return type;
}

static quant_type ffn_down_type(quant_ftype ftype, quant_type type, const quant_model_shape *m, int i,
                                bool has_imatrix)
{
    int n = (int)m->n_layer;
    bool falcon = strcmp(m->arch, "falcon") == 0;
    if (ftype == QUANT_FTYPE_Q2_K) return QUANT_Q3_K;
    if (ftype == QUANT_FTYPE_Q3_K_M)
        return i < n / 16 ? QUANT_Q5_K : !falcon || use_more_bits(i, n) ? QUANT_Q4_K : QUANT_Q3_K;
    if (ftype == QUANT_FTYPE_Q3_K_L) return falcon ? QUANT_Q4_K : QUANT_Q5_K;
    if (ftype == QUANT_FTYPE_Q4_K_M) {
        if (falcon) return i < n / 16 ? QUANT_Q6_K : use_more_bits(i, n) ? QUANT_Q5_K : QUANT_Q4_K;
        return use_more_bits(i, n) ? QUANT_Q6_K : type;
    }
    if (ftype == QUANT_FTYPE_Q5_K_M && use_more_bits(i, n)) return QUANT_Q6_K;
    if (ftype == QUANT_FTYPE_Q4_K_S && !falcon && i < n / 8) return QUANT_Q5_K;
    /* llama.cpp guards the first ffn_down layers against "craziness" with an imatrix only, so that files
     * made without one stay as they were. */
    if ((ftype == QUANT_FTYPE_Q4_0 || ftype == QUANT_FTYPE_Q5_0) && has_imatrix && i < n / 8)
        return ftype == QUANT_FTYPE_Q4_0 ? QUANT_Q4_1 : QUANT_Q5_1;
    return type;
}

static quant_type attn_output_type(quant_ftype ftype, quant_type type, const quant_model_shape *m)
{
    if (strcmp(m->arch, "falcon") == 0) return ftype == QUANT_FTYPE_Q3_K_L ? QUANT_Q4_K : type;
    if (ftype == QUANT_FTYPE_Q2_K) return QUANT_Q3_K;
    if (ftype == QUANT_FTYPE_Q3_K_M) return QUANT_Q4_K;
    if (ftype == QUANT_FTYPE_Q3_K_L) return QUANT_Q5_K;
    return type;
}

/* llama_tensor_get_type_impl for the non-IQ file types. */
static quant_type mixture_type(const quant_recipe *r, const quant_model_shape *m, const char *name,
                               const uint64_t *ne)
{
    quant_type type = r->base;
    switch (category_of(name)) {
    case CAT_OUTPUT: return output_type(type, m, ne[0]);
    case CAT_TOKEN_EMBD:
        if (!m->tied_embeddings) return type;
        return r->set_output ? r->output_type : output_type(type, m, ne[0]); /* it is the output too */
    case CAT_ATTN_V: return attn_v_type(r->ftype, type, m, layer_of(name));
    case CAT_FFN_DOWN: return ffn_down_type(r->ftype, type, m, layer_of(name), r->has_imatrix);
    case CAT_ATTN_OUTPUT: return attn_output_type(r->ftype, type, m);
    default: return type;
    }
}

/* llama.cpp's tensor_type_fallback: a type whose block divides the row, else F16. */
static quant_type fallback_type(quant_type type, uint64_t ne0)
{
    if (ne0 % block_of(type) == 0) return type;
    quant_type fallback = type;
    switch (type) {
    case QUANT_Q2_K:
    case QUANT_Q3_K: fallback = QUANT_Q4_0; break;
    case QUANT_Q4_K: fallback = QUANT_Q5_0; break;
    case QUANT_Q5_K: fallback = QUANT_Q5_1; break;
    case QUANT_Q6_K: fallback = QUANT_Q8_0; break;
    default: break; /* 32-element blocks: nothing smaller to demote to */
    }
    return ne0 % block_of(fallback) == 0 ? fallback : QUANT_F16;
}

quant_type quant_recipe_tensor_type(const quant_recipe *recipe, const quant_model_shape *model, const char *name,
                                    uint32_t n_dims, const uint64_t *ne, quant_type current)
{
    if (!allows_quantization(name, n_dims)) return current;
    /* llama-quantize's per-tensor overrides come first, by category, whether pure or a mixture (its
     * llama_tensor_get_type).  It would then fail on a row its block does not divide; the fallback applies here. */
    const tensor_category category = category_of(name);
    if (recipe->set_token_embd && category == CAT_TOKEN_EMBD) return fallback_type(recipe->token_embd_type, ne[0]);
    if (recipe->set_output && category == CAT_OUTPUT) return fallback_type(recipe->output_type, ne[0]);
    if (!is_quantized(recipe->base)) return recipe->base;
    quant_type type = recipe->pure ? recipe->base : mixture_type(recipe, model, name, ne);
    return fallback_type(type, ne[0]);
}
