/* The shape of a llama-family model, read from GGUF metadata and checked against its tensors. */
#ifndef VKLLM_MODEL_CONFIG_H
#define VKLLM_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"

typedef enum model_arch {
    MODEL_ARCH_LLAMA = 0, /* Llama 1/2/3, TinyLlama, Mistral, SmolLM, ... */
    MODEL_ARCH_QWEN2,     /* llama with Q/K/V biases and NeoX RoPE */
} model_arch;

typedef struct model_config {
    model_arch arch;
    char arch_name[32];
    uint32_t n_vocab;
    uint32_t n_embd;        /* model width */
    uint32_t n_layer;
    uint32_t n_head;        /* query heads */
    uint32_t n_head_kv;     /* key/value heads (grouped-query attention when < n_head) */
    uint32_t head_dim;      /* attention.key_length, else n_embd / n_head */
    uint32_t n_ff;          /* feed-forward width */
    uint32_t n_ctx_train;
    uint32_t n_rot;         /* rope.dimension_count, else head_dim */
    float rms_eps;
    float rope_base;        /* rope.freq_base */
    float rope_freq_scale;  /* 1 / rope.scaling.factor with linear scaling, else 1 */
    bool rope_neox;         /* rotate (i, i + n_rot/2) instead of adjacent pairs */
    bool tied_output;       /* no output.weight: logits use token_embd.weight */
    bool attn_bias;         /* attn_q/k/v.bias present (qwen2) */
} model_config;

/* Reads and validates everything; errors name the file and the key or tensor. */
vkllm_status model_config_read(const gguf_file *file, model_config *out);

/* The tensor `name` with the expected shape (ne[0] first); errors name file, tensor, shapes and type.
 * optional: NULL without error when absent. */
vkllm_status model_tensor(const gguf_file *file, const char *name, uint32_t n_dims, const uint64_t *ne,
                          bool optional, const gguf_tensor_info **out);

#endif
