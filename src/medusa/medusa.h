/* Medusa heads (docs/speculative.md): K extra decoding heads on the base model's last hidden state h (after the final
 * norm).  Head i (0-based) is a residual block h' = h + SiLU(W_i h + b_i) followed by an output matrix (the base
 * model's, frozen, Medusa-1 style, or an own one), and predicts the token i + 2 places after the input whose hidden
 * state h is: the base LM head predicts the next token (offset 1), head 0 the one after it, and so on.
 *
 * heads_file.c: the heads' GGUF file and its check against a base model; head_math.c: the heads' arithmetic on the
 * CPU (forward, cross-entropy and its gradient); train.c: self-distillation training (`vkllm medusa-train`). */
#ifndef VKLLM_MEDUSA_H
#define VKLLM_MEDUSA_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "runtime/error.h"
#include "vkllm.h"

#define MEDUSA_MAX_HEADS 16u

/* What a heads file says of the base model it was trained on, and what a base model file is. */
typedef struct medusa_base {
    char name[128];         /* general.name ("" if none) */
    char arch[32];          /* general.architecture */
    uint32_t n_embd, n_vocab, n_layer;
    uint64_t vocab_hash;    /* FNV-1a 64 of every token's text (tokenizer.ggml.tokens), each with a 0 after it */
    uint64_t shape_hash;    /* sum of the FNV-1a 64 of every tensor's name and dimensions (not its type: a quantized
                               copy of the model has the same hash, and the heads fit it) */
} medusa_base;

typedef struct medusa_heads {
    uint32_t n_heads, n_embd, n_vocab;
    float *w;               /* [n_heads][n_embd][n_embd]: row r of head i's W is w + (i*n_embd + r)*n_embd */
    float *b;               /* [n_heads][n_embd] */
    float *out;             /* [n_vocab][n_embd] the heads' own output matrix, shared by all heads; NULL: the base's */
    medusa_base base;
    uint32_t train_tokens, train_seed; /* informational (medusa.training.*), 0 if unknown */
} medusa_heads;

/* The base-model description of an open GGUF model file. */
vkllm_status medusa_base_from_gguf(const gguf_file *f, medusa_base *out);
/* Its output matrix ([n_vocab][n_embd] floats, output.weight, else the tied token_embd.weight), dequantized; the
 * caller frees *out. */
vkllm_status medusa_output_matrix(const gguf_file *f, float **out);

/* Allocates heads of this shape with zero weights (each head starts as the base LM head's prediction). */
vkllm_status medusa_heads_alloc(medusa_heads *h, uint32_t n_heads, uint32_t n_embd, uint32_t n_vocab, bool own_out);
void medusa_heads_free(medusa_heads *h);
vkllm_status medusa_heads_save(const medusa_heads *h, const char *path);
/* Loads a heads file (general.architecture "medusa"); any error names the file and the key or tensor. */
vkllm_status medusa_heads_load(const char *path, medusa_heads *out);
/* VKLLM_ERROR_INVALID_ARGUMENT, with a message naming both models and what differs, unless the heads were trained on
 * a model with base's shapes and vocabulary. */
vkllm_status medusa_heads_check(const medusa_heads *h, const medusa_base *base, const char *heads_path,
                                const char *base_path);

/* ---- head_math.c ---- */

/* h' = h + SiLU(W h + b) for one head (w [n][n], b [n]); z (optional, [n]) gets W h + b. */
void medusa_head_forward(const float *w, const float *b, uint32_t n, const float *h, float *hp, float *z);
/* logits[v] = out[v] . hp for v < n_vocab. */
void medusa_head_logits(const float *out, uint32_t n_vocab, uint32_t n, const float *hp, float *logits);
/* Cross-entropy of target under softmax(logits); logits is overwritten by the gradient softmax - onehot. */
float medusa_xent_grad(float *logits, uint32_t n_vocab, int32_t target);
/* One sample's loss for one head, with its gradients added to gw ([n][n]) and gb ([n]) when not NULL; scratch holds
 * at least 3n + n_vocab floats.  *argmax (optional) gets the head's top token. */
float medusa_head_loss_grad(const float *w, const float *b, const float *out, uint32_t n, uint32_t n_vocab,
                            const float *h, int32_t target, float *gw, float *gb, float *scratch, int32_t *argmax);

/* ---- train.c ---- */

typedef struct medusa_train_params {
    uint32_t n_heads;       /* default 4 */
    uint32_t n_tokens;      /* generated tokens to train on (a tenth of them held out); default 32768 */
    uint32_t seed;          /* default 1 */
    uint32_t epochs;        /* default 3 */
    uint32_t batch;         /* mini-batch size; default 64 */
    float lr;               /* Adam's step size; default 3e-3 */
    float temperature;      /* of the generated text; default 0: greedy continuations, the text greedy decoding
                               will meet (diversity comes from the prompts) */
    const char *calib;      /* text file whose pieces start the continuations; NULL: each starts at BOS */
} medusa_train_params;

medusa_train_params medusa_train_default_params(void);

/* What training reports as it goes: phase 0 generation (done/total tokens), 1 training (done/total samples of an
 * epoch; loss and top1 of the batches so far in the epoch), 2 the held-out evaluation after an epoch. */
typedef struct medusa_train_report {
    int phase;
    uint32_t epoch, epochs;
    uint64_t done, total;
    float loss;                    /* mean cross-entropy over heads */
    float top1[MEDUSA_MAX_HEADS];  /* per-head top-1 accuracy */
    uint32_t n_heads;
} medusa_train_report;
typedef void (*medusa_train_progress_fn)(void *user, const medusa_train_report *r);

/* Self-distillation: loads model_path, generates p->n_tokens tokens of its own text on the GPU with the hidden states
 * read back, trains the heads on the CPU and writes them to out_path.  *final (optional): the held-out evaluation of
 * the last epoch. */
vkllm_status medusa_train(const char *model_path, const vkllm_model_params *mp, const medusa_train_params *p,
                          const char *out_path, medusa_train_progress_fn progress, void *user,
                          medusa_train_report *final);

#endif
