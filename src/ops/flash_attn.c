/* Flash attention over the paged KV cache: shaders/flash_attn.comp, and for long contexts split over
 * workgroups, shaders/flash_attn_combine.comp.  See flash_attn.h for the layouts. */
#include "flash_attn.h"

#include <math.h>

#include "check.h"
#include "matmul/matmul.h"

/* Keeps every loop of the shader far below lavapipe's silent cut at 65,535 iterations. */
#define ATTN_MAX_TILES_PER_SPLIT 16384u

/* How a shape is spread over workgroups; fixed at record time from max_context. */
typedef struct attn_plan {
    uint32_t wg;             /* invocations per workgroup */
    uint32_t keys_per_lane;  /* per tile */
    uint32_t n_splits;       /* workgroups per (token, head) row */
    uint32_t split_len;      /* keys per split, a multiple of the tile wg * keys_per_lane */
} attn_plan;

static attn_plan plan_of(const ops_context *ops, const ops_attention_shape *s)
{
    const op_tuning *tu = ops->tuning;
    attn_plan p = {.wg = tu->attn_wg};
    p.keys_per_lane = tu->attn_block_kv > p.wg ? tu->attn_block_kv / p.wg : 1;
    uint32_t tile = p.wg * p.keys_per_lane;
    uint32_t context = s->max_context ? s->max_context : 1;
    uint64_t rows = (uint64_t)(s->split_tokens ? s->split_tokens : s->n_tokens) * s->n_heads;
    uint32_t wanted = vkr_div_up(context, tu->attn_split_kv > tile ? tu->attn_split_kv : tile);
    uint32_t room = rows >= tu->attn_split_rows ? 1 : (uint32_t)(tu->attn_split_rows / rows);
    p.n_splits = wanted < room ? wanted : room;
    /* However few rows, a split holds at most ATTN_MAX_TILES_PER_SPLIT tiles. */
    uint32_t least = vkr_div_up(vkr_div_up(context, tile), ATTN_MAX_TILES_PER_SPLIT);
    if (p.n_splits < least) p.n_splits = least;
    p.split_len = vkr_div_up(vkr_div_up(context, p.n_splits), tile) * tile;
    return p;
}

/* Query heads attended in one pass over the keys (the tuning's attn_gqa_values): the largest divisor of the GQA group
 * whose queries hold at most that many values, so that a pass never spans two KV heads. */
static uint32_t gqa_pass(const ops_context *ops, const ops_attention_shape *s)
{
    if (!s->kv.n_kv_heads || !s->kv.head_dim) return 1; /* a bad shape: check_shape says why */
    const uint32_t group = s->n_heads / s->kv.n_kv_heads, cap = ops->tuning->attn_gqa_values / s->kv.head_dim;
    uint32_t pass = 1;
    for (uint32_t d = 2; d <= group && d <= cap; d++)
        if (group % d == 0) pass = d;
    return pass;
}

/* Tokens a workgroup takes (the tuning's attn_token_values, for a batch of one sequence): as many as hold at most
 * that many query values with the GQA pass, at most 8, spread evenly (5 tokens at a bound of 4: 3 + 2, not 4 + 1,
 * whose lone token would cost a full pass's arithmetic). */
#define ATTN_MAX_TOKEN_PASS 8u
static uint32_t token_pass(const ops_context *ops, const ops_attention_shape *s)
{
    const uint32_t values = ops->tuning->attn_token_values, per_token = gqa_pass(ops, s) * s->kv.head_dim;
    if (!s->one_sequence || s->n_tokens < 2 || !per_token || values < 2 * per_token) return 1;
    uint32_t cap = values / per_token;
    if (cap > ATTN_MAX_TOKEN_PASS) cap = ATTN_MAX_TOKEN_PASS;
    if (cap > s->n_tokens) cap = s->n_tokens;
    const uint32_t groups = vkr_div_up(s->n_tokens, cap);
    return vkr_div_up(s->n_tokens, groups);
}

/* Heads a workgroup takes in turn (the tuning's attn_wgs_per_worker): as many as keep at least that many workgroups
 * per CPU worker thread in the dispatch, all of its tokens' on a device computing on one thread; whole passes of
 * gqa_pass heads. */
static uint32_t heads_per_workgroup(const ops_context *ops, const ops_attention_shape *s, uint32_t n_splits)
{
    const uint32_t per_worker = ops->tuning->attn_wgs_per_worker, workers = ops->cpu_workers;
    const uint32_t pass = gqa_pass(ops, s);
    if (per_worker == 0) return pass;
    const uint64_t wanted = workers > 1 ? (uint64_t)per_worker * workers : 1;
    const uint64_t per_token = (uint64_t)vkr_div_up(s->n_tokens, token_pass(ops, s)) * n_splits;
    const uint64_t groups = (wanted + per_token - 1) / per_token; /* head groups each token needs */
    const uint32_t hpw = (uint32_t)(s->n_heads / (groups < s->n_heads ? groups : s->n_heads));
    return hpw > pass ? hpw - hpw % pass : pass;
}

static uint64_t scratch_bytes_of(const ops_attention_shape *s, const attn_plan *p)
{
    if (p->n_splits == 1) return 0;
    return (uint64_t)s->n_tokens * s->n_heads * p->n_splits * (s->kv.head_dim + 4) * 4;
}

uint32_t ops_attention_heads_per_workgroup(const ops_context *ops, const ops_attention_shape *shape)
{
    return heads_per_workgroup(ops, shape, plan_of(ops, shape).n_splits);
}

uint32_t ops_attention_gqa_pass(const ops_context *ops, const ops_attention_shape *shape)
{
    return gqa_pass(ops, shape);
}

uint32_t ops_attention_token_pass(const ops_context *ops, const ops_attention_shape *shape)
{
    return token_pass(ops, shape);
}

uint32_t ops_attention_splits(const ops_context *ops, const ops_attention_shape *shape)
{
    return plan_of(ops, shape).n_splits;
}

uint64_t ops_attention_scratch_bytes(const ops_context *ops, const ops_attention_shape *shape)
{
    attn_plan p = plan_of(ops, shape);
    return scratch_bytes_of(shape, &p);
}

static vkllm_status check_shape(const ops_context *ops, const char *name, const ops_attention_shape *s)
{
    if (s->n_tokens == 0 || s->n_heads == 0 || s->max_context == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: n_tokens %u, n_heads %u, max_context %u must be non-zero",
                          name, s->n_tokens, s->n_heads, s->max_context);
    if (s->kv.n_kv_heads == 0 || s->n_heads % s->kv.n_kv_heads)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: n_heads %u must be a multiple of n_kv_heads %u", name,
                          s->n_heads, s->kv.n_kv_heads);
    if ((uint64_t)s->n_tokens * s->n_heads * s->kv.head_dim > INT32_MAX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u tokens x %u heads x %u dims is too large a batch",
                          name, s->n_tokens, s->n_heads, s->kv.head_dim);
    if (!isfinite(s->scale))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: scale %g is not finite", name, (double)s->scale);
    return VKLLM_OK;
}

typedef struct attn_push {
    uint32_t n_tokens, n_heads, group, n_kv_heads;
    uint32_t page_shift, n_pages, n_seqs, max_pages_per_seq;
    uint32_t n_splits, split_len;
    float scale_log2;
    uint32_t heads_per_wg;
    float freq_base, freq_scale; /* a centered K cache (kv.center_pairs) */
} attn_push;

typedef struct combine_push {
    uint32_t n_tokens, n_heads, n_seqs, max_positions;
    uint32_t n_splits, split_len;
} combine_push;

static vkllm_status record_combine(ops_context *ops, vkr_sequence *seq, vkr_range scratch, vkr_range tokens,
                                   vkr_range out, const vkr_range *out_q8, const ops_attention_shape *s,
                                   const attn_plan *plan)
{
    uint32_t spec[2] = {plan->wg, s->kv.head_dim / 4};
    const vkr_pipeline *p;
    const char *name = out_q8 ? SHADER(flash_attn_combine_q8) : SHADER(flash_attn_combine);
    VKLLM_TRY(ops_pipeline(ops, name, out_q8 ? 4 : 3, 0x3, sizeof(combine_push), spec, 2, &p));
    combine_push push = {s->n_tokens, s->n_heads, s->kv.n_seqs, s->kv.max_pages_per_seq * s->kv.page_size,
                         plan->n_splits, plan->split_len};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, s->n_tokens * s->n_heads, groups);
    vkr_range bind[4] = {scratch, tokens, out, out_q8 ? *out_q8 : out};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, name);
}

/* The variant for the cache's types: [k][v] over F16, Q8_0, Q4_0 (F16 with F16 is flash_attn_f16); texel: its
 * _tx twin, which reads K and V through uniform texel buffers. */
static const char *variant_of(const ops_kv_layout *kv, bool texel)
{
    const char *const mixed[2][3][3] = {
        {{NULL, SHADER(flash_attn_kf16_vq8_0), SHADER(flash_attn_kf16_vq4_0)},
         {SHADER(flash_attn_kq8_0_vf16), SHADER(flash_attn_kq8_0_vq8_0), SHADER(flash_attn_kq8_0_vq4_0)},
         {SHADER(flash_attn_kq4_0_vf16), SHADER(flash_attn_kq4_0_vq8_0), SHADER(flash_attn_kq4_0_vq4_0)}},
        {{NULL, SHADER(flash_attn_kf16_vq8_0_tx), SHADER(flash_attn_kf16_vq4_0_tx)},
         {SHADER(flash_attn_kq8_0_vf16_tx), SHADER(flash_attn_kq8_0_vq8_0_tx), SHADER(flash_attn_kq8_0_vq4_0_tx)},
         {SHADER(flash_attn_kq4_0_vf16_tx), SHADER(flash_attn_kq4_0_vq8_0_tx), SHADER(flash_attn_kq4_0_vq4_0_tx)}},
    };
    if (ops_kv_plain(kv)) {
        if (kv->k_type == OPS_KV_F16) return texel ? SHADER(flash_attn_f16_tx) : SHADER(flash_attn_f16);
        return texel ? SHADER(flash_attn_f32_tx) : SHADER(flash_attn_f32);
    }
    if (kv->k_type == OPS_KV_F32 || kv->v_type == OPS_KV_F32 || kv->k_type > OPS_KV_Q4_0 || kv->v_type > OPS_KV_Q4_0)
        return NULL;
    return mixed[texel][kv->k_type - OPS_KV_F16][kv->v_type - OPS_KV_F16];
}

/* The texel format flash_attn.comp's TEXEL_KV views a cache side in: an F32 chunk of 4 values; F16: two chunks of 4
 * values as four packed words where a head holds whole pairs of chunks (head_dim % 8 == 0: a fetch less per 8 values,
 * K_F16_TEXELS), else a chunk as two words; four words of a quantized side's records. */
static VkFormat texel_format_of(ops_kv_type type, uint32_t head_dim)
{
    if (type == OPS_KV_F16) return head_dim % 8 == 0 ? VK_FORMAT_R32G32B32A32_UINT : VK_FORMAT_R32G32_UINT;
    return type == OPS_KV_F32 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32G32B32A32_UINT;
}

/* Whether a quantized side's token records are whole RGBA32UI texels, so the _tx variants read a block's quant
 * words four per fetch (their K_RECORDS_QUAD / V_RECORDS_QUAD). */
static bool records_quad(const ops_kv_layout *kv, ops_kv_type type)
{
    return ops_kv_type_quantized(type) && ops_kv_row_bytes(kv, type) % 16 == 0;
}

static bool fits_texel_view(const ops_context *ops, vkr_range r, VkFormat format)
{
    return vkr_uniform_texel_format(ops->dev, format) && vkr_texel_range_fits(ops->dev, &r, format);
}

/* Whether flash_attn.comp reads Q, K and V as texels (the _tx variants): where the tuning's texel_loads asks for it
 * (lavapipe gathers texels with vector addressing; a storage-buffer load, even at an address the same for every
 * lane, is a scalar loop over the lanes), the device has texel buffers (not VKLLM_DISABLE_TEXEL), the workgroup is
 * one subgroup with subgroup arithmetic (the _tx variants merge their lanes with it, not through shared memory; not
 * VKLLM_DISABLE_SUBGROUP) and each range fits one view; else the storage-buffer variants, which read the same words
 * and merge through shared memory. */
bool ops_attention_reads_texels(const ops_context *ops, const ops_kv_layout *kv, vkr_range q, vkr_range k_cache,
                                vkr_range v_cache)
{
    return ops->tuning->texel_loads && ops->caps->texel_rgba32 && ops->caps->subgroup_arithmetic &&
           ops_one_subgroup(ops, ops->tuning->attn_wg) &&
           fits_texel_view(ops, q, VK_FORMAT_R32G32B32A32_SFLOAT) &&
           fits_texel_view(ops, k_cache, texel_format_of(kv->k_type, kv->head_dim)) &&
           fits_texel_view(ops, v_cache, texel_format_of(kv->v_type, kv->head_dim));
}

/* How the prompt attention on cooperative matrices (shaders/flash_attn_coopmat.comp) would run this shape. */
typedef struct attn_cm_plan {
    uint32_t wg, keys, sg;
    bool pin;
    uint32_t rows;           /* tokens per workgroup: subgroups x the matrices' M */
    uint64_t shared;         /* bytes of shared memory, as the shader declares it */
} attn_cm_plan;

/* Does the shape take the cooperative-matrix attention?  Where the device has cooperative matrices, the batch
 * has at least the tuning's attn_cm_min_tokens tokens and the head and key tiles split into the device's
 * matrices within its limits; otherwise flash_attn.comp serves every shape, so no error. */
static bool plan_coopmat(const ops_context *ops, const ops_attention_shape *s, attn_cm_plan *cp)
{
    const vkr_caps *c = ops->caps;
    const op_tuning *tu = ops->tuning;
    if (c->coopmat == VKR_COOPMAT_NONE || s->n_tokens < tu->attn_cm_min_tokens) return false;
    /* The tiles are loaded as F32 / F16 matrices straight from the cache: a quantized side would need a
     * dequantizing load the shader does not have, so such caches always take flash_attn.comp. */
    if (!ops_kv_plain(&s->kv)) return false;
    bool pin;
    uint32_t sg;
    if (ops_coopmat_subgroup(c, &tu->coopmat, &sg, &pin) != VKLLM_OK) {
        vkllm_clear_error();
        return false;
    }
    uint32_t m = c->coopmat_m, n = c->coopmat_n, k = c->coopmat_k, d = s->kv.head_dim, wg = tu->attn_cm_wg;
    uint32_t keys = tu->attn_cm_keys;
    bool emulated = c->coopmat == VKR_COOPMAT_EMULATED;
    if (!m || !n || !k || !sg || wg % sg || d % k || d % n || keys % k || keys % n || n > keys ||
        (emulated && (m * n) % sg))
        return false;
    uint32_t rows = wg / sg * m;
    if (!emulated && rows > 2 * keys) return false; /* Q is staged in the K/V tiles */
    if (wg > c->max_workgroup_invocations || wg > c->max_workgroup_size[0] ||
        (!emulated && c->max_workgroup_subgroups && wg / sg > c->max_workgroup_subgroups))
        return false;
    uint64_t shared = 2ull * 2 * keys * (d + 8) + 4ull * rows * (keys + 4) + 2ull * rows * (keys + 8) +
                      16ull * rows + 4ull * keys + (emulated ? 2ull * rows * (d + 8) : 0);
    if (shared > c->max_shared_memory) return false;
    *cp = (attn_cm_plan){.wg = wg, .keys = keys, .sg = sg, .pin = pin, .rows = rows, .shared = shared};
    return true;
}

bool ops_attention_uses_coopmat(const ops_context *ops, const ops_attention_shape *shape)
{
    attn_cm_plan cp;
    return plan_coopmat(ops, shape, &cp);
}

typedef struct attn_cm_push {
    uint32_t n_tokens, n_heads, group, n_kv_heads;
    uint32_t page_shift, n_pages, n_seqs, max_pages_per_seq;
    uint32_t max_context;
    float scale_log2;
} attn_cm_push;

static vkllm_status record_coopmat(ops_context *ops, vkr_sequence *seq, vkr_range q, vkr_range k_cache,
                                   vkr_range v_cache, vkr_range page_table, vkr_range tokens, vkr_range out,
                                   const ops_attention_shape *s, const attn_cm_plan *cp)
{
    const vkr_caps *c = ops->caps;
    const char *name;
    if (c->coopmat == VKR_COOPMAT_KHR)
        name = s->kv.k_type == OPS_KV_F16 ? SHADER(flash_attn_f16_cm_khr) : SHADER(flash_attn_f32_cm_khr);
    else if (c->coopmat == VKR_COOPMAT_NV)
        name = s->kv.k_type == OPS_KV_F16 ? SHADER(flash_attn_f16_cm_nv) : SHADER(flash_attn_f32_cm_nv);
    else
        name = s->kv.k_type == OPS_KV_F16 ? SHADER(flash_attn_f16_cm_emu) : SHADER(flash_attn_f32_cm_emu);
    vkr_pipeline_desc desc = {.shader = name, .n_bindings = 6, .readonly_mask = 0x1f,
                              .push_size = (uint32_t)sizeof(attn_cm_push), .n_spec = 11,
                              .required_subgroup_size = cp->pin ? cp->sg : 0, .full_subgroups = cp->pin && c->full_subgroups,
                              .spec = {cp->wg, s->kv.head_dim, cp->keys, 0, cp->sg, 0, 0, 0,
                                       c->coopmat_m, c->coopmat_n, c->coopmat_k}};
    const vkr_pipeline *p;
    VKLLM_TRY(vkr_pipeline_get(ops->dev, &desc, &p));
    attn_cm_push push = {s->n_tokens, s->n_heads, s->n_heads / s->kv.n_kv_heads, s->kv.n_kv_heads,
                         ops_kv_page_shift(&s->kv), s->kv.n_pages, s->kv.n_seqs, s->kv.max_pages_per_seq,
                         s->max_context, s->scale * 1.4426950408889634f};
    if (s->n_heads > c->max_workgroup_count[1])
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u heads exceed the device's grid", name, s->n_heads);
    uint32_t groups[3] = {vkr_div_up(s->n_tokens, cp->rows), s->n_heads, 1};
    vkr_range bind[6] = {q, k_cache, v_cache, page_table, tokens, out};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, "flash_attn coopmat");
}

/* out_q8: also out quantized (ops_flash_attention_q8), or NULL. */
static vkllm_status attention(ops_context *ops, vkr_sequence *seq, vkr_range q, vkr_range k_cache, vkr_range v_cache,
                              vkr_range page_table, vkr_range tokens, vkr_range scratch, vkr_range out,
                              const vkr_range *out_q8, const vkr_range *tree, const ops_attention_shape *s)
{
    bool texel = ops_attention_reads_texels(ops, &s->kv, q, k_cache, v_cache);
    const char *name = variant_of(&s->kv, texel);
    if (tree) {
        if (!ops_kv_plain(&s->kv) || out_q8)
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "flash_attn tree: F32 or F16 caches (not %s / %s) and a float "
                              "output only", ops_kv_type_name(s->kv.k_type), ops_kv_type_name(s->kv.v_type));
        if (s->kv.k_type == OPS_KV_F16)
            name = texel ? SHADER(flash_attn_f16_tree_tx) : SHADER(flash_attn_f16_tree);
        else
            name = texel ? SHADER(flash_attn_f32_tree_tx) : SHADER(flash_attn_f32_tree);
        VKLLM_TRY(ops_check_bytes(name, "tree", *tree, 16ull * s->n_tokens));
    }
    if (!name) {
        VKLLM_TRY(ops_kv_check(ops, "flash_attn", &s->kv, k_cache, v_cache, page_table)); /* says why */
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "flash_attn: K cache %s with V cache %s",
                          ops_kv_type_name(s->kv.k_type), ops_kv_type_name(s->kv.v_type));
    }
    VKLLM_TRY(check_shape(ops, name, s));
    VKLLM_TRY(ops_kv_check(ops, name, &s->kv, k_cache, v_cache, page_table));
    if (s->kv.center_pairs) {
        if (s->n_rot > s->kv.head_dim || s->n_rot % 2 || 2 * s->kv.center_pairs > s->n_rot)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u centered RoPE pairs of %u rotated dims of %u",
                              name, s->kv.center_pairs, s->n_rot, s->kv.head_dim);
        VKLLM_TRY(ops_check_rope_freq(name, s->freq_base, s->freq_scale));
        VKLLM_TRY(ops_check_bytes(name, "k_center", s->k_center, 8ull * s->kv.n_kv_heads * s->kv.center_pairs));
    }
    uint64_t rows = (uint64_t)s->n_tokens * s->n_heads;
    VKLLM_TRY(ops_check_bytes(name, "q", q, rows * s->kv.head_dim * 4));
    VKLLM_TRY(ops_check_bytes(name, "out", out, rows * s->kv.head_dim * 4));
    VKLLM_TRY(ops_check_bytes(name, "tokens", tokens, 8ull * s->n_tokens));
    uint32_t cols = s->n_heads * s->kv.head_dim;
    if (out_q8) {
        if (cols % 32)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: a quantized output needs rows in blocks of 32, not %u",
                              name, cols);
        VKLLM_TRY(ops_check_bytes(name, "out_q8", *out_q8, ops_q8_bytes(s->n_tokens, cols)));
    }
    vkr_range out_head = ops_head(out, rows * s->kv.head_dim * 4);
    attn_cm_plan cm;
    if (!tree && plan_coopmat(ops, s, &cm)) {
        VKLLM_TRY(record_coopmat(ops, seq, q, k_cache, v_cache, page_table, tokens, out, s, &cm));
        return out_q8 ? ops_quantize_q8(ops, seq, out_head, s->n_tokens, cols, *out_q8) : VKLLM_OK;
    }

    attn_plan plan = plan_of(ops, s);
    uint64_t scratch_bytes = scratch_bytes_of(s, &plan);
    if (scratch_bytes > ops->caps->max_storage_buffer_range)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: scratch of %llu bytes is above maxStorageBufferRange %llu",
                          name, (unsigned long long)scratch_bytes,
                          (unsigned long long)ops->caps->max_storage_buffer_range);
    if (scratch_bytes) VKLLM_TRY(ops_check_bytes(name, "scratch", scratch, scratch_bytes));
    uint32_t head_dim4 = s->kv.head_dim / 4;
    uint64_t shared = (uint64_t)plan.wg * (16 * head_dim4 + 8) + (out_q8 ? 24ull * head_dim4 : 0);
    if (shared > ops->caps->max_shared_memory)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: head_dim %u with %u invocations needs %llu bytes of shared "
                          "memory, the device has %u", name, s->kv.head_dim, plan.wg, (unsigned long long)shared,
                          ops->caps->max_shared_memory);
    uint32_t hpw = heads_per_workgroup(ops, s, plan.n_splits), tp = token_pass(ops, s);
    uint64_t groups_total = (uint64_t)vkr_div_up(s->n_tokens, tp) * vkr_div_up(s->n_heads, hpw) * plan.n_splits;
    if (groups_total > UINT32_MAX ||
        groups_total > (uint64_t)ops->caps->max_workgroup_count[0] * ops->caps->max_workgroup_count[1])
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %llu workgroups exceed the device's grid", name,
                          (unsigned long long)groups_total);

    /* The quantized output: written by this pass where it has one split, by the combine pass after a split (both
     * for heads of whole 32-element blocks), else by a quantize dispatch at the end. */
    /* (No _q8 variants of the quantized caches' shaders: their output is quantized by the combine pass or the
     * dispatch at the end.) */
    bool direct_q8 = out_q8 && plan.n_splits == 1 && s->kv.head_dim % 32 == 0 && ops_kv_plain(&s->kv);
    bool combine_q8 = out_q8 && plan.n_splits > 1 && s->kv.head_dim % 32 == 0;
    if (direct_q8 && s->kv.k_type == OPS_KV_F16)
        name = texel ? SHADER(flash_attn_f16_q8_tx) : SHADER(flash_attn_f16_q8);
    else if (direct_q8)
        name = texel ? SHADER(flash_attn_f32_q8_tx) : SHADER(flash_attn_f32_q8);
    /* A quantized K's variants read the mean key of a centered cache at binding 6 (bound, unread, when it is not) */
    bool k_quant = ops_kv_type_quantized(s->kv.k_type);
    vkr_pipeline_desc desc = {.shader = name, .n_bindings = direct_q8 || tree || k_quant ? 7 : 6,
                              .readonly_mask = tree || k_quant ? 0x5f : 0x1f, .push_size = sizeof(attn_push),
                              .n_spec = k_quant ? 10 : 7,
                              .spec = {plan.wg, head_dim4, plan.keys_per_lane, texel && records_quad(&s->kv, s->kv.k_type),
                                       texel && records_quad(&s->kv, s->kv.v_type), gqa_pass(ops, s), tp,
                                       s->kv.center_pairs,
                                       s->kv.center_pairs && s->kv.rotate_k ? ops_kv_rotation_segment(s->kv.head_dim) : 0,
                                       s->kv.center_pairs ? s->n_rot : 0}};
    if (texel) {
        desc.texel_format[0] = VK_FORMAT_R32G32B32A32_SFLOAT;
        desc.texel_format[1] = texel_format_of(s->kv.k_type, s->kv.head_dim);
        desc.texel_format[2] = texel_format_of(s->kv.v_type, s->kv.head_dim);
    }
    const vkr_pipeline *p;
    VKLLM_TRY(vkr_pipeline_get(ops->dev, &desc, &p));
    attn_push push = {s->n_tokens,
                      s->n_heads,
                      s->n_heads / s->kv.n_kv_heads,
                      s->kv.n_kv_heads,
                      ops_kv_page_shift(&s->kv),
                      s->kv.n_pages,
                      s->kv.n_seqs,
                      s->kv.max_pages_per_seq,
                      plan.n_splits,
                      plan.split_len,
                      s->scale * 1.4426950408889634f,
                      hpw,
                      s->freq_base,
                      s->freq_scale};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, (uint32_t)groups_total, groups);
    vkr_range bind[7] = {q, k_cache, v_cache, page_table, tokens, plan.n_splits > 1 ? scratch : out,
                         direct_q8 ? *out_q8 : tree ? *tree : s->kv.center_pairs ? s->k_center : page_table};
    VKLLM_TRY(vkr_sequence_dispatch(seq, p, bind, &push, groups, name));
    if (plan.n_splits > 1)
        VKLLM_TRY(record_combine(ops, seq, scratch, tokens, out, combine_q8 ? out_q8 : NULL, s, &plan));
    if (out_q8 && !direct_q8 && !combine_q8) return ops_quantize_q8(ops, seq, out_head, s->n_tokens, cols, *out_q8);
    return VKLLM_OK;
}

vkllm_status ops_flash_attention(ops_context *ops, vkr_sequence *seq, vkr_range q, vkr_range k_cache,
                                 vkr_range v_cache, vkr_range page_table, vkr_range tokens, vkr_range scratch,
                                 vkr_range out, const ops_attention_shape *shape)
{
    return attention(ops, seq, q, k_cache, v_cache, page_table, tokens, scratch, out, NULL, NULL, shape);
}

vkllm_status ops_flash_attention_tree(ops_context *ops, vkr_sequence *seq, vkr_range q, vkr_range k_cache,
                                      vkr_range v_cache, vkr_range page_table, vkr_range tokens, vkr_range tree,
                                      vkr_range scratch, vkr_range out, const ops_attention_shape *shape)
{
    return attention(ops, seq, q, k_cache, v_cache, page_table, tokens, scratch, out, NULL, &tree, shape);
}

vkllm_status ops_tree_rows(const int32_t *parents, uint32_t n, uint32_t first, uint32_t (*rows)[4])
{
    if (n > OPS_TREE_MAX_NODES)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tree attention: %u nodes, at most %u", n, OPS_TREE_MAX_NODES);
    for (uint32_t i = 0; i < n; i++) {
        if (parents[i] >= (int32_t)i || parents[i] < -1)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tree attention: node %u has parent %d: each parent must "
                              "come before its node (-1: the root, under the cached prefix)", i, parents[i]);
        uint64_t mask = 1ull << i;
        if (parents[i] >= 0) mask |= (uint64_t)rows[parents[i]][1] | (uint64_t)rows[parents[i]][2] << 32;
        rows[i][0] = first;
        rows[i][1] = (uint32_t)mask;
        rows[i][2] = (uint32_t)(mask >> 32);
        rows[i][3] = 0;
    }
    return VKLLM_OK;
}

vkllm_status ops_flash_attention_q8(ops_context *ops, vkr_sequence *seq, vkr_range q, vkr_range k_cache,
                                    vkr_range v_cache, vkr_range page_table, vkr_range tokens, vkr_range scratch,
                                    vkr_range out, vkr_range out_q8, const ops_attention_shape *shape)
{
    return attention(ops, seq, q, k_cache, v_cache, page_table, tokens, scratch, out, &out_q8, NULL, shape);
}
