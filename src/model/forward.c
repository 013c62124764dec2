/* The llama-family forward pass, recorded once per batch shape (see context.h) and replayed.  Read top to
 * bottom it is the model: embedding, then per layer RMSNorm -> Q/K/V with RoPE and the KV write in the same
 * pass -> flash attention -> output projection + residual -> RMSNorm -> gate/up with SwiGLU in the same pass
 * -> down projection + residual (each residual add runs inside the RMSNorm after it, the last one on its
 * own); then the final norm on the rows that want logits, the LM head, and (greedy) argmax.
 * The same model in plain C, one loop per op, is tests/harness/ref_llama.c: the tests hold this pass to it. */
#include "context.h"
#include "ops/flash_attn.h"
#include "ops/matmul/matmul_fused.h"

#include <math.h>

#include "quant/quant.h"
#include "runtime/error.h"

#define W(b) vkr_whole(&(b))

/* RMSNorm of n rows of x (after adding `add`, if given) into out.  Where a product after it reads x quantized
 * (reads_q8: the mat-vec's integer path), the norm writes that form too, into the ops scratch (*out_q8), and the
 * products take it instead of quantizing x themselves (a dispatch fewer each); else *out_q8 is empty. */
static vkllm_status norm(const vkllm_model *m, vkr_sequence *seq, vkr_range x, const vkr_range *add, vkr_range w,
                         vkr_range out, uint32_t n, bool reads_q8, vkr_range *out_q8)
{
    ops_context *ops = m->ops;
    const model_config *c = &m->cfg;
    *out_q8 = (vkr_range){0};
    if (!reads_q8)
        return add ? ops_add_rms_norm_f32(ops, seq, x, *add, w, out, n, c->n_embd, c->rms_eps)
                   : ops_rms_norm_f32(ops, seq, x, w, out, n, c->n_embd, c->rms_eps);
    VKLLM_TRY(ops_scratch(ops, ops_q8_bytes(n, c->n_embd), out_q8));
    return add ? ops_add_rms_norm_f32_q8(ops, seq, x, *add, w, out, *out_q8, n, c->n_embd, c->rms_eps)
               : ops_rms_norm_f32_q8(ops, seq, x, w, out, *out_q8, n, c->n_embd, c->rms_eps);
}

/* Capture mode (context_capture_enable): the first `rows` rows of src into the (layer, kind) slot of the host
 * buffer.  The sequence recorder orders the copy after the op writing src and before the next one rewriting it. */
static vkllm_status capture(vkllm_context *ctx, vkr_sequence *seq, const forward_shape *s, uint32_t layer,
                            capture_kind kind, vkr_buffer *src, uint32_t rows)
{
    if (!s->capture) return VKLLM_OK;
    uint64_t bytes = 4ull * rows * context_capture_width(ctx, kind);
    return vkr_sequence_copy(seq, vkr_sub(src, 0, bytes),
                             vkr_sub(&ctx->capture, context_capture_offset(ctx, layer, kind), bytes));
}

/* Inputs staged on the host are copied to their device buffers first. */
static vkllm_status copy_inputs(vkllm_context *ctx, vkr_sequence *seq, const forward_shape *s)
{
    const vkllm_context_params *p = &ctx->params;
    struct { uint64_t off, bytes; vkr_buffer *dst; } parts[] = {
        {ctx->off_ids, 4ull * s->n_tokens, &ctx->ids},
        {ctx->off_tokens, 8ull * s->n_tokens, &ctx->tokens},
        {ctx->off_out_rows, 4ull * s->n_out, &ctx->out_rows},
        {ctx->off_page_table, 4ull * p->n_seq_max * ctx->kv.max_pages_per_seq, &ctx->page_table},
    };
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        VKLLM_TRY(vkr_sequence_copy(seq, vkr_sub(&ctx->host_in, parts[i].off, parts[i].bytes),
                                    vkr_sub(parts[i].dst, 0, parts[i].bytes)));
    if (s->tree)
        VKLLM_TRY(vkr_sequence_copy(seq, vkr_sub(&ctx->host_in, ctx->off_tree, 16ull * s->n_tokens),
                                    vkr_sub(&ctx->tree, 0, 16ull * s->n_tokens)));
    return VKLLM_OK;
}

static vkllm_status attention_block(vkllm_context *ctx, vkr_sequence *seq, uint32_t l, const forward_shape *s)
{
    const vkllm_model *m = ctx->model;
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[l];
    ops_context *ops = m->ops;
    uint32_t n = s->n_tokens;

    bool q8 = L->wqkv ? ops_matmul_reads_q8(ops, L->wqkv, n)
                      : ops_matmul_reads_q8(ops, L->wq, n) || ops_matmul_reads_q8(ops, L->wk, n) ||
                            ops_matmul_reads_q8(ops, L->wv, n);
    vkr_range hq, o = W(ctx->o); /* the previous layer's FFN output joins the residual here */
    VKLLM_TRY(norm(m, seq, W(ctx->x), l == 0 ? NULL : &o, W(L->attn_norm), W(ctx->h), n, q8, &hq));
    VKLLM_TRY(capture(ctx, seq, s, l, CAPTURE_ATTN_IN, &ctx->h, n));
    /* Q/K/V, bias, RoPE (Q/K rows are in the normal layout, see model.h) and the KV-cache write: one pass */
    /* A centered K cache: the model's bias with the mean key off (key_center.c), and attention adds it back */
    const uint32_t qkv_rows = (c->n_head + 2 * c->n_head_kv) * c->head_dim;
    const uint64_t center_bytes = 8ull * c->n_head_kv * ctx->kv.center_pairs;
    vkr_range bias = ctx->kv.center_pairs ? vkr_sub(&m->k_center_bias, 4ull * l * qkv_rows, 4ull * qkv_rows)
                                          : W(L->bqkv);
    ops_qkv qkv = {.stacked = L->wqkv, .q = L->wq, .k = L->wk, .v = L->wv, .bias = bias,
                   .n_head = c->n_head, .n_head_kv = c->n_head_kv, .head_dim = c->head_dim, .n_rot = c->n_rot,
                   .freq_base = c->rope_base, .freq_scale = c->rope_freq_scale};
    ops_qkv_dest dest = {.q = W(ctx->qr), .tokens = W(ctx->tokens), .page_table = W(ctx->page_table),
                         .k_cache = W(ctx->k_cache[l]), .v_cache = W(ctx->v_cache[l]), .kv = &ctx->kv,
                         .scratch = W(ctx->qkv)};
    VKLLM_TRY(ops_qkv_project_xq(ops, seq, &qkv, W(ctx->h), hq, n, &dest));
    ops_attention_shape shape = {.n_tokens = n, .n_heads = c->n_head, .max_context = s->max_context,
                                 .scale = 1.0f / sqrtf((float)c->head_dim), .kv = ctx->kv,
                                 .split_tokens = s->invariant ? 1 : 0, .one_sequence = s->one_seq,
                                 .n_rot = c->n_rot, .freq_base = c->rope_base, .freq_scale = c->rope_freq_scale};
    if (ctx->kv.center_pairs) shape.k_center = vkr_sub(&m->k_center, l * center_bytes, center_bytes);
    if (s->tree) { /* the tree's mask; the output projection quantizes the attention itself if it must */
        VKLLM_TRY(ops_flash_attention_tree(ops, seq, W(ctx->qr), W(ctx->k_cache[l]), W(ctx->v_cache[l]),
                                           W(ctx->page_table), W(ctx->tokens), W(ctx->tree), W(ctx->scratch),
                                           W(ctx->att), &shape));
        VKLLM_TRY(capture(ctx, seq, s, l, CAPTURE_ATTN_OUT, &ctx->att, n));
        return ops_matmul(ops, seq, L->wo, W(ctx->att), W(ctx->o), n);
    }
    if (!ops_matmul_reads_q8(ops, L->wo, n)) {
        VKLLM_TRY(ops_flash_attention(ops, seq, W(ctx->qr), W(ctx->k_cache[l]), W(ctx->v_cache[l]),
                                      W(ctx->page_table), W(ctx->tokens), W(ctx->scratch), W(ctx->att), &shape));
        VKLLM_TRY(capture(ctx, seq, s, l, CAPTURE_ATTN_OUT, &ctx->att, n));
        return ops_matmul(ops, seq, L->wo, W(ctx->att), W(ctx->o), n); /* added to x by the FFN's norm */
    }
    /* The output projection reads the attention quantized: the attention writes that form too */
    vkr_range attq;
    VKLLM_TRY(ops_scratch(ops, ops_q8_bytes(n, L->wo->cols), &attq));
    VKLLM_TRY(ops_flash_attention_q8(ops, seq, W(ctx->qr), W(ctx->k_cache[l]), W(ctx->v_cache[l]), W(ctx->page_table),
                                     W(ctx->tokens), W(ctx->scratch), W(ctx->att), attq, &shape));
    VKLLM_TRY(capture(ctx, seq, s, l, CAPTURE_ATTN_OUT, &ctx->att, n));
    return ops_matmul_into_xq(ops, seq, L->wo, W(ctx->att), attq, W(ctx->o), n, L->wo->rows, 0);
}

static vkllm_status ffn_block(vkllm_context *ctx, vkr_sequence *seq, uint32_t l, const forward_shape *s)
{
    const vkllm_model *m = ctx->model;
    const model_config *c = &m->cfg;
    const model_layer *L = &m->layers[l];
    ops_context *ops = m->ops;
    uint32_t n = s->n_tokens;

    bool q8 = L->w_gate_up ? ops_matmul_reads_q8(ops, L->w_gate_up, n)
                           : ops_matmul_reads_q8(ops, L->w_gate, n) || ops_matmul_reads_q8(ops, L->w_up, n);
    vkr_range hq, o = W(ctx->o);
    VKLLM_TRY(norm(m, seq, W(ctx->x), &o, W(L->ffn_norm), W(ctx->h), n, q8, &hq));
    VKLLM_TRY(capture(ctx, seq, s, l, CAPTURE_FFN_IN, &ctx->h, n));
    if (L->w_gate_up) {
        VKLLM_TRY(ops_swiglu_project_xq(ops, seq, L->w_gate_up, W(ctx->h), hq, W(ctx->act), n, W(ctx->gate_up)));
    } else { /* gate and up of different types: two products into the halves of the scratch */
        vkr_range gate = vkr_sub(&ctx->gate_up, 0, 4ull * n * c->n_ff);
        vkr_range up = vkr_sub(&ctx->gate_up, 4ull * n * c->n_ff, 4ull * n * c->n_ff);
        VKLLM_TRY(ops_matmul_into_xq(ops, seq, L->w_gate, W(ctx->h), hq, gate, n, c->n_ff, 0));
        VKLLM_TRY(ops_matmul_into_xq(ops, seq, L->w_up, W(ctx->h), hq, up, n, c->n_ff, 0));
        VKLLM_TRY(ops_swiglu_f32(ops, seq, gate, up, W(ctx->act), n * c->n_ff));
    }
    VKLLM_TRY(capture(ctx, seq, s, l, CAPTURE_FFN_ACT, &ctx->act, n));
    return ops_matmul(ops, seq, L->w_down, W(ctx->act), W(ctx->o), n); /* added by the next norm */
}

/* Final norm and LM head on the rows that want logits; greedy: argmax on the device. */
static vkllm_status head(vkllm_context *ctx, vkr_sequence *seq, const forward_shape *s)
{
    const vkllm_model *m = ctx->model;
    const model_config *c = &m->cfg;
    ops_context *ops = m->ops;
    VKLLM_TRY(ops_get_rows(ops, seq, QUANT_F32, W(ctx->x), W(ctx->out_rows), W(ctx->xo), s->n_tokens, c->n_embd,
                           s->n_out));
    vkr_range hq;
    VKLLM_TRY(norm(m, seq, W(ctx->xo), NULL, W(m->output_norm), W(ctx->ho), s->n_out,
                   ops_matmul_reads_q8(ops, m->output, s->n_out), &hq));
    VKLLM_TRY(capture(ctx, seq, s, c->n_layer, CAPTURE_OUTPUT, &ctx->ho, s->n_out));
    VKLLM_TRY(ops_matmul_into_xq(ops, seq, m->output, W(ctx->ho), hq, W(ctx->logits), s->n_out, c->n_vocab, 0));
    uint64_t logits_bytes = 4ull * s->n_out * c->n_vocab;
    if (ctx->params.output_hidden) {
        uint64_t bytes = 4ull * s->n_out * c->n_embd;
        VKLLM_TRY(vkr_sequence_copy(seq, vkr_sub(&ctx->ho, 0, bytes),
                                    vkr_sub(&ctx->host_out, context_hidden_offset(ctx), bytes)));
    }
    if (s->greedy) {
        VKLLM_TRY(ops_argmax_f32(ops, seq, W(ctx->logits), W(ctx->argmax), s->n_out, c->n_vocab));
        uint64_t at = 4ull * ctx->params.n_outputs_max * c->n_vocab;
        return vkr_sequence_copy(seq, vkr_sub(&ctx->argmax, 0, 4ull * s->n_out), vkr_sub(&ctx->host_out, at, 4ull * s->n_out));
    }
    return vkr_sequence_copy(seq, vkr_sub(&ctx->logits, 0, logits_bytes), vkr_sub(&ctx->host_out, 0, logits_bytes));
}

static vkllm_status record(vkllm_context *ctx, vkr_sequence *seq, const forward_shape *s, uint32_t first, uint32_t end)
{
    const vkllm_model *m = ctx->model;
    VKLLM_TRY(vkr_sequence_begin(seq));
    /* After all compute and transfer work submitted before it: the previous part of this pass, or a pass of another
     * context of the model still in flight (vkllm_decode_submit), which uses the same ops scratch. */
    VKLLM_TRY(vkr_sequence_barrier(seq));
    if (first == 0) {
        VKLLM_TRY(copy_inputs(ctx, seq, s));
        VKLLM_TRY(ops_get_rows(m->ops, seq, m->token_embd_type, W(m->token_embd), W(ctx->ids), W(ctx->x),
                               m->cfg.n_vocab, m->cfg.n_embd, s->n_tokens));
    }
    for (uint32_t l = first; l < end; l++) {
        VKLLM_TRY(attention_block(ctx, seq, l, s));
        VKLLM_TRY(ffn_block(ctx, seq, l, s));
    }
    if (end < m->cfg.n_layer) return vkr_sequence_end(seq);
    uint32_t n_x = s->n_tokens * m->cfg.n_embd; /* the last layer's FFN output */
    VKLLM_TRY(ops_binary_f32(m->ops, seq, OPS_ADD, W(ctx->x), W(ctx->o), W(ctx->x), n_x, n_x));
    VKLLM_TRY(head(ctx, seq, s));
    return vkr_sequence_end(seq);
}

vkllm_status forward_record(vkllm_context *ctx, vkr_sequence *seq, const forward_shape *s, uint32_t first,
                            uint32_t end)
{
    if (!s->invariant) return record(ctx, seq, s, first, end);
    /* A verification pass: the weight products run the mat-vec at every n, as single-token decoding does (its
     * per-row reduction order does not depend on n; the tiled and cooperative-matrix mat-muls' does), and attention
     * runs flash_attn.comp however many tokens (the cooperative-matrix prompt attention sums in another order).  The
     * tuning is swapped for the recording only: the recorded dispatches keep what they were recorded with. */
    ops_context *ops = ctx->model->ops;
    const op_tuning *saved = ops->tuning;
    ctx->invariant_tuning = *saved;
    ctx->invariant_tuning.matmul_min_n = UINT32_MAX;
    ctx->invariant_tuning.attn_cm_min_tokens = UINT32_MAX; /* flash_attn.comp, as decoding: not the coopmat one */
    ops->tuning = &ctx->invariant_tuning;
    vkllm_status st = record(ctx, seq, s, first, end);
    ops->tuning = saved;
    return st;
}
