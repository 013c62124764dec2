/* Synthetic models: random weights with the exact tensor names, shapes and metadata of real llama-family
 * models (as llama.cpp's converters write them) and a generated tokenizer both vkllm and llama.cpp load.
 * For benchmarks and tests without downloading anything; the same preset, recipe and seed give the same
 * file byte for byte.  Large models are generated, quantized and written one row at a time. */
#ifndef VKLLM_SYNTH_H
#define VKLLM_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "progress.h"
#include "quantize/quant_recipe.h"

typedef enum synth_vocab_kind {
    SYNTH_VOCAB_SPM,    /* tokenizer.ggml.model "llama": <unk> <s> </s>, 256 byte pieces, scored words */
    SYNTH_VOCAB_LLAMA3, /* "gpt2" with pre "llama-bpe": 256 byte tokens, merges, <|begin_of_text|> ... */
    SYNTH_VOCAB_QWEN2,  /* "gpt2" with pre "qwen2": 256 byte tokens, merges, <|endoftext|> <|im_start|> ... */
} synth_vocab_kind;

typedef struct synth_preset {
    const char *name;
    const char *arch;   /* general.architecture: "llama" or "qwen2" */
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t n_vocab;
    uint32_t n_ctx;     /* context_length */
    float rope_base;
    float rms_eps;
    bool attn_bias;     /* attn_q/k/v.bias (qwen2) */
    bool tied_output;   /* no output.weight: the logits use token_embd.weight */
    synth_vocab_kind vocab;
} synth_preset;

/* NULL if unknown. */
const synth_preset *synth_preset_find(const char *name);
/* The presets in order; NULL past the last. */
const synth_preset *synth_preset_at(size_t index);

/* One tensor of the plan: weights are mean + std * z with z of unit variance. */
typedef struct synth_tensor {
    char name[48];
    uint32_t n_dims;
    uint64_t ne[2]; /* ne[0] is the row; ne[1] is 1 for 1-D tensors */
    quant_type type;
    float mean;
    float std;
} synth_tensor;

typedef struct synth_plan {
    synth_tensor *tensors; /* in file order */
    size_t n_tensors;
    quant_model_shape shape; /* what the type choices saw */
} synth_plan;

/* The tensors a file of this preset and recipe holds, without writing anything. */
vkllm_status synth_plan_create(const synth_preset *preset, const quant_recipe *recipe, synth_plan *out);
void synth_plan_free(synth_plan *plan);

/* All metadata (model hyperparameters, general.*, tokenizer.*) into w. */
vkllm_status synth_add_metadata(const synth_preset *preset, const quant_recipe *recipe, gguf_writer *w);
/* The generated tokenizer alone (tokenizer.ggml.*), called by synth_add_metadata (synth_vocab.c). */
vkllm_status synth_add_vocab(const synth_preset *preset, gguf_writer *w);

typedef struct synth_options {
    quant_recipe recipe;
    uint64_t seed;
    vkllm_progress_fn progress; /* optional: bytes of tensor data written so far */
    void *progress_ctx;
} synth_options;

vkllm_status synth_write(const synth_preset *preset, const synth_options *options, const char *path);

#endif
