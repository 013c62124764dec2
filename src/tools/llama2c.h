/* karpathy/llama2.c legacy files: the checkpoint (model.bin) and the tokenizer (tokenizer.bin), and their
 * conversion to a llama GGUF.
 *
 * Checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
 * vocab_size means a separate classifier follows the weights), then float32 weights in run.c's order.
 * Tokenizer: int32 max_token_length, then per token float32 score, int32 length, bytes. */
#ifndef VKLLM_LLAMA2C_H
#define VKLLM_LLAMA2C_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/error.h"

typedef struct llama2c_config {
    uint32_t dim;        /* embedding width */
    uint32_t hidden_dim; /* FFN width */
    uint32_t n_layers;
    uint32_t n_heads;
    uint32_t n_kv_heads;
    uint32_t vocab_size;
    uint32_t seq_len;           /* trained context length */
    bool shared_classifier;     /* the output projection is the token embedding */
} llama2c_config;

/* Weights point into the mapped file; matrices are row-major [rows][cols] with rows the output
 * dimension (ggml's ne = {cols, rows}).  kv_dim = dim * n_kv_heads / n_heads. */
typedef struct llama2c_model {
    llama2c_config config;
    const float *token_embedding; /* [vocab_size][dim] */
    const float *rms_att;         /* [n_layers][dim] */
    const float *wq;              /* [n_layers][dim][dim] */
    const float *wk;              /* [n_layers][kv_dim][dim] */
    const float *wv;              /* [n_layers][kv_dim][dim] */
    const float *wo;              /* [n_layers][dim][dim] */
    const float *rms_ffn;         /* [n_layers][dim] */
    const float *w1;              /* [n_layers][hidden_dim][dim]  gate */
    const float *w2;              /* [n_layers][dim][hidden_dim]  down */
    const float *w3;              /* [n_layers][hidden_dim][dim]  up */
    const float *rms_final;       /* [dim] */
    const float *wcls;            /* [vocab_size][dim]; == token_embedding when shared_classifier */
    const uint8_t *map;
    uint64_t map_size;
} llama2c_model;

/* VKLLM_ERROR_BAD_FORMAT (naming the file, the field and the expectation) for an inconsistent header or a
 * size that does not match it exactly; VKLLM_ERROR_IO if it cannot be mapped. */
vkllm_status llama2c_model_open(const char *path, llama2c_model **out);
void llama2c_model_close(llama2c_model *model);

typedef struct llama2c_vocab {
    uint32_t n_tokens;
    uint32_t max_token_length;
    char **text;     /* [n_tokens] raw bytes as stored, each NUL-terminated (may contain inner NULs) */
    uint32_t *len;   /* [n_tokens] */
    float *score;    /* [n_tokens] */
} llama2c_vocab;

/* A llama2.c tokenizer file (tokenizer.bin, tok512.bin) as a tokenizer (src/tokenizer/tokenizer.h's `tokenizer`
 * is a struct vocab): a SentencePiece vocabulary (vocab_llama2c.c). */
struct vocab;
vkllm_status tokenizer_create_from_llama2c(const char *path, struct vocab **out);

/* The file holds no token count, so the model's vocab_size is passed; the file must hold exactly that many. */
vkllm_status llama2c_vocab_load(const char *path, uint32_t n_tokens, llama2c_vocab **out);
void llama2c_vocab_free(llama2c_vocab *vocab);

/* Writes a llama GGUF (F32 tensors, llama2.c's SentencePiece vocabulary) from a checkpoint and its tokenizer,
 * laid out as llama.cpp's convert-llama2c-to-ggml does.  The output projection is written only when the
 * checkpoint has a separate classifier; otherwise loaders use token_embd.weight, as llama.cpp does. */
vkllm_status llama2c_convert(const char *model_path, const char *tokenizer_path, const char *out_path);

#endif
