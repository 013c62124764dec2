/* Speculative decoding: drafters propose tokens, one batch-invariant forward pass verifies them (verify.c), and
 * the generation loop (spec_generate.c) keeps the longest accepted prefix, greedily or by the speculative
 * sampling rule (spec_sample.c).  Drafters: prompt lookup (lookup.c) and a draft model (draft_model.c). */
#ifndef VKLLM_SPEC_H
#define VKLLM_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "model/context.h"
#include "ops/flash_attn.h"
#include "sampling/sampling.h"

#define SPEC_MAX_DRAFT 64u

/* Adaptive drafting (adaptive.c): the draft length, and pauses of drafting where it does not pay. */
#define SPEC_ADAPT_POSITIONS 16u /* draft positions whose acceptance is tracked (later ones count as the last) */
typedef struct spec_adaptive {
    bool timed;               /* judged by time (greedy), else by counts (sampling) */
    bool model;               /* the drafter is a draft model */
    double ms_plain, ms_spec; /* averaged ms per token of plain passes, and of drafting passes (draft + verify) */
    uint32_t n_plain, n_spec; /* passes behind them (n_spec: since the last pause) */
    double passes, accepted;  /* drafting passes and tokens accepted, exponentially decayed */
    uint32_t k;               /* the draft length now */
    uint32_t skip;            /* passes left without drafting (UINT32_MAX: no more drafting) */
    uint32_t backoff;         /* the next pause */
    uint32_t pauses, max_pauses;
    bool probing;             /* drafting again after a pause, not yet found to pay */
    bool warm;                /* a plain pass ran (the first is not timed) */
    /* The draft length from measured costs (timed, not a draft model: adaptive.c, best_length): */
    double row_ms;            /* averaged ms a drafted row adds to a plain pass */
    uint32_t n_rows;          /* drafting passes behind it */
    double reached[SPEC_ADAPT_POSITIONS]; /* draft position i verified with all before it kept: decayed count */
    double kept[SPEC_ADAPT_POSITIONS];    /* ... and kept */
} spec_adaptive;

/* timed: judge by time (greedy); model: the drafter is a draft model (its draft length adapts; it gives up after a
 * few pauses). */
void spec_adaptive_start(spec_adaptive *ad, bool timed, bool model, uint32_t draft_max);
/* The most tokens to draft now, given room (0: a plain pass). */
uint32_t spec_adaptive_room(spec_adaptive *ad, uint32_t room);
/* After a pass that drafted k tokens (0: plain) and kept a, taking ms (drafting and verification). */
void spec_adaptive_update(spec_adaptive *ad, uint32_t k, uint32_t a, double ms, uint32_t draft_max);

/* A Medusa candidate tree (medusa_tree.c): node i is the path of ranks path[i][0..depth[i]) (rank r at depth d: head
 * d's r-th best token), parent[i] the node of its path one shorter (-1: the root's child). */
#define SPEC_TREE_MAX 48u     /* nodes; with the root and a chain of up to 15 kept tokens, within OPS_TREE_MAX_NODES */
#define SPEC_TREE_TOPK 16u    /* ranks 0..15 */
#define MEDUSA_TREE_DEPTH 8u
typedef struct spec_tree {
    uint32_t n;
    uint32_t path[SPEC_TREE_MAX][MEDUSA_TREE_DEPTH];
    uint32_t depth[SPEC_TREE_MAX];
    int32_t parent[SPEC_TREE_MAX];
    uint32_t topk[MEDUSA_TREE_DEPTH]; /* candidates needed from each head */
} spec_tree;

typedef struct spec_state {
    vkllm_speculation params;
    spec_adaptive adaptive;
    vkllm_token draft[SPEC_MAX_DRAFT];
    vkllm_token target[SPEC_MAX_DRAFT + 1];
    float *p, *q;             /* [n_vocab] the target's and the draft's distributions (sampling) */
    float *q_rows;            /* [draft_max][n_vocab] the draft model's distributions of its drafts (sampling) */
    struct spec_medusa *medusa; /* the Medusa drafter (medusa_draft.c), NULL when off */
    spec_tree *tree;          /* Medusa's candidate tree, NULL: a chain of one candidate per head */
} spec_state;

void spec_state_free(spec_state *s);

/* The most tokens a verification pass may draft for sequence seq of ctx whose next input goes at position pos:
 * bounded by max, n_outputs_max - 1, the context, and the context bucket of pos (every row of a pass must run at
 * the bucket its single-token pass would, so that its logits are the same). */
uint32_t spec_draft_room(const vkllm_context *ctx, uint32_t pos, uint32_t max);

/* One verification pass of input at pos (the length of sequence seq) and draft[0..k): greedy: target[0..k] the
 * argmax ids; else the k + 1 rows of logits stay readable through vkllm_get_logits.  The cache then holds every
 * position through pos + k; spec_rollback keeps what was accepted. */
vkllm_status spec_verify_pass(vkllm_context *ctx, int32_t seq, vkllm_token input, const vkllm_token *draft, uint32_t k,
                              bool greedy, vkllm_token *target);
vkllm_status spec_rollback(vkllm_context *ctx, int32_t seq, uint32_t len);

/* Prompt lookup: the latest earlier occurrence in hist[0..n) of its last m tokens, for m = ngram down to 1, whose
 * continuation is proposed: up to max tokens into out.  Returns the number proposed (0: no match). */
uint32_t spec_lookup(const vkllm_token *hist, uint32_t n, uint32_t ngram, uint32_t max, vkllm_token *out,
                     uint32_t *matched);
/* The pass sizes a draft of up to k tokens is cut to: k + 1 a power of two, or draft_max + 1 (each size is its own
 * recording and, for the mat-vec, its own pipelines: a handful of sizes keeps their first builds rare). */
uint32_t spec_pass_size(uint32_t k, uint32_t draft_max);

/* The draft model: brings the draft context's sequence 0 to hist[0..n) (evaluating what it lacks), then drafts up
 * to max tokens greedily (smp NULL) or by sampling with dsmp (whose window must be the target's; q_rows gets each
 * draft's distribution), stopping early when the draft's top probability falls below min_p.  *n_out drafted. */
vkllm_status spec_draft_model(vkllm_context *draft, const vkllm_token *hist, uint32_t n, uint32_t max, float min_p,
                              sampler *dsmp, float *q_rows, vkllm_token *out, uint32_t *n_out);
/* Every token id of a and b's vocabularies has the same text: else VKLLM_ERROR_INVALID_ARGUMENT naming the first id
 * that differs. */
vkllm_status spec_check_vocab(const vkllm_model *a, const vkllm_model *b);

/* Medusa (medusa_draft.c): loads the heads file, checks it against ctx's model and that ctx returns hidden states. */
vkllm_status spec_medusa_open(const vkllm_context *ctx, const char *path, struct spec_medusa **out);
void spec_medusa_free(struct spec_medusa *m);
uint32_t spec_medusa_heads(const struct spec_medusa *m);
/* The hidden state the next drafts start from: row `row` of the pass just read back (none there: no drafts until the
 * next one). */
void spec_medusa_take_hidden(struct spec_medusa *m, vkllm_context *ctx, uint32_t row);
/* Up to max drafts after the next input: head i's top token, i < heads; 0 without a hidden state. */
uint32_t spec_medusa_draft(struct spec_medusa *m, uint32_t max, vkllm_token *out);
/* Head d's topk[d] best tokens, best first, into top[d] for d < depths (topk[d] 0: none); false without a hidden
 * state. */
bool spec_medusa_topk(struct spec_medusa *m, const uint32_t *topk, uint32_t depths,
                      vkllm_token (*top)[SPEC_TREE_TOPK]);
/* "default" (or NULL): the built-in tree; else nodes as paths of ranks, "0,1,0.0,0.1,0.0.0" (a node after its
 * parent), at most n_heads deep. */
vkllm_status spec_tree_parse(const char *text, uint32_t n_heads, spec_tree *t);
/* spec_generate for a Medusa tree (medusa_tree.c). */
/* Emits pending[0..n) until generation ends (*done): n_predict tokens, an end-of-generation token, or the callback
 * asking to stop; the sampler's window takes the last one (spec_generate.c). */
vkllm_status spec_emit_pending(vkllm_context *ctx, const vkllm_token *pending, uint32_t n, uint32_t n_predict,
                               sampler *smp, vkllm_piece_fn on_piece, void *user, vkllm_generate_stats *stats,
                               bool *done);
vkllm_status spec_tree_generate(vkllm_context *ctx, vkllm_token next, uint32_t n_prompt, uint32_t n_predict,
                                sampler *smp, vkllm_piece_fn on_piece, void *user, vkllm_generate_stats *stats,
                                double t1);

/* The speculative sampling rule for one drafted token x with target distribution p and draft distribution q (NULL:
 * one-hot at x): accepts x with probability min(1, p(x)/q(x)), returning true; else draws *out from
 * norm(max(0, p - q)) (p is overwritten by it) and returns false. */
bool spec_sample_accept(sampler *smp, float *p, const float *q, int32_t n_vocab, vkllm_token x, vkllm_token *out);

/* The generation loop after the prompt (generate.c calls it when speculation is on), with plain decoding's contract:
 * next is the token the prompt produced; n_prompt tokens are cached and in ctx->history. */
vkllm_status spec_generate(vkllm_context *ctx, vkllm_token next, uint32_t n_prompt, uint32_t n_predict, sampler *smp,
                           vkllm_piece_fn on_piece, void *user, vkllm_generate_stats *stats, double t1);

#endif
