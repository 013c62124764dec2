/* A context: the paged KV cache of a model, the buffers of a forward pass, and the recorded command
 * sequences that run it (one per batch shape, replayed). */
#ifndef VKLLM_CONTEXT_H
#define VKLLM_CONTEXT_H

#include "kv_pages.h"
#include "model.h"
#include "ops/kv_cache.h"

#define CONTEXT_MAX_RECORDINGS 16
#define CONTEXT_MAX_GROUPS 64 /* submissions one forward pass may be split into (max_submit_us) */

/* What a recording depends on: everything else lives in buffers rewritten before each run. */
typedef struct forward_shape {
    uint32_t n_tokens;    /* tokens in the batch */
    uint32_t n_out;       /* rows that produce logits */
    uint32_t max_context; /* bound on pos + 1 of every token (power-of-two bucket, <= n_ctx) */
    bool greedy;          /* argmax on the device instead of returning logits */
    bool invariant;       /* a verification pass (src/speculative/): every row is computed in the reduction order
                             of a one-token pass (mat-vec products, attention split for one token), so its logits
                             are bitwise those of single-token decoding at the same context bucket */
    bool tree;            /* the rows form a tree (context_decode_tree): tree-mask attention, RoPE at each node's
                             depth */
    bool capture;         /* copies the inputs of every weight product to the host (context_capture_enable) */
    bool one_seq;         /* more than one token, all of one sequence (verification passes, a prompt): attention
                             may take several of them per workgroup (ops_attention_shape.one_sequence) */
} forward_shape;

/* A forward pass of one shape, recorded as n_groups sequences of whole layers: group g runs layers
 * [end[g-1], end[g]) (the first one also the inputs and embedding, the last one the head), each one submission.
 * One group unless the context has a max_submit_us budget (submit.c plans the split from measured GPU time). */
typedef struct recording {
    forward_shape shape;
    vkr_sequence *groups[CONTEXT_MAX_GROUPS];
    uint32_t end[CONTEXT_MAX_GROUPS];
    uint32_t n_groups;
    uint32_t layers_per_group; /* of the recorded split */
    double layer_us;           /* measured GPU microseconds per layer (running average), 0 until measured */
    uint64_t last_used;
} recording;

/* The forward pass submitted and not yet finished (vkllm_decode_submit): submit.c. */
typedef struct pending_decode {
    bool active, greedy;
    recording *rec;
    uint32_t next_group;       /* groups submitted so far */
    uint32_t n_out;
    uint64_t value;            /* the ticket: the timeline value the last group signals */
} pending_decode;

typedef struct generate_state generate_state;

/* Host-visible staging of one step's inputs, copied to the device at the start of each recording. */
typedef struct step_inputs {
    int32_t *ids;        /* [n_batch] token ids */
    int32_t *tokens;     /* [n_batch][2] {seq, pos}: the cache slot and the RoPE position */
    int32_t *out_rows;   /* [n_outputs_max] batch rows whose logits are wanted */
    int32_t *page_table; /* [n_seq_max][max_pages_per_seq] */
    uint32_t *tree;      /* [n_batch][4] tree-mask rows (ops_tree_rows), for tree passes */
} step_inputs;

struct vkllm_context {
    vkllm_model *model;
    vkllm_context_params params;
    kv_pages *pages;
    ops_kv_layout kv;
    vkr_buffer *k_cache, *v_cache;       /* [n_layer] each */

    vkr_buffer host_in;                  /* staging of step_inputs (host-visible) */
    step_inputs in;                      /* pointers into host_in */
    vkr_buffer ids, tokens, out_rows, page_table, tree; /* device copies */
    uint64_t off_ids, off_tokens, off_out_rows, off_page_table, off_tree; /* offsets in host_in */

    vkr_buffer x, h;                     /* activations [n_batch][n_embd] */
    vkr_buffer qkv;                      /* [n_batch][(n_head + 2 n_kv) * hd]: Q/K/V before RoPE, when the
                                            mat-vec cannot store them itself (ops_qkv_project) */
    vkr_buffer qr, att, o;               /* [n_batch][n_head*hd] rotated Q, attention; [n_batch][n_embd] */
    vkr_buffer gate_up, act;             /* [n_batch][2 n_ff] (scratch of ops_swiglu_project), [n_batch][n_ff] */
    vkr_buffer xo, ho;                   /* [n_outputs_max][n_embd]: rows that produce logits */
    vkr_buffer logits;                   /* [n_outputs_max][n_vocab] */
    vkr_buffer argmax;                   /* [n_outputs_max] int32 */
    vkr_buffer scratch;                  /* flash-attention split-K partials */
    vkr_buffer host_out;                 /* host-visible: logits rows, then argmax ids, then hidden rows
                                            (output_hidden; context_hidden_offset) */

    uint32_t *next_len;                  /* [n_seq_max] scratch of vkllm_decode: lengths after the batch */
    vkllm_token *history;                /* [n_ctx] tokens whose keys sequence 0 holds (vkllm_generate) */
    uint32_t n_history;

    op_tuning invariant_tuning;          /* the model's tuning with the mat-vec for every n: verification passes */
    struct spec_state *spec;             /* speculative decoding (src/speculative/spec.h), NULL when off */

    recording recordings[CONTEXT_MAX_RECORDINGS];
    uint64_t clock;
    uint32_t n_out_last;                 /* rows of logits the last decode returned */
    uint32_t n_hidden_last;              /* rows of hidden states it returned (output_hidden) */

    VkSemaphore timeline;                /* signalled by each forward pass to its ticket's value */
    uint64_t timeline_value;             /* the last value handed out */
    uint64_t completed_value;            /* the last value whose results were read */
    pending_decode pending;
    vkllm_token *greedy_tokens;          /* [n_outputs_max]: the argmax ids of the last greedy pass */
    generate_state *gen;                 /* vkllm_generate_begin / _step (generate_step.c) */

    bool capture_on;                     /* passes copy their weight products' inputs into capture (capture.c) */
    vkr_buffer capture;                  /* host-visible: see context_capture_rows */
};

/* key_center.c: the mean key of a centered K cache (vkllm_context_params.center_k), estimated by a short pass of
 * the model's own in a context of its own, once per model (model->k_center_pairs, k_center, k_center_bias). */
vkllm_status model_key_center(vkllm_model *m);

/* capture.c: activation capture for calibration (vkllm imatrix, GPTQ, AWQ).  Once enabled, every forward pass
 * also copies, per layer, the F32 inputs of its weight products to a host buffer: the attention norm's output
 * (what Q, K and V read), the attention output (O), the FFN norm's output (gate and up) and the SwiGLU output
 * (down); and the final norm's output of the rows that want logits (the LM head).  Read them after the pass. */
typedef enum capture_kind {
    CAPTURE_ATTN_IN,  /* [n_tokens][n_embd] */
    CAPTURE_ATTN_OUT, /* [n_tokens][n_head * head_dim] */
    CAPTURE_FFN_IN,   /* [n_tokens][n_embd] */
    CAPTURE_FFN_ACT,  /* [n_tokens][n_ff] */
    CAPTURE_KINDS,
    CAPTURE_OUTPUT = CAPTURE_KINDS /* [n_out][n_embd]: only with layer == n_layer */
} capture_kind;
vkllm_status context_capture_enable(vkllm_context *ctx);
/* Columns of a kind; the byte offset of (layer, kind) in ctx->capture. */
uint32_t context_capture_width(const vkllm_context *ctx, capture_kind kind);
uint64_t context_capture_offset(const vkllm_context *ctx, uint32_t layer, capture_kind kind);
/* The rows of the last pass (row-major, width columns), NULL unless capture is on. */
const float *context_capture_rows(const vkllm_context *ctx, uint32_t layer, capture_kind kind, uint32_t *width);

/* Byte offset of the hidden rows in host_out. */
uint64_t context_hidden_offset(const vkllm_context *ctx);
/* vkllm_decode (greedy: vkllm_decode_greedy, tokens receiving the ids) without touching the history. */
vkllm_status context_decode(vkllm_context *ctx, const vkllm_batch *batch, bool greedy, vkllm_token *tokens);
/* decode.c: validates and stages the batch (waiting first for a pass still pending) and finds (or records) its
 * recording; submit.c then submits it. */
vkllm_status context_stage_batch(vkllm_context *ctx, const vkllm_batch *b, bool greedy, bool invariant, recording **rec,
                                 uint32_t *n_out);
/* (Re)records rec's groups for rec->layers_per_group layers each. */
vkllm_status context_record(vkllm_context *ctx, recording *rec);
/* The same with the choice of a batch-invariant pass (forward_shape.invariant). */
vkllm_status context_decode_ex(vkllm_context *ctx, const vkllm_batch *batch, bool greedy, bool invariant,
                               vkllm_token *tokens);
/* A tree verification pass (Medusa) of n tokens of sequence seq at its next positions pos0..pos0+n-1: node i sees the
 * cached prefix, its ancestors (parents[i] < i; -1: it hangs from the prefix) and itself, and is rotated at position
 * pos0 + its depth; every row returns its output (greedy: argmax ids into out; else logits).  Its keys and values
 * stay at pos0 + i: truncate the sequence to keep a prefix of them whose nodes are each other's parents in order. */
vkllm_status context_decode_tree(vkllm_context *ctx, int32_t seq, const vkllm_token *ids, const int32_t *parents,
                                 uint32_t n, bool greedy, vkllm_token *out);
/* Records (without running) the pass of n_tokens tokens of sequence 0 of which n_out want outputs, at the first
 * context bucket, so that its pipelines are built before it is needed. */
vkllm_status context_prepare(vkllm_context *ctx, uint32_t n_tokens, uint32_t n_out, bool greedy, bool invariant);
/* The same for a tree pass of n_tokens (context_decode_tree). */
vkllm_status context_prepare_tree(vkllm_context *ctx, uint32_t n_tokens, bool greedy);
/* The max_context bucket a pass whose last position is pos runs at (a power of two >= 256, at most n_ctx). */
uint32_t context_bucket(const vkllm_context *ctx, uint32_t need);

/* submit.c: submits the pass of a prepared batch without waiting (the first group, or every group without a
 * budget); *value: its ticket. */
vkllm_status context_submit(vkllm_context *ctx, recording *rec, bool greedy, uint32_t n_out, uint64_t *value);
/* Advances the pending pass without blocking (submits the next group once the previous one finished); *done once
 * the pass with this ticket value finished and its results were read. */
vkllm_status context_poll(vkllm_context *ctx, uint64_t value, bool *done);
/* Blocks until the pass with this ticket value finished (submitting its remaining groups). */
vkllm_status context_wait(vkllm_context *ctx, uint64_t value);

/* generate.c: token's text to on_piece (if any); *stop when it asks to stop.  Shared with the speculative loop. */
vkllm_status generate_emit(vkllm_context *ctx, vkllm_token token, vkllm_piece_fn on_piece, void *user, bool *stop);
/* generate_step.c: frees the step-wise generation's state. */
void generate_state_free(generate_state *g);

/* Records layers [first, end) of the forward pass of a batch shape into seq: the first group also copies the
 * inputs and embeds, the last one (end == n_layer) also runs the head. */
vkllm_status forward_record(vkllm_context *ctx, vkr_sequence *seq, const forward_shape *shape, uint32_t first,
                            uint32_t end);

#endif
