/* Which type each tensor of a model gets when a file is quantized: llama.cpp's rules
 * (llama_tensor_get_type in src/llama-quant.cpp), shared by `vkllm quantize` and `vkllm synth`.
 *
 * A recipe is a llama.cpp file type (LLAMA_FTYPE_*: what general.file_type records) plus the pure flag.
 * Pure: every quantizable tensor gets the base type (ggml's --pure).  Mixture: llama.cpp's per-tensor
 * choices (output.weight in Q6_K, more bits for attn_v / ffn_down on some layers, ...).  Both fall back to
 * a type whose block divides the row when the base type's does not (Q4_K -> Q5_0, Q6_K -> Q8_0, ...). */
#ifndef VKLLM_QUANT_RECIPE_H
#define VKLLM_QUANT_RECIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "quant/quant.h"

/* llama.cpp's llama_ftype values, as stored in general.file_type. */
typedef enum quant_ftype {
    QUANT_FTYPE_ALL_F32 = 0,
    QUANT_FTYPE_F16 = 1,
    QUANT_FTYPE_Q4_0 = 2,
    QUANT_FTYPE_Q4_1 = 3,
    QUANT_FTYPE_Q8_0 = 7,
    QUANT_FTYPE_Q5_0 = 8,
    QUANT_FTYPE_Q5_1 = 9,
    QUANT_FTYPE_Q2_K = 10,
    QUANT_FTYPE_Q3_K_S = 11,
    QUANT_FTYPE_Q3_K_M = 12,
    QUANT_FTYPE_Q3_K_L = 13,
    QUANT_FTYPE_Q4_K_S = 14,
    QUANT_FTYPE_Q4_K_M = 15,
    QUANT_FTYPE_Q5_K_S = 16,
    QUANT_FTYPE_Q5_K_M = 17,
    QUANT_FTYPE_Q6_K = 18,
    QUANT_FTYPE_BF16 = 32,
} quant_ftype;

typedef struct quant_recipe {
    const char *name;  /* as the user wrote it, canonical spelling ("Q4_K_M") */
    quant_ftype ftype; /* written to general.file_type */
    quant_type base;   /* the type most tensors get */
    bool pure;         /* every quantizable tensor in base (with fallbacks) */
    bool has_imatrix;  /* quantized with an importance matrix: llama.cpp's Q4_0/Q5_0 mixtures then give the
                          first eighth of the ffn_down layers Q4_1/Q5_1 */
    bool set_output;        /* output.weight in output_type whatever the recipe (--output-tensor-type) */
    quant_type output_type;
    bool set_token_embd;    /* token_embd.weight in token_embd_type (--token-embedding-type) */
    quant_type token_embd_type;
} quant_recipe;

/* Names: the tensor types F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q3_K Q4_K Q5_K Q6_K are pure; the
 * mixtures are Q2_K (llama.cpp's LLAMA_FTYPE_MOSTLY_Q2_K) Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M.
 * force_pure makes a mixture pure (pure Q2_K is "Q2_K" with force_pure).  Case-insensitive; false if
 * unknown. */
bool quant_recipe_from_name(const char *name, bool force_pure, quant_recipe *out);
/* All recipe names, for help texts: "F32, F16, ...". */
const char *quant_recipe_names(void);

/* What llama.cpp's rules read from the model besides the tensor itself. */
typedef struct quant_model_shape {
    char arch[32];          /* general.architecture ("llama", "qwen2", "falcon" changes some choices) */
    uint32_t n_layer;       /* {arch}.block_count */
    uint32_t n_head;        /* {arch}.attention.head_count */
    uint32_t n_head_kv;     /* {arch}.attention.head_count_kv */
    uint32_t n_attn_v;      /* tensors named *attn_v.weight, *attn_qkv.weight, *attn_kv_b.weight */
    bool tied_embeddings;   /* no output.weight: token_embd.weight is quantized as the output */
} quant_model_shape;

/* The type of tensor `name` (current type `current`, n_dims dims of ne) under the recipe.  Tensors that
 * llama.cpp never quantizes (1-D, norms, biases, ...) keep `current`.  Layer-dependent choices use the
 * layer number in "blk.N." as llama.cpp's running counters (equal for models with one attn_v and one
 * ffn_down per layer). */
quant_type quant_recipe_tensor_type(const quant_recipe *recipe, const quant_model_shape *model, const char *name,
                                    uint32_t n_dims, const uint64_t *ne, quant_type current);

#endif
