/* Fused mat-vec epilogues (shaders/matvec.comp STORE_QKV / STORE_SWIGLU) and their unfused fallbacks
 * (shaders/qkv_store.comp, activation.comp OP_SWIGLU_PAIRS). */
#include "matmul_fused.h"

#include "ops/check.h"
#include "matmul_record.h"

/* Push constants of qkv_store.glsl (struct QkvParams). */
typedef struct qkv_params {
    uint32_t q_rows, kv_rows, head_dim, n_rot;
    float freq_base, freq_scale;
    uint32_t has_bias, page_shift, n_pages, n_seqs, max_pages_per_seq;
} qkv_params;

uint32_t ops_rope_neox_source_row(uint32_t r, uint32_t n_rot)
{
    if (r >= n_rot) return r;
    return r % 2 ? r / 2 + n_rot / 2 : r / 2;
}

static vkllm_status check_qkv(const ops_context *ops, const ops_qkv *qkv, vkr_range x, uint32_t n,
                              const ops_qkv_dest *dst, uint32_t *cols)
{
    const char *op = "qkv_project";
    if (!qkv || !dst || !dst->kv || n == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: no weights, destination or tokens", op);
    uint32_t q_rows = qkv->n_head * qkv->head_dim, kv_rows = qkv->n_head_kv * qkv->head_dim;
    if (qkv->head_dim % 2 || qkv->n_rot % 2 || qkv->n_rot > qkv->head_dim || q_rows == 0 || kv_rows == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: head_dim %u and n_rot %u must be even, n_rot <= head_dim",
                          op, qkv->head_dim, qkv->n_rot);
    VKLLM_TRY(ops_check_rope_freq(op, qkv->freq_base, qkv->freq_scale));
    if (dst->kv->head_dim != qkv->head_dim || dst->kv->n_kv_heads != qkv->n_head_kv)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: cache of %u heads x %u dims for %u kv heads x %u dims", op,
                          dst->kv->n_kv_heads, dst->kv->head_dim, qkv->n_head_kv, qkv->head_dim);
    if (qkv->stacked) {
        if (qkv->stacked->rows != q_rows + 2 * kv_rows)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: stacked weight has %u rows, Q/K/V need %u", op,
                              qkv->stacked->rows, q_rows + 2 * kv_rows);
        *cols = qkv->stacked->cols;
    } else {
        if (!qkv->q || !qkv->k || !qkv->v || qkv->q->rows != q_rows || qkv->k->rows != kv_rows ||
            qkv->v->rows != kv_rows || qkv->k->cols != qkv->q->cols || qkv->v->cols != qkv->q->cols)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: Q/K/V weights missing or not %u/%u/%u rows of one width",
                              op, q_rows, kv_rows, kv_rows);
        *cols = qkv->q->cols;
    }
    VKLLM_TRY(ops_check_bytes(op, "x", x, 4ull * n * *cols));
    VKLLM_TRY(ops_check_bytes(op, "q", dst->q, 4ull * n * q_rows));
    VKLLM_TRY(ops_check_bytes(op, "tokens", dst->tokens, 8ull * n));
    if (qkv->bias.size) VKLLM_TRY(ops_check_bytes(op, "bias", qkv->bias, 4ull * (q_rows + 2 * kv_rows)));
    return ops_kv_check(ops, op, dst->kv, dst->k_cache, dst->v_cache, dst->page_table);
}

static qkv_params params_of(const ops_qkv *qkv, const ops_kv_layout *kv)
{
    return (qkv_params){qkv->n_head * qkv->head_dim, qkv->n_head_kv * qkv->head_dim, qkv->head_dim, qkv->n_rot,
                        qkv->freq_base, qkv->freq_scale, qkv->bias.size > 0, ops_kv_page_shift(kv), kv->n_pages,
                        kv->n_seqs, kv->max_pages_per_seq};
}

/* The store into a cache with a quantized side (shaders/qkv_store_blocks.comp): one invocation per pair of Q
 * rows and per pair of 32-value blocks of each token's K and V rows, quantizing as it writes. */
static vkllm_status qkv_store_blocks_pass(ops_context *ops, vkr_sequence *seq, const ops_qkv *qkv, uint32_t n,
                                          const ops_qkv_dest *dst, vkr_range bias)
{
    const char *const names[3][3] = {
        {NULL, SHADER(qkv_store_kf16_vq8_0), SHADER(qkv_store_kf16_vq4_0)},
        {SHADER(qkv_store_kq8_0_vf16), SHADER(qkv_store_kq8_0_vq8_0), SHADER(qkv_store_kq8_0_vq4_0)},
        {SHADER(qkv_store_kq4_0_vf16), SHADER(qkv_store_kq4_0_vq8_0), SHADER(qkv_store_kq4_0_vq4_0)},
    };
    const char *const rotated[2][3] = {
        {SHADER(qkv_store_kq8_0_vf16_rot), SHADER(qkv_store_kq8_0_vq8_0_rot), SHADER(qkv_store_kq8_0_vq4_0_rot)},
        {SHADER(qkv_store_kq4_0_vf16_rot), SHADER(qkv_store_kq4_0_vq8_0_rot), SHADER(qkv_store_kq4_0_vq4_0_rot)},
    };
    const ops_kv_layout *kv = dst->kv;
    /* ops_kv_check ran: no F32, and rotate_k only with a quantized K */
    const char *name = kv->rotate_k ? rotated[kv->k_type - OPS_KV_Q8_0][kv->v_type - OPS_KV_F16]
                                    : names[kv->k_type - OPS_KV_F16][kv->v_type - OPS_KV_F16];
    struct { uint32_t n_tokens; qkv_params p; } push = {n, params_of(qkv, kv)};
    uint64_t rows = push.p.q_rows + 2ull * push.p.kv_rows;
    uint64_t per_token = push.p.q_rows / 2 + 2ull * ((push.p.kv_rows / 32 + 1) / 2), total = per_token * n;
    if (total > INT32_MAX) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u tokens are too many", name, n);
    VKLLM_TRY(ops_check_bytes(name, "scratch", dst->scratch, 4ull * n * rows));
    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, name, 7, 0x1d, sizeof push, &wg, 1, &p));
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up((uint32_t)total, wg), groups);
    vkr_range bind[7] = {ops_head(dst->scratch, 4ull * n * rows), dst->q, bias, dst->tokens, dst->page_table,
                         dst->k_cache, dst->v_cache};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}

/* The pass over a stacked product in scratch: one invocation per pair of rows. */
static vkllm_status qkv_store_pass(ops_context *ops, vkr_sequence *seq, const ops_qkv *qkv, uint32_t n,
                                   const ops_qkv_dest *dst, vkr_range bias)
{
    if (!ops_kv_plain(dst->kv)) return qkv_store_blocks_pass(ops, seq, qkv, n, dst, bias);
    const char *name = dst->kv->k_type == OPS_KV_F16 ? SHADER(qkv_store_f16) : SHADER(qkv_store_f32);
    struct { uint32_t n_pairs; qkv_params p; } push = {0, params_of(qkv, dst->kv)};
    uint64_t rows = push.p.q_rows + 2ull * push.p.kv_rows, pairs = n * rows / 2;
    if (pairs > INT32_MAX) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u tokens are too many", name, n);
    push.n_pairs = (uint32_t)pairs;
    VKLLM_TRY(ops_check_bytes(name, "scratch", dst->scratch, 4ull * n * rows));
    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, name, 7, 0x1d, sizeof push, &wg, 1, &p));
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(push.n_pairs, wg), groups);
    vkr_range bind[7] = {ops_head(dst->scratch, 4ull * n * rows), dst->q, bias, dst->tokens, dst->page_table,
                         dst->k_cache, dst->v_cache};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}

vkllm_status ops_qkv_project(ops_context *ops, vkr_sequence *seq, const ops_qkv *qkv, vkr_range x, uint32_t n,
                             const ops_qkv_dest *dst)
{
    return ops_qkv_project_xq(ops, seq, qkv, x, (vkr_range){0}, n, dst);
}

vkllm_status ops_qkv_project_xq(ops_context *ops, vkr_sequence *seq, const ops_qkv *qkv, vkr_range x,
                                vkr_range x_q8, uint32_t n, const ops_qkv_dest *dst)
{
    uint32_t cols = 0;
    VKLLM_TRY(check_qkv(ops, qkv, x, n, dst, &cols));
    qkv_params params = params_of(qkv, dst->kv);
    uint32_t rows = params.q_rows + 2 * params.kv_rows;
    x = ops_head(x, 4ull * n * cols);
    vkr_range q = ops_head(dst->q, 4ull * n * params.q_rows);
    vkr_range bias = qkv->bias.size ? ops_head(qkv->bias, 4ull * rows) : x; /* bound but unread without bias */
    /* A quantized side needs whole 32-value blocks, which no mat-vec invocation holds: the product goes to
     * scratch and the store pass quantizes it. */
    if (qkv->stacked && ops_matmul_is_matvec(ops, n) && ops_matvec_pairs_rows(ops) && ops_kv_plain(dst->kv)) {
        matvec_store store = {.epilogue = dst->kv->k_type == OPS_KV_F16 ? MATVEC_QKV_F16 : MATVEC_QKV_F32, .n_extra = 5,
                              .extra = {bias, dst->tokens, dst->page_table, dst->k_cache, dst->v_cache},
                              .extra_readonly = 0x7, .push_tail = &params, .push_tail_bytes = sizeof params,
                              .x_q8 = x_q8};
        return ops_matvec_record(ops, seq, qkv->stacked, x, q, n, &store);
    }
    if (qkv->stacked) {
        VKLLM_TRY(ops_matmul_into_xq(ops, seq, qkv->stacked, x, x_q8, dst->scratch, n, rows, 0));
    } else {
        VKLLM_TRY(ops_matmul_into_xq(ops, seq, qkv->q, x, x_q8, dst->scratch, n, rows, 0));
        VKLLM_TRY(ops_matmul_into_xq(ops, seq, qkv->k, x, x_q8, dst->scratch, n, rows, params.q_rows));
        VKLLM_TRY(ops_matmul_into_xq(ops, seq, qkv->v, x, x_q8, dst->scratch, n, rows, params.q_rows + params.kv_rows));
    }
    return qkv_store_pass(ops, seq, qkv, n, dst, bias);
}

vkllm_status ops_swiglu_project(ops_context *ops, vkr_sequence *seq, const ops_weight *gate_up, vkr_range x,
                                vkr_range act, uint32_t n, vkr_range scratch)
{
    return ops_swiglu_project_xq(ops, seq, gate_up, x, (vkr_range){0}, act, n, scratch);
}

vkllm_status ops_swiglu_project_xq(ops_context *ops, vkr_sequence *seq, const ops_weight *gate_up, vkr_range x,
                                   vkr_range x_q8, vkr_range act, uint32_t n, vkr_range scratch)
{
    const char *op = "swiglu_project";
    if (!gate_up || n == 0 || gate_up->rows % 2)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: no weight, no tokens, or an odd number of rows", op);
    uint64_t act_elems = (uint64_t)n * (gate_up->rows / 2);
    VKLLM_TRY(ops_check_bytes(op, "x", x, 4ull * n * gate_up->cols));
    VKLLM_TRY(ops_check_bytes(op, "act", act, 4 * act_elems));
    if (ops_matmul_is_matvec(ops, n) && ops_matvec_pairs_rows(ops)) {
        matvec_store store = {.epilogue = MATVEC_SWIGLU, .x_q8 = x_q8};
        return ops_matvec_record(ops, seq, gate_up, ops_head(x, 4ull * n * gate_up->cols), ops_head(act, 4 * act_elems),
                                 n, &store);
    }
    VKLLM_TRY(ops_matmul_into_xq(ops, seq, gate_up, x, x_q8, scratch, n, gate_up->rows, 0));
    if (act_elems > UINT32_MAX) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u tokens are too many", op, n);
    uint32_t wg = ops->tuning->elementwise_wg, count = (uint32_t)act_elems;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, SHADER(swiglu_pairs_f32), 2, 0x1, sizeof count, &wg, 1, &p));
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(count, wg), groups);
    vkr_range bind[2] = {ops_head(scratch, 8 * act_elems), ops_head(act, 4 * act_elems)};
    return vkr_sequence_dispatch(seq, p, bind, &count, groups, "swiglu_pairs_f32");
}
