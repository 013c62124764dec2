/* A loaded model: its config, tokenizer and weights on the device. */
#ifndef VKLLM_MODEL_H
#define VKLLM_MODEL_H

#include "gguf/gguf.h"
#include "model_config.h"
#include "ops/matmul/matmul.h"
#include "ops/ops.h"
#include "tokenizer/tokenizer.h"
#include "vkllm.h"

typedef struct model_layer {
    vkr_buffer attn_norm, ffn_norm;  /* F32 [n_embd] */
    /* Q, K and V are stacked into one matrix (ops_qkv_project), Q/K rows in RoPE's normal layout (NeoX
     * models have them permuted within each head); when their types differ they stay three matrices. */
    ops_weight *wqkv;                /* [(n_head + 2 n_kv)*hd rows][n_embd], or NULL: */
    ops_weight *wq, *wk, *wv;        /* [n_head*hd][n_embd], [n_kv*hd][n_embd] x2 (NULL when stacked) */
    vkr_buffer bqkv;                 /* F32 [(n_head + 2 n_kv)*hd]: the biases, stacked alike (qwen2), else empty */
    ops_weight *wo;                  /* [n_embd][n_head*hd] */
    ops_weight *w_gate_up;           /* [2 n_ff][n_embd]: gate row i at 2i, up row i at 2i + 1, or NULL: */
    ops_weight *w_gate, *w_up;       /* [n_ff][n_embd] each (NULL when stacked) */
    ops_weight *w_down;              /* [n_embd][n_ff] */
} model_layer;

struct vkllm_model {
    char *path;
    gguf_file *gguf;                 /* kept open (mapped) for metadata and the chat template */
    model_config cfg;
    tokenizer *tok;
    vkr_device_options device_options; /* the load's (vkllm_model_params) */
    int cpu_threads_param;              /* vkllm_model_params.cpu_threads, resolved once the shape is read */
    vkr_device *dev;
    ops_context *ops;
    vkr_buffer token_embd;           /* [n_vocab][n_embd], F32 or F16 (other types dequantized to F16) */
    uint32_t token_embd_type;        /* QUANT_F32 or QUANT_F16 */
    vkr_buffer output_norm;          /* F32 [n_embd] */
    ops_weight *output;              /* [n_vocab][n_embd]: output.weight, or token_embd when tied */
    model_layer *layers;             /* [n_layer] */
    uint64_t n_params, weight_bytes;
    uint32_t tensors_loaded;         /* weights (or stacked groups of them) uploaded, for the stage log */
    char *chat_template;             /* NUL-terminated copy, "" if none */
    /* A centered K cache's mean key (key_center.c), made by the first context that wants it: 0 pairs until then */
    uint32_t k_center_pairs;         /* lowest-frequency RoPE pairs of each head centered */
    vkr_buffer k_center;             /* F32 [n_layer][n_kv][k_center_pairs][2]: the mean key before RoPE */
    vkr_buffer k_center_bias;        /* F32 [n_layer][(n_head + 2 n_kv)*hd]: bqkv with the mean off those K rows */
};

/* Source row of row r of Q or K (r counts within the matrix) in the GGUF tensor: NeoX models are permuted into
 * RoPE's normal layout, head by head. */
uint32_t model_qk_source_row(const model_config *c, uint32_t r);

#endif
