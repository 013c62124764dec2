/* y = x Wᵀ for repacked weights: picks the mat-vec (n <= 8, or below the tuning's matmul_min_n), the
 * cooperative-matrix mat-mul (where the device has cooperative matrices) or the tiled mat-mul, the shader
 * variant (subgroup reduction, f16 arithmetic, the integer path) from the device's caps and the knobs from its
 * tuning row, and records one dispatch per row chunk (two for a mat-vec whose columns do not divide into equal
 * blocks), after the quantization of x on the integer path. */
#include <stdio.h>
#include <string.h>

#include "ops/check.h"
#include "matmul.h"
#include "matmul_record.h"
#include "shader_families.h"
#include "quant/quant.h"
#include "weight_format.h"

/* Push constants of shaders/matvec.comp and shaders/matmul.comp (same layout; `cols_or_n` is col0 for the
 * mat-vec and n for the mat-mul). */
typedef struct matmul_push {
    uint32_t rows, cols, groups, col0_or_n, y_stride, y_row0;
} matmul_push;

/* f16 arithmetic in the tiled mat-mul (matmul: true) or the mat-vec. */
static bool use_fp16(const ops_context *ops, const ops_weight *w, bool matmul)
{
    return ops->tuning->fp16 && ops->caps->fp16_arith && (matmul ? w->format->fp16 : w->format->f16_dots);
}

/* The integer path (x quantized to 8-bit blocks, integer dot products): where the tuning asks for it and
 * the type has integer levels. */
static bool use_q8(const ops_context *ops, const ops_weight *w)
{
    return ops->tuning->matvec_int_dot && w->format->q8;
}

/* Subgroup size the _sg mat-vec runs at (pinned where the device has size control); 0 if the subgroup
 * variant cannot be used.  A row group of split lanes is whole subgroups (a size dividing split is
 * preferred: subgroupAdd) or a run of lanes inside one (split below the smallest size: shuffles); both
 * powers of two, one divides the other. */
static uint32_t subgroup_size_for(const vkr_caps *caps, uint32_t split)
{
    if (split <= 1 || !caps->subgroup_arithmetic || !caps->subgroup_shuffle) return 0;
    if (!caps->subgroup_size_control)
        return caps->min_subgroup_size == caps->max_subgroup_size ? caps->subgroup_size : 0;
    for (uint32_t size = caps->max_subgroup_size; size >= caps->min_subgroup_size && size > 0; size /= 2)
        if (split % size == 0) return size;
    return caps->min_subgroup_size;
}

static const matvec_store plain_store = {.epilogue = MATVEC_PLAIN}; /* the tiled mat-mul's pipeline: plain bindings */

/* The generated tables are indexed by quant_type id. */
_Static_assert(sizeof vkr_matvec_variants / sizeof vkr_matvec_variants[0] == QUANT_TYPE_LIMIT &&
                   sizeof vkr_matmul_variants / sizeof vkr_matmul_variants[0] == QUANT_TYPE_LIMIT &&
                   sizeof vkr_matmul_coopmat_variants / sizeof vkr_matmul_coopmat_variants[0] == QUANT_TYPE_LIMIT,
               "shader_families.h is indexed by quant_type id below QUANT_TYPE_LIMIT");

/* A family table's entry: NULL (an error naming what was wanted) where the build has no such variant. */
static vkllm_status variant(const char *name, const char *family, const ops_weight *w, const char *what,
                            const char **out)
{
    *out = name;
    if (name) return VKLLM_OK;
    return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: no %s variant for %s weights (%s)", family, what,
                      w->format->name, "shaders/variants.cmake does not build one");
}

/* Whether x's rows (w->cols floats each) are whole vec4s: the shaders then read x four floats at a time (the mat-vec's
 * X_ALIGNED, the texel view RGBA32F, the cooperative-matrix mat-mul's vec4 loads). */
static bool x_rows_vec4(const ops_weight *w) { return w->cols % 4 == 0; }

/* Whether the mat-vec reads weights and x through uniform texel buffers (the _tx variants): where the tuning
 * asks for it, the device has the formats, and every binding fits a texel view (the weight's chunks were
 * sized for it unless it was created under another tuning row); else the storage-buffer variants. */
static bool use_texels(const ops_context *ops, const ops_weight *w, uint32_t subgroup_size, vkr_range x)
{
    const vkr_caps *caps = ops->caps;
    /* the _tx variants declare subgroup shuffles (X_SHUFFLE), which the device must have even where they go unused */
    if (!ops->tuning->texel_loads || !caps->texel_rgba32 || !(caps->subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) ||
        subgroup_size || use_fp16(ops, w, false))
        return false;
    uint64_t texels = caps->max_texel_buffer_elements;
    uint64_t align = caps->min_texel_offset_alignment ? caps->min_texel_offset_alignment : 1;
    bool chunks_fit = (uint64_t)w->chunk_rows * w->quant_row_bytes <= 16 * texels &&
                      (uint64_t)w->chunk_rows * w->aux_row_bytes + 3 <= 4 * texels;
    for (uint32_t c = 0; c < w->n_chunks; c++)
        chunks_fit = chunks_fit && w->quants[c].offset % align == 0 && (!w->aux || w->aux[c].offset % align == 0);
    /* x in the view get_pipeline gives it */
    return chunks_fit &&
           vkr_texel_range_fits(ops->dev, &x, x_rows_vec4(w) ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT);
}

/* texel: bindings 0 (quants RGBA32UI), 1 (aux R32UI) and 2 (x) are uniform texel buffers; x is viewed as
 * vec4s when x_aligned, else as single floats. */
static vkllm_status get_pipeline(ops_context *ops, const char *name, const uint32_t *spec, uint32_t n_spec,
                                 uint32_t subgroup_size, bool texel, bool x_aligned, const matvec_store *store,
                                 const vkr_pipeline **out)
{
    vkr_pipeline_desc desc = {.shader = name, .n_bindings = 4 + store->n_extra,
                              .readonly_mask = 0x7 | store->extra_readonly << 4,
                              .push_size = (uint32_t)sizeof(matmul_push) + store->push_tail_bytes, .n_spec = n_spec,
                              .required_subgroup_size = ops->caps->subgroup_size_control ? subgroup_size : 0};
    if (texel) {
        desc.texel_format[0] = VK_FORMAT_R32G32B32A32_UINT;
        desc.texel_format[1] = VK_FORMAT_R32_UINT;
        desc.texel_format[2] = x_aligned ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT;
    }
    for (uint32_t i = 0; i < n_spec; i++) desc.spec[i] = spec[i];
    return vkr_pipeline_get(ops->dev, &desc, out);
}

/* The weight bindings of rows [r0, r0 + rows), which lie in one chunk (r0 is a chunk's first row or past it). */
static void weight_ranges(const ops_weight *w, uint32_t r0, uint32_t rows, vkr_range *quants, vkr_range *aux)
{
    uint32_t c = r0 / w->chunk_rows, first = r0 - c * w->chunk_rows;
    *quants = vkr_sub(&w->quants[c], first * w->quant_row_bytes, rows * w->quant_row_bytes);
    if (w->aux_row_bytes) {
        uint64_t begin = first * w->aux_row_bytes, end = (first + rows) * w->aux_row_bytes;
        end = (end + 3) / 4 * 4; /* read as words; the allocation is rounded up the same way */
        *aux = vkr_sub(&w->aux[c], begin, end - begin);
    } else {
        /* unused by the float types' shaders, but every binding needs a buffer (of whole texels) */
        *aux = vkr_sub(&w->quants[c], quants->offset, 16);
    }
}

/* A mat-mul pipeline over every chunk of W's rows: workgroups of tile_m rows x tile_n columns of y. */
static vkllm_status dispatch_tiles(vkr_sequence *seq, const vkr_pipeline *p, const ops_weight *w, vkr_range x,
                                   vkr_range y, uint32_t n, uint32_t y_stride, uint32_t y_row0, uint32_t tile_m,
                                   uint32_t tile_n, const char *label)
{
    for (uint32_t r0 = 0; r0 < w->rows; r0 += w->chunk_rows) {
        uint32_t rows = w->rows - r0 < w->chunk_rows ? w->rows - r0 : w->chunk_rows;
        vkr_range bind[4];
        weight_ranges(w, r0, rows, &bind[0], &bind[1]);
        bind[2] = x;
        bind[3] = y;
        matmul_push push = {rows, w->cols, w->groups, n, y_stride, y_row0 + r0};
        uint32_t groups[3] = {vkr_div_up(rows, tile_m), vkr_div_up(n, tile_n), 1};
        VKLLM_TRY(vkr_sequence_dispatch(seq, p, bind, &push, groups, label));
    }
    return VKLLM_OK;
}

/* Columns per mat-vec block: the tuning's, bounded by OPS_MATVEC_MAX_COLS and by the reduction's shared memory. */
static uint32_t matvec_cols_per_pass(const ops_context *ops)
{
    const op_tuning *t = ops->tuning;
    uint32_t cols = t->matvec_cols < 1 ? 1 : t->matvec_cols;
    if (cols > OPS_MATVEC_MAX_COLS) cols = OPS_MATVEC_MAX_COLS;
    if (t->matvec_split > 1)
        while (cols > 1 && (uint64_t)t->matvec_wg * t->matvec_rows * cols * 4 > ops->caps->max_shared_memory) cols--;
    return cols;
}

/* Groups of a row one lane may take before the row's split is widened (tuning's matvec_max_split). */
#define MATVEC_GROUPS_PER_LANE 4

/* Invocations per row group for w: the tuning's split, doubled while a lane would take more than
 * MATVEC_GROUPS_PER_LANE groups of a row and matvec_max_split and the workgroup allow.  A property of the
 * matrix alone, so every n gets the same reduction order. */
static uint32_t matvec_split_for(const op_tuning *t, const ops_weight *w)
{
    uint32_t split = t->matvec_split;
    while (split < t->matvec_max_split && 2 * split <= t->matvec_wg &&
           w->groups > (uint64_t)MATVEC_GROUPS_PER_LANE * split)
        split *= 2;
    return split;
}

/* Rows per invocation group for a pass of ncol columns over a matrix of `rows` rows: the tuning's, halved (while that
 * stays even, as the paired epilogues need)
 *  - for passes wider than OPS_MATVEC_MAX_N, so that a pass holds no more partial sums (rows x columns) than an
 *    8-column one.  The sums are registers, unrolled: on lavapipe 16 rows x 16 columns took LLVM about 3x as long to
 *    compile as 16 x 8 or 8 x 16, for the speed of 8 x 16 (docs/performance.md);
 *  - while the matrix would fill at most half of one workgroup's invocation groups, so that a small matrix keeps
 *    them all busy (lavapipe: a 64-row matrix at 16 rows per invocation left 4 of the 8 lanes idle).
 * Which rows an invocation holds does not change any row's sums (each is its own chain over k). */
static uint32_t matvec_rows_for(const op_tuning *t, uint32_t ncol, uint32_t rows, uint32_t split)
{
    uint32_t r = t->matvec_rows;
    if (ncol > OPS_MATVEC_MAX_N && r / 2 >= 2 && r / 2 % 2 == 0) r /= 2;
    const uint64_t groups = t->matvec_wg / split;
    while (r / 2 >= 2 && r / 2 % 2 == 0 && groups * (r / 2) >= rows) r /= 2;
    return r;
}

/* One mat-vec dispatch per row chunk for `blocks` blocks of ncol columns from col0 (workgroup z = block). */
static vkllm_status dispatch_matvec(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x,
                                    vkr_range y, const char *name, uint32_t split, uint32_t sg, bool texel,
                                    uint32_t col0, uint32_t ncol, uint32_t blocks, const matvec_store *store)
{
    const op_tuning *t = ops->tuning;
    bool x_shuffle = texel && ops_matvec_shares_x(ops, t, split, ncol);
    const uint32_t rows_per_group = matvec_rows_for(t, ncol, w->rows, split);
    const uint32_t spec[6] = {t->matvec_wg, rows_per_group, split, ncol, x_rows_vec4(w), x_shuffle};
    const vkr_pipeline *p;
    VKLLM_TRY(get_pipeline(ops, name, spec, 6, sg, texel, x_rows_vec4(w), store, &p));
    uint32_t rows_per_wg = t->matvec_wg / split * rows_per_group;
    for (uint32_t r0 = 0; r0 < w->rows; r0 += w->chunk_rows) {
        uint32_t rows = w->rows - r0 < w->chunk_rows ? w->rows - r0 : w->chunk_rows;
        vkr_range bind[VKR_MAX_BINDINGS];
        weight_ranges(w, r0, rows, &bind[0], &bind[1]);
        bind[2] = x;
        bind[3] = y;
        for (uint32_t i = 0; i < store->n_extra; i++) bind[4 + i] = store->extra[i];
        uint8_t push[128];
        matmul_push head = {rows, w->cols, w->groups, col0, store->y_stride ? store->y_stride : w->rows,
                            store->y_row0 + r0};
        memcpy(push, &head, sizeof head);
        if (store->push_tail_bytes) memcpy(push + sizeof head, store->push_tail, store->push_tail_bytes);
        uint32_t groups[3];
        vkr_groups_1d(ops->dev, vkr_div_up(rows, rows_per_wg), groups);
        groups[2] = blocks;
        static const char *const epilogue_names[] = {"", "_swiglu", "_qkv_f16", "_qkv_f32"};
        char label[64]; /* the shape tells the profile's weights apart */
        snprintf(label, sizeof label, "matvec%s %ux%u n%u", epilogue_names[store->epilogue], w->rows, w->cols,
                 ncol * blocks);
        VKLLM_TRY(vkr_sequence_dispatch(seq, p, bind, push, groups, label));
    }
    return VKLLM_OK;
}

bool ops_matvec_shares_x(const ops_context *ops, const op_tuning *t, uint32_t split, uint32_t ncol)
{
    /* From 4 columns on: below, the shuffles cost about what they save on lavapipe.  Lanes 0..7 must run every
     * step together: one subgroup, and one invocation per row group (a split gives lanes different steps). */
    uint32_t wg = t->matvec_wg;
    return ncol >= 4 && split == 1 && wg >= 8 && ops->caps->subgroup_shuffle && ops_one_subgroup(ops, wg);
}

bool ops_matmul_is_matvec(const ops_context *ops, uint32_t n)
{
    return !(n > OPS_MATVEC_MAX_N && n >= ops->tuning->matmul_min_n);
}

/* Cooperative matrices for this weight: where the device has a kind, the tuning turns them on, and f16 holds the
 * weights (F32 and BF16 keep the f32 tiled mat-mul, as they have no _f16 variants). */
static bool use_coopmat(const ops_context *ops, const ops_weight *w)
{
    return ops->caps->coopmat != VKR_COOPMAT_NONE && ops->tuning->coopmat.on && w->format->fp16;
}

bool ops_matmul_reads_q8(const ops_context *ops, const ops_weight *w, uint32_t n)
{
    return w && ops_matmul_is_matvec(ops, n) && use_q8(ops, w);
}

ops_matmul_path ops_matmul_path_of(const ops_context *ops, const ops_weight *w, uint32_t n)
{
    bool matvec = ops_matmul_is_matvec(ops, n);
    if (matvec && use_q8(ops, w)) return ops->caps->int_dot ? OPS_PATH_Q8_DOT : OPS_PATH_Q8;
    if (!matvec && use_coopmat(ops, w)) return OPS_PATH_COOPMAT;
    return use_fp16(ops, w, !matvec) ? OPS_PATH_F16 : OPS_PATH_F32;
}

const char *ops_matmul_path_name(ops_matmul_path path)
{
    switch (path) {
    case OPS_PATH_F32: return "f32";
    case OPS_PATH_F16: return "f16";
    case OPS_PATH_Q8: return "q8";
    case OPS_PATH_Q8_DOT: return "q8dot";
    case OPS_PATH_COOPMAT: return "coopmat";
    }
    return "?";
}

uint64_t ops_q8_bytes(uint32_t n, uint32_t cols)
{
    /* shaders/q8.glsl: Q8_COL_WORDS */
    return 4ull * n * ((10ull * (cols / 32) + 3) / 4 * 4);
}

/* Subgroup size to pin for quantize_q8_sg, whose blocks are 8 lanes reduced by shuffles: a multiple of 8 that
 * divides the workgroup (whole subgroups); 0 for the one-invocation-per-block variant. */
static uint32_t q8_subgroup_size(const vkr_caps *caps, uint32_t wg)
{
    if (!caps->subgroup_shuffle) return 0;
    if (!caps->subgroup_size_control)
        return caps->subgroup_size % 8 == 0 && wg % caps->subgroup_size == 0 ? caps->subgroup_size : 0;
    for (uint32_t size = caps->max_subgroup_size; size >= caps->min_subgroup_size && size >= 8; size /= 2)
        if (size % 8 == 0 && wg % size == 0) return size;
    return 0;
}

vkllm_status ops_quantize_q8(ops_context *ops, vkr_sequence *seq, vkr_range x, uint32_t n, uint32_t cols,
                             vkr_range out)
{
    const char *op = SHADER(quantize_q8);
    uint64_t blocks = (uint64_t)n * (cols / 32);
    if (n == 0 || cols == 0 || cols % 32 || blocks > UINT32_MAX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u columns of %u (a multiple of 32)", op, n, cols);
    VKLLM_TRY(ops_check_bytes(op, "x", x, 4ull * n * cols));
    VKLLM_TRY(ops_check_bytes(op, "out", out, ops_q8_bytes(n, cols)));
    struct { uint32_t blocks, cols; } push = {(uint32_t)blocks, cols};
    uint32_t wg = ops->tuning->elementwise_wg;
    uint32_t sg = 8 * blocks <= UINT32_MAX ? q8_subgroup_size(ops->caps, wg) : 0;
    vkr_pipeline_desc desc = {.shader = sg ? SHADER(quantize_q8_sg) : op, .n_bindings = 2, .readonly_mask = 0x1,
                              .push_size = sizeof push, .n_spec = 1, .spec = {wg}, .required_subgroup_size = sg};
    const vkr_pipeline *p;
    VKLLM_TRY(vkr_pipeline_get(ops->dev, &desc, &p));
    uint32_t groups[3]; /* a block per invocation, or 8 invocations per block (a word each) */
    vkr_groups_1d(ops->dev, vkr_div_up((uint32_t)(sg ? 8 * blocks : blocks), wg), groups);
    vkr_range bind[2] = {ops_head(x, 4ull * n * cols), ops_head(out, ops_q8_bytes(n, cols))};
    return vkr_sequence_dispatch(seq, p, bind, &push, groups, op);
}

bool ops_matvec_pairs_rows(const ops_context *ops)
{
    const op_tuning *t = ops->tuning;
    return t->matvec_rows % 2 == 0 && ops->caps->max_storage_buffers >= 4 + MATVEC_STORE_MAX_EXTRA;
}

/* Full blocks of columns in one dispatch, the remainder in a second. */
vkllm_status ops_matvec_record(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x, vkr_range y,
                               uint32_t n, const matvec_store *store)
{
    const op_tuning *t = ops->tuning;
    if (t->matvec_split == 0 || (t->matvec_split & (t->matvec_split - 1)) || t->matvec_wg % t->matvec_split ||
        t->matvec_rows == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "matvec: tuning row %s: split %u is not a power of two dividing the workgroup %u", t->name,
                          t->matvec_split, t->matvec_wg);
    uint32_t split = matvec_split_for(t, w);
    uint32_t sg = subgroup_size_for(ops->caps, split);
    bool q8 = use_q8(ops, w);
    bool texel = !q8 && use_texels(ops, w, sg, x);
    bool f16 = !q8 && use_fp16(ops, w, false);
    if (texel && (sg || f16))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "matvec: tuning row %s: texel loads go with neither subgroup "
                          "arithmetic nor f16 math (%s weights)", t->name, w->format->name);
    /* [path]: plain, _tx, _f16, _q8, _q8dot (shader_families.h) */
    int path = q8 ? (ops->caps->int_dot ? 4 : 3) : texel ? 1 : f16 ? 2 : 0;
    const char *name;
    VKLLM_TRY(variant(w->type < QUANT_TYPE_LIMIT ? vkr_matvec_variants[w->type][sg ? 1 : 0][path][store->epilogue] : NULL,
                      "matvec", w, "mat-vec", &name));
    if (q8 && store->x_q8.size) { /* quantized by the op that produced x (ops_rms_norm_f32_q8) */
        VKLLM_TRY(ops_check_bytes("matvec", "x_q8", store->x_q8, ops_q8_bytes(n, w->cols)));
        x = ops_head(store->x_q8, ops_q8_bytes(n, w->cols));
    } else if (q8) { /* one quantization of x for all the dispatches; the mat-vec reads it from the scratch */
        vkr_range xq;
        VKLLM_TRY(ops_scratch(ops, ops_q8_bytes(n, w->cols), &xq));
        VKLLM_TRY(ops_quantize_q8(ops, seq, x, n, w->cols, xq));
        x = xq;
    }
    uint32_t per_block = matvec_cols_per_pass(ops);
    uint32_t blocks = n / per_block, rest = n % per_block;
    if (blocks > ops->caps->max_workgroup_count[2])
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "matvec: %u blocks of %u columns exceed %u workgroups in z", blocks,
                          per_block, ops->caps->max_workgroup_count[2]);
    if (blocks) VKLLM_TRY(dispatch_matvec(ops, seq, w, x, y, name, split, sg, texel, 0, per_block, blocks, store));
    /* A remainder past OPS_MATVEC_MAX_N columns goes as a pass of that many and the rest: every column count is a
     * pipeline of its own, compiled on first use (lavapipe: 0.1-1 s each, more the more columns), so the counts
     * are 1..8 and the block size alone, not every count up to the block size. */
    uint32_t col0 = blocks * per_block;
    if (rest > OPS_MATVEC_MAX_N) {
        VKLLM_TRY(dispatch_matvec(ops, seq, w, x, y, name, split, sg, texel, col0, OPS_MATVEC_MAX_N, 1, store));
        col0 += OPS_MATVEC_MAX_N;
        rest -= OPS_MATVEC_MAX_N;
    }
    if (rest) VKLLM_TRY(dispatch_matvec(ops, seq, w, x, y, name, split, sg, texel, col0, rest, 1, store));
    return VKLLM_OK;
}

/* Rows and columns per invocation for a BM x BN tile over wg invocations: TM the power of two nearest
 * the square root of the outputs per invocation (at most BM), TN the rest. */
static vkllm_status tile_split(const op_tuning *t, uint32_t *tm, uint32_t *tn)
{
    uint32_t bm = t->matmul_tile_m, bn = t->matmul_tile_n, wg = t->matmul_wg;
    uint32_t per = wg ? bm * bn / wg : 0;
    *tm = 1;
    while (*tm * *tm < per && *tm < bm) *tm *= 2;
    *tn = *tm ? per / *tm : 0;
    if (per == 0 || bm * bn % wg || bm % *tm || *tn == 0 || bn % *tn || t->matmul_tile_k % 8 || !t->matmul_tile_k)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "matmul: tuning row %s: %ux%u tile (k %u) does not split over %u invocations", t->name, bm,
                          bn, t->matmul_tile_k, wg);
    return VKLLM_OK;
}

static vkllm_status record_matmul(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x,
                                  vkr_range y, uint32_t n, uint32_t y_stride, uint32_t y_row0)
{
    const op_tuning *t = ops->tuning;
    uint32_t tm, tn;
    VKLLM_TRY(tile_split(t, &tm, &tn));
    bool fp16 = use_fp16(ops, w, true);
    uint64_t shared = (uint64_t)t->matmul_tile_k * (t->matmul_tile_m + t->matmul_tile_n) * (fp16 ? 2 : 4);
    if (shared > ops->caps->max_shared_memory)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "matmul: tuning row %s needs %llu bytes of shared memory, %s has %u",
                          t->name, (unsigned long long)shared, ops->caps->name, ops->caps->max_shared_memory);
    const char *name;
    VKLLM_TRY(variant(w->type < QUANT_TYPE_LIMIT ? vkr_matmul_variants[w->type][fp16 ? 1 : 0] : NULL, "matmul", w,
                      fp16 ? "f16 mat-mul" : "mat-mul", &name));
    const uint32_t spec[6] = {t->matmul_wg, t->matmul_tile_m, t->matmul_tile_n, t->matmul_tile_k, tm, tn};
    const vkr_pipeline *p;
    VKLLM_TRY(get_pipeline(ops, name, spec, 6, 0, false, false, &plain_store, &p));
    return dispatch_tiles(seq, p, w, x, y, n, y_stride, y_row0, t->matmul_tile_m, t->matmul_tile_n, "matmul");
}

/* The subgroup size the cooperative-matrix tiles are laid out for, and whether the pipeline pins it: the
 * tuning's where size control allows, else the device's one fixed size.  The emulated variant only groups
 * invocations by that size (no subgroup operations), so any size goes. */
vkllm_status ops_coopmat_subgroup(const vkr_caps *caps, const op_coopmat_tuning *t, uint32_t *size, bool *pin)
{
    uint32_t want = t->subgroup ? t->subgroup : caps->subgroup_size;
    *pin = false;
    *size = want;
    if (caps->coopmat == VKR_COOPMAT_EMULATED) return VKLLM_OK;
    if (caps->subgroup_size_control && want >= caps->min_subgroup_size && want <= caps->max_subgroup_size) {
        *pin = true;
        return VKLLM_OK;
    }
    *size = caps->subgroup_size;
    if (caps->min_subgroup_size == caps->max_subgroup_size) return VKLLM_OK;
    return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "cooperative matrices need a known subgroup size; '%s' picks "
                      "one of %u..%u and cannot pin %u (set VKLLM_DISABLE_COOPMAT=1 to do without them)",
                      caps->name, caps->min_subgroup_size, caps->max_subgroup_size, want);
}

/* shaders/matmul_coopmat.comp over the tuning's coopmat tiles; shapes that do not split into the device's
 * matrices, or tiles beyond its shared memory, are errors naming the tuning row (a row to fix). */
static vkllm_status record_coopmat(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x,
                                   vkr_range y, uint32_t n, uint32_t y_stride, uint32_t y_row0)
{
    const vkr_caps *c = ops->caps;
    const op_coopmat_tuning *t = &ops->tuning->coopmat;
    uint32_t sg;
    bool pin;
    VKLLM_TRY(ops_coopmat_subgroup(c, t, &sg, &pin));
    uint32_t cm_m = c->coopmat_m, cm_n = c->coopmat_n, cm_k = c->coopmat_k;
    uint32_t nsg = sg && t->wg % sg == 0 ? t->wg / sg : 0;
    uint32_t sg_n = t->subgroups_m && nsg % t->subgroups_m == 0 ? nsg / t->subgroups_m : 0;
    bool emulated = c->coopmat == VKR_COOPMAT_EMULATED;
    if (!nsg || !sg_n || !cm_m || !cm_n || !cm_k || !t->tile_m || !t->tile_n || !t->tile_k ||
        t->tile_m % (t->subgroups_m * cm_m) || t->tile_n % (sg_n * cm_n) || t->tile_k % 8 || t->tile_k % cm_k ||
        (t->buffers != 1 && t->buffers != 2) || (emulated && cm_m * cm_n % sg))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "matmul: tuning row %s: the %ux%u cooperative-matrix tile (k %u, %u buffers) does not split "
                          "into %u invocations in subgroups of %u, %u along the rows, holding %ux%ux%u matrices "
                          "(set VKLLM_DISABLE_COOPMAT=1 for the tiled mat-mul)",
                          ops->tuning->name, t->tile_m, t->tile_n, t->tile_k, t->buffers, t->wg, sg, t->subgroups_m,
                          cm_m, cm_n, cm_k);
    if (t->wg > c->max_workgroup_invocations || t->wg > c->max_workgroup_size[0] ||
        (!emulated && c->max_workgroup_subgroups && nsg > c->max_workgroup_subgroups))
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "matmul: tuning row %s: a workgroup of %u invocations (%u subgroups) "
                          "exceeds '%s' (%u invocations, %u subgroups)", ops->tuning->name, t->wg, nsg, c->name,
                          c->max_workgroup_invocations, c->max_workgroup_subgroups);
    /* as declared in the shader: f16 tiles with rows padded by 8, one f32 matrix per subgroup */
    uint64_t shared = 2ull * t->buffers * (t->tile_m + t->tile_n) * (t->tile_k + 8) + 4ull * nsg * cm_m * cm_n;
    if (shared > c->max_shared_memory)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "matmul: tuning row %s: the cooperative-matrix tiles need %llu bytes "
                          "of shared memory, '%s' has %u", ops->tuning->name, (unsigned long long)shared, c->name,
                          c->max_shared_memory);
    const char *name;
    int kind = c->coopmat == VKR_COOPMAT_NV ? 0 : c->coopmat == VKR_COOPMAT_KHR ? 1 : 2;
    VKLLM_TRY(variant(w->type < QUANT_TYPE_LIMIT ? vkr_matmul_coopmat_variants[w->type][kind] : NULL, "matmul", w,
                      "cooperative-matrix mat-mul", &name));
    vkr_pipeline_desc desc = {.shader = name, .n_bindings = 4, .readonly_mask = 0x7,
                              .push_size = (uint32_t)sizeof(matmul_push), .n_spec = 11,
                              .required_subgroup_size = pin ? sg : 0, .full_subgroups = pin && c->full_subgroups,
                              .spec = {t->wg, t->tile_m, t->tile_n, t->tile_k, sg, t->subgroups_m, t->buffers,
                                       x_rows_vec4(w), cm_m, cm_n, cm_k}};
    const vkr_pipeline *p;
    VKLLM_TRY(vkr_pipeline_get(ops->dev, &desc, &p));
    return dispatch_tiles(seq, p, w, x, y, n, y_stride, y_row0, t->tile_m, t->tile_n, "matmul coopmat");
}

vkllm_status ops_matmul_into(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x, vkr_range y,
                             uint32_t n, uint32_t y_stride, uint32_t y_row0)
{
    return ops_matmul_into_xq(ops, seq, w, x, (vkr_range){0}, y, n, y_stride, y_row0);
}

vkllm_status ops_matmul_into_xq(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x,
                                vkr_range x_q8, vkr_range y, uint32_t n, uint32_t y_stride, uint32_t y_row0)
{
    if (!w) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "matmul: no weight");
    if (n == 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "matmul: n is 0 (no columns of x)");
    if ((uint64_t)y_row0 + w->rows > y_stride)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "matmul: rows %u..%u of y do not fit its %u rows", y_row0,
                          y_row0 + w->rows, y_stride);
    uint64_t x_bytes = 4ull * n * w->cols, y_bytes = 4ull * n * y_stride;
    VKLLM_TRY(ops_check_bytes("matmul", "x", x, x_bytes));
    VKLLM_TRY(ops_check_bytes("matmul", "y", y, y_bytes));
    uint64_t range = ops->caps->max_storage_buffer_range;
    if (x_bytes > range || y_bytes > range)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED,
                          "matmul: %u columns of x (%llu bytes) or y (%llu bytes) exceed maxStorageBufferRange %llu; "
                          "split the batch", n, (unsigned long long)x_bytes, (unsigned long long)y_bytes,
                          (unsigned long long)range);
    x.size = x_bytes;
    y.size = y_bytes;
    if (!ops_matmul_is_matvec(ops, n))
        return use_coopmat(ops, w) ? record_coopmat(ops, seq, w, x, y, n, y_stride, y_row0)
                                   : record_matmul(ops, seq, w, x, y, n, y_stride, y_row0);
    matvec_store store = {.epilogue = MATVEC_PLAIN, .y_stride = y_stride, .y_row0 = y_row0, .x_q8 = x_q8};
    return ops_matvec_record(ops, seq, w, x, y, n, &store);
}

vkllm_status ops_matmul(ops_context *ops, vkr_sequence *seq, const ops_weight *w, vkr_range x, vkr_range y,
                        uint32_t n)
{
    return ops_matmul_into(ops, seq, w, x, y, n, w ? w->rows : 0, 0);
}
