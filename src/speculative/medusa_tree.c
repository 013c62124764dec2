/* Medusa's tree verification: the heads' top-k candidates form a sparse tree (each node a path of ranks: node
 * (0, 1) is head 1's second choice after head 0's first), verified in one pass whose attention lets each node see
 * the cached text, its ancestors and itself (context_decode_tree); the longest path the model agrees with is kept.
 *
 * The accepted path's keys and values were computed at the tree's slots, not at consecutive positions: instead of
 * moving them, the cache is rolled back to the root and the next pass starts with the accepted tokens as a chain
 * (ancestors of the next tree's root), which writes their keys and values at their own positions, computed as plain
 * decoding computes them.  So each pass is [accepted tokens of the last one][root = its bonus token][tree].
 * Greedy text: the model's argmax at every kept position, as plain decoding; the tree rows' logits come from the
 * masked attention, equal to plain decoding's up to the order of float sums.  Sampling: at each node the children are
 * tried in turn by the speculative rule with one-hot drafts (accept x with probability p(x), else p := norm(p without
 * x)), the last residual drawn from when none is kept: the sampler's distribution. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/log.h"
#include "spec.h"

/* Medusa's tree for 4 heads trimmed to 24 nodes (its mc_sim_7b_63 keeps 63): most of the width where acceptance is
 * likeliest, head 0's top 5, then the first choices' children. */
static const char DEFAULT_TREE[] = "0,1,2,3,4,0.0,0.1,0.2,1.0,1.1,2.0,3.0,0.0.0,0.0.1,0.1.0,1.0.0,0.0.0.0,0.0.0.1,"
                                   "0.1.0.0,1.0.0.0,0.0.1.0,2.0.0,0.2.0,0.0.2";

vkllm_status spec_tree_parse(const char *text, uint32_t n_heads, spec_tree *t)
{
    memset(t, 0, sizeof *t);
    bool builtin = !text || !strcmp(text, "default"); /* cut to the heads there are */
    if (builtin) text = DEFAULT_TREE;
    const char *p = text;
    while (*p) {
        if (t->n == SPEC_TREE_MAX)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "Medusa tree '%.60s': more than %u nodes", text,
                              SPEC_TREE_MAX);
        uint32_t path[MEDUSA_TREE_DEPTH], d = 0;
        for (;;) {
            char *end;
            unsigned long v = strtoul(p, &end, 10);
            if (end == p || v >= SPEC_TREE_TOPK || d == MEDUSA_TREE_DEPTH || (d == n_heads && !builtin))
                return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "Medusa tree '%.60s' at '%.20s': a node is a path of "
                                  "ranks (0..%u) like 0.1.0, at most one per head (%u), nodes separated by commas",
                                  text, p, SPEC_TREE_TOPK - 1, n_heads);
            path[d++] = (uint32_t)v;
            p = end;
            if (*p != '.') break;
            p++;
        }
        if (*p == ',') p++;
        else if (*p)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "Medusa tree '%.60s': unexpected '%c'", text, *p);
        if (d > n_heads) continue; /* the built-in tree past the last head */
        /* its parent: the node with the path one shorter, listed before it */
        int32_t parent = -1;
        if (d > 1) {
            for (uint32_t j = 0; j < t->n && parent < 0; j++)
                if (t->depth[j] == d - 1 && !memcmp(t->path[j], path, sizeof *path * (d - 1))) parent = (int32_t)j;
            if (parent < 0)
                return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "Medusa tree '%.60s': node %u's parent is not listed "
                                  "before it", text, t->n);
        }
        for (uint32_t j = 0; j < t->n; j++)
            if (t->depth[j] == d && !memcmp(t->path[j], path, sizeof *path * d))
                return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "Medusa tree '%.60s': node %u repeats", text, t->n);
        memcpy(t->path[t->n], path, sizeof *path * d);
        t->depth[t->n] = d;
        t->parent[t->n] = parent;
        t->n++;
    }
    if (t->n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "Medusa tree: no nodes");
    for (uint32_t i = 0; i < t->n; i++)
        for (uint32_t d = 0; d < t->depth[i]; d++)
            if (t->path[i][d] + 1 > t->topk[d]) t->topk[d] = t->path[i][d] + 1;
    return VKLLM_OK;
}

typedef struct tree_pass {
    vkllm_token ids[OPS_TREE_MAX_NODES], target[OPS_TREE_MAX_NODES];
    int32_t parents[OPS_TREE_MAX_NODES];
    uint32_t n, m;   /* rows; the chain's length (the root is row m) */
} tree_pass;

/* Lays out a pass: chain[0..m), the root, then the tree's nodes with the heads' candidates (none without a hidden
 * state, or where the tree would not fit room rows). */
static void build(spec_state *s, const vkllm_token *chain, uint32_t m, vkllm_token root, uint32_t room, tree_pass *tp)
{
    const spec_tree *t = s->tree;
    tp->m = m;
    tp->n = 0;
    for (uint32_t j = 0; j < m; j++) {
        tp->ids[tp->n] = chain[j];
        tp->parents[tp->n] = (int32_t)j - 1;
        tp->n++;
    }
    tp->ids[tp->n] = root;
    tp->parents[tp->n] = (int32_t)m - 1;
    tp->n++;
    vkllm_token top[MEDUSA_TREE_DEPTH][SPEC_TREE_TOPK];
    if (tp->n + t->n > room || !spec_medusa_topk(s->medusa, t->topk, MEDUSA_TREE_DEPTH, top)) return;
    for (uint32_t i = 0; i < t->n; i++) {
        uint32_t d = t->depth[i];
        tp->ids[tp->n] = top[d - 1][t->path[i][d - 1]];
        tp->parents[tp->n] = t->parent[i] < 0 ? (int32_t)m : (int32_t)(m + 1 + (uint32_t)t->parent[i]);
        tp->n++;
    }
}

/* The kept path after a greedy pass: rows from the root down while a child holds the model's choice. */
static uint32_t walk_greedy(const tree_pass *tp, uint32_t *path)
{
    uint32_t cur = tp->m, a = 0;
    for (;;) {
        uint32_t next = 0;
        for (uint32_t r = cur + 1; r < tp->n && !next; r++)
            if (tp->parents[r] == (int32_t)cur && tp->ids[r] == tp->target[cur]) next = r;
        if (!next) break;
        path[a++] = next;
        cur = next;
    }
    return a;
}

/* The same by the sampling rule: *bonus drawn at the last kept row. */
static vkllm_status walk_sampled(vkllm_context *ctx, sampler *smp, const tree_pass *tp, uint32_t *path, uint32_t *a,
                                 vkllm_token *bonus)
{
    spec_state *s = ctx->spec;
    int32_t n_vocab = (int32_t)ctx->model->cfg.n_vocab;
    uint32_t cur = tp->m;
    *a = 0;
    for (;;) {
        VKLLM_TRY(sampler_probs(smp, vkllm_get_logits(ctx, cur), s->p));
        uint32_t next = 0;
        bool tried = false;
        for (uint32_t r = cur + 1; r < tp->n && !next; r++) {
            if (tp->parents[r] != (int32_t)cur) continue;
            tried = true;
            if (spec_sample_accept(smp, s->p, NULL, n_vocab, tp->ids[r], bonus)) next = r;
        }
        if (!next) {
            if (!tried) *bonus = sampler_draw_probs(smp, s->p); /* else: drawn from the last residual */
            return VKLLM_OK;
        }
        VKLLM_TRY(sampler_accept(smp, tp->ids[next]));
        path[(*a)++] = next;
        cur = next;
    }
}

vkllm_status spec_tree_generate(vkllm_context *ctx, vkllm_token next, uint32_t n_prompt, uint32_t n_predict,
                                sampler *smp, vkllm_piece_fn on_piece, void *user, vkllm_generate_stats *stats,
                                double t1)
{
    spec_state *s = ctx->spec;
    spec_medusa_take_hidden(s->medusa, ctx, 0); /* the prompt's last position */
    vkllm_token pending[OPS_TREE_MAX_NODES + 1];
    pending[0] = next;
    uint32_t n_pending = 1, pos = n_prompt; /* pending[0..n_pending-1) is the next chain, its last the root */
    uint32_t room_rows = ctx->params.n_outputs_max < ctx->params.n_batch ? ctx->params.n_outputs_max : ctx->params.n_batch;
    if (room_rows > OPS_TREE_MAX_NODES) room_rows = OPS_TREE_MAX_NODES;
    bool done = false;
    vkllm_status st = VKLLM_OK;
    tree_pass tp;
    uint32_t path[OPS_TREE_MAX_NODES];
    while (st == VKLLM_OK && !done) {
        st = spec_emit_pending(ctx, pending, n_pending, n_predict, smp, on_piece, user, stats, &done);
        if (st != VKLLM_OK || done) break;
        uint32_t m = n_pending - 1;
        if (pos + m >= ctx->params.n_ctx) {
            stats->generate_ms = vkllm_log_clock_ms() - t1;
            return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "the context of %u positions is full after %u prompt and %u "
                              "generated tokens, short of the %u asked for (a larger n_ctx holds more)",
                              ctx->params.n_ctx, n_prompt, stats->n_generated, n_predict);
        }
        uint32_t room = ctx->params.n_ctx - pos < room_rows ? ctx->params.n_ctx - pos : room_rows;
        build(s, pending, m, pending[m], room, &tp);
        for (uint32_t j = 0; j <= m; j++) ctx->history[pos + j] = pending[j];
        st = context_decode_tree(ctx, 0, tp.ids, tp.parents, tp.n, smp == NULL, tp.target);
        if (st != VKLLM_OK) break;
        uint32_t a;
        vkllm_token bonus;
        if (!smp) {
            a = walk_greedy(&tp, path);
            bonus = tp.target[a ? path[a - 1] : tp.m];
        } else {
            st = walk_sampled(ctx, smp, &tp, path, &a, &bonus);
            if (st != VKLLM_OK) break;
        }
        spec_medusa_take_hidden(s->medusa, ctx, a ? path[a - 1] : tp.m);
        /* keep the chain and the root (at their own positions); the kept path is the next pass's chain */
        pos += m + 1;
        ctx->n_history = pos;
        st = spec_rollback(ctx, 0, pos);
        stats->n_verify++;
        stats->n_drafted += tp.n - tp.m - 1;
        stats->n_accepted += a;
        stats->n_decode += a + 1;
        for (uint32_t j = 0; j < a; j++) pending[j] = tp.ids[path[j]];
        pending[a] = bonus;
        n_pending = a + 1;
    }
    stats->generate_ms = vkllm_log_clock_ms() - t1;
    if (st != VKLLM_OK) return st;
    /* Leave the cache as plain decoding would, or shorter (the last pass's kept path was never rewritten): the history
     * says what it holds, and a later prompt re-evaluates the rest. */
    uint32_t plain = n_prompt + stats->n_generated - (!stats->stopped_by_eog && stats->n_generated ? 1 : 0);
    if (plain < ctx->pages->seq_len[0]) st = spec_rollback(ctx, 0, plain);
    if (ctx->n_history > ctx->pages->seq_len[0]) ctx->n_history = ctx->pages->seq_len[0];
    vkllm_log(VKLLM_LOG_INFO, "generate: %u tokens in %.1f ms; Medusa tree: %u candidates, %u accepted, %u passes",
              stats->n_generated, stats->generate_ms, stats->n_drafted, stats->n_accepted, stats->n_verify);
    return st;
}
