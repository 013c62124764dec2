/* The verification engine: one batch-invariant forward pass over a sequence's next input and its drafts, greedy
 * acceptance, and rollback of the rejected positions by page-table bookkeeping.  Also the public settings of
 * speculation on a context. */
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "spec.h"

uint32_t spec_draft_room(const vkllm_context *ctx, uint32_t pos, uint32_t max)
{
    const vkllm_context_params *p = &ctx->params;
    uint32_t room = max < SPEC_MAX_DRAFT ? max : SPEC_MAX_DRAFT;
    if (p->n_outputs_max - 1 < room) room = p->n_outputs_max - 1;
    if (p->n_batch - 1 < room) room = p->n_batch - 1;
    if (pos + 1 >= p->n_ctx) return 0;
    if (p->n_ctx - 1 - pos < room) room = p->n_ctx - 1 - pos;
    /* The attention's split of the keys follows the pass's context bucket: a pass that crosses into the next
     * bucket would compute its first rows under another split than their single-token passes. */
    uint32_t bucket = context_bucket(ctx, pos + 1);
    while (room > 0 && context_bucket(ctx, pos + 1 + room) != bucket) room--;
    return room;
}

uint32_t spec_pass_size(uint32_t k, uint32_t draft_max)
{
    if (k == 0 || k >= draft_max) return k < draft_max ? k : draft_max;
    uint32_t n = 1;
    while (2 * n <= k + 1) n *= 2;
    return n - 1;
}

vkllm_status spec_verify_pass(vkllm_context *ctx, int32_t seq, vkllm_token input, const vkllm_token *draft, uint32_t k,
                              bool greedy, vkllm_token *target)
{
    if (seq < 0 || (uint32_t)seq >= ctx->params.n_seq_max)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "verify: sequence %d (n_seq_max %u)", seq, ctx->params.n_seq_max);
    if (k > SPEC_MAX_DRAFT || k + 1 > ctx->params.n_outputs_max || (k && !draft))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "verify: %u drafted tokens; at most %u (n_outputs_max %u - 1)", k,
                          ctx->params.n_outputs_max - 1 < SPEC_MAX_DRAFT ? ctx->params.n_outputs_max - 1 : SPEC_MAX_DRAFT,
                          ctx->params.n_outputs_max);
    uint32_t pos = ctx->pages->seq_len[seq];
    if (pos + k >= ctx->params.n_ctx)
        return vkllm_fail(VKLLM_ERROR_CONTEXT_FULL, "verify: positions %u..%u of sequence %d do not fit the context of "
                          "%u", pos, pos + k, seq, ctx->params.n_ctx);
    vkllm_token tokens[SPEC_MAX_DRAFT + 1];
    int32_t positions[SPEC_MAX_DRAFT + 1], seqs[SPEC_MAX_DRAFT + 1];
    int8_t want[SPEC_MAX_DRAFT + 1];
    for (uint32_t i = 0; i <= k; i++) {
        tokens[i] = i ? draft[i - 1] : input;
        positions[i] = (int32_t)(pos + i);
        seqs[i] = seq;
        want[i] = 1;
    }
    vkllm_batch b = {k + 1, tokens, positions, seqs, want};
    return context_decode_ex(ctx, &b, greedy, true, target);
}

vkllm_status spec_rollback(vkllm_context *ctx, int32_t seq, uint32_t len)
{
    if (seq == 0 && len < ctx->n_history) ctx->n_history = len;
    return kv_pages_truncate(ctx->pages, (uint32_t)seq, len); /* the page table only: no key or value moves */
}

vkllm_status vkllm_verify_greedy(vkllm_context *ctx, int32_t seq, vkllm_token input, const vkllm_token *draft,
                                 uint32_t k, vkllm_token *target, uint32_t *n_accepted)
{
    if (!ctx || !target || !n_accepted)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_verify_greedy: context, target or n_accepted is NULL");
    *n_accepted = 0;
    if (seq == 0) ctx->n_history = 0; /* as vkllm_decode: the caller drives sequence 0 now */
    if (seq < 0 || (uint32_t)seq >= ctx->params.n_seq_max)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_verify_greedy: sequence %d (n_seq_max %u)", seq,
                          ctx->params.n_seq_max);
    uint32_t pos = ctx->pages->seq_len[seq];
    VKLLM_TRY(spec_verify_pass(ctx, seq, input, draft, k, true, target));
    uint32_t a = 0;
    while (a < k && draft[a] == target[a]) a++;
    *n_accepted = a;
    return spec_rollback(ctx, seq, pos + 1 + a);
}

vkllm_status vkllm_verify_logits(vkllm_context *ctx, int32_t seq, vkllm_token input, const vkllm_token *draft,
                                 uint32_t k)
{
    if (!ctx) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_verify_logits: context is NULL");
    if (seq == 0) ctx->n_history = 0; /* as vkllm_decode: the caller drives sequence 0 now */
    return spec_verify_pass(ctx, seq, input, draft, k, false, NULL);
}

vkllm_speculation vkllm_speculation_default(void)
{
    return (vkllm_speculation){.lookup_ngram = 0, .draft = NULL, .draft_max = 7, .draft_min_p = 0.0f, .adaptive = 1};
}

void spec_state_free(spec_state *s)
{
    if (!s) return;
    free(s->p);
    free(s->q);
    free(s->q_rows);
    spec_medusa_free(s->medusa);
    free(s->tree);
    free(s);
}

vkllm_status vkllm_context_set_speculation(vkllm_context *ctx, const vkllm_speculation *spec)
{
    if (!ctx) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_context_set_speculation: context is NULL");
    spec_state_free(ctx->spec);
    ctx->spec = NULL;
    if (!spec || (!spec->lookup_ngram && !spec->draft && !spec->medusa)) return VKLLM_OK;
    if (spec->draft_max < 1 || spec->draft_max > SPEC_MAX_DRAFT || !(spec->draft_min_p >= 0.0f && spec->draft_min_p <= 1.0f))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "speculation: draft_max %u (1..%u), draft_min_p %g (0..1)",
                          spec->draft_max, SPEC_MAX_DRAFT, (double)spec->draft_min_p);
    if (spec->draft == ctx)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "speculation: the draft context must be another context");
    if (spec->draft) VKLLM_TRY(spec_check_vocab(ctx->model, spec->draft->model));
    spec_state *s = calloc(1, sizeof *s);
    size_t n_vocab = ctx->model->cfg.n_vocab;
    if (!s || !(s->p = malloc(n_vocab * sizeof *s->p)) || !(s->q = malloc(n_vocab * sizeof *s->q)) ||
        !(s->q_rows = malloc((size_t)spec->draft_max * n_vocab * sizeof *s->q_rows))) {
        spec_state_free(s);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "speculation state for %zu tokens", n_vocab);
    }
    if (spec->medusa) {
        vkllm_status st = spec_medusa_open(ctx, spec->medusa, &s->medusa);
        if (st == VKLLM_OK && spec->medusa_tree) {
            uint32_t heads = spec_medusa_heads(s->medusa), need;
            if (!(s->tree = malloc(sizeof *s->tree))) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "Medusa tree");
            if (st == VKLLM_OK) st = spec_tree_parse(spec->medusa_tree, heads, s->tree);
            /* a pass: the last one's kept path (up to one token per head), the root, the tree */
            if (st == VKLLM_OK && (need = heads + 1 + s->tree->n) > ctx->params.n_outputs_max)
                st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "speculation: a Medusa tree of %u nodes under %u heads "
                                "needs n_outputs_max >= %u, the context has %u", s->tree->n, heads, need,
                                ctx->params.n_outputs_max);
            if (st == VKLLM_OK && !ops_kv_plain(&ctx->kv))
                st = vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "speculation: Medusa trees need an F16 or F32 KV cache");
        }
        if (st != VKLLM_OK) {
            spec_state_free(s);
            return st;
        }
    }
    s->params = *spec;
    s->params.medusa = s->params.medusa_tree = NULL; /* read at this call only */
    /* one draft per head at most: a pass of heads + 1 rows is then one of the prepared sizes */
    if (s->medusa && s->params.draft_max > spec_medusa_heads(s->medusa)) s->params.draft_max = spec_medusa_heads(s->medusa);
    spec = &s->params;
    ctx->spec = s;
    /* a tree pass of each size it can have (after a kept path of 0..heads tokens) */
    for (uint32_t m = 0; s->tree && m <= spec_medusa_heads(s->medusa); m++)
        VKLLM_TRY(context_prepare_tree(ctx, m + 1 + s->tree->n, true));
    if (s->tree) return VKLLM_OK;
    /* Record the passes now (building their pipelines), rather than in the first passes of a generation, where
     * they would be counted against drafting: a verification pass of each size a greedy draft can have. */
    for (uint32_t k = 1; k < spec->draft_max; k = 2 * k + 1) VKLLM_TRY(context_prepare(ctx, k + 1, k + 1, true, true));
    VKLLM_TRY(context_prepare(ctx, spec->draft_max + 1, spec->draft_max + 1, true, true));
    /* The draft model's passes: its steps (greedy, or logits for draft_min_p and sampling) and its catch-up chunks
     * (powers of two, the last row wanting the next token) */
    vkllm_context *d = spec->draft;
    for (uint32_t n = 1; d && n <= 16; n *= 2) {
        VKLLM_TRY(context_prepare(d, n, 1, true, false));
        VKLLM_TRY(context_prepare(d, n, 1, false, false));
    }
    return VKLLM_OK;
}
