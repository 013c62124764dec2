/* K-quants (256-weight super-blocks): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and the intermediate Q8_K.
 * Quantizers are ggml's quantize_row_*_ref: search each sub-block's scale (k_search.c), quantize the
 * scales against the super-block's half-precision d, then re-round every weight with the scale that was
 * actually stored.  Sub-blocks whose stored scale is zero keep the levels of the search, as in ggml.
 * Dequantizers keep ggml's float expressions so results are bit-identical too. */
#include "quant_internal.h"

#define QK QUANT_QK_K

/* Packs 2-bit levels: per 128-weight half, byte l of its 32 holds weights l, l+32, l+64, l+96. */
static void pack_2bit(const uint8_t L[QK], uint8_t qs[QK / 4])
{
    for (int half = 0; half < QK; half += 128) {
        for (int l = 0; l < 32; l++) {
            qs[half / 4 + l] = (uint8_t)(L[half + l] | (L[half + l + 32] << 2) | (L[half + l + 64] << 4) |
                                         (L[half + l + 96] << 6));
        }
    }
}

static uint8_t unpack_2bit(const uint8_t qs[QK / 4], int j)
{
    const int half = j / 128, within = j % 128;
    return (qs[half * 32 + within % 32] >> (2 * (within / 32))) & 3;
}

/* Q4_K/Q5_K scale packing: 6-bit scale and min of sub-block j (0..7) in 12 bytes.  j < 4: low 6 bits of
 * bytes j and j+4.  j >= 4: low nibbles in byte j+4, high 2 bits in the top bits of bytes j-4 and j. */
static void get_scale_min(int j, const uint8_t q[QUANT_K_SCALE_SIZE], uint8_t *scale, uint8_t *min)
{
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *min = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void set_scale_min(int j, uint8_t q[QUANT_K_SCALE_SIZE], uint8_t scale, uint8_t min)
{
    if (j < 4) {
        q[j] = scale;
        q[j + 4] = min;
    } else {
        q[j + 4] = (uint8_t)((scale & 0xf) | ((min & 0xf) << 4));
        q[j - 4] |= (uint8_t)((scale >> 4) << 6);
        q[j] |= (uint8_t)((min >> 4) << 6);
    }
}

/* ---- Q2_K ---- */

static void q2_K_finish(const float *x, uint8_t L[QK], block_q2_K *y);

void quant_q2_K_quantize_block(const float *x, void *block)
{
    block_q2_K *y = block;
    uint8_t L[QK];
    float weights[16], mins[QK / 16], scales[QK / 16];
    float max_scale = 0, max_min = 0; /* mins are subtracted, so scales come out positive */
    for (int j = 0; j < QK / 16; j++) {
        for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
        scales[j] = quant_search_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }

    /* Scale and min of each sub-block as 4-bit fractions of the largest; uint8 wrap-around as ggml. */
    const float q4scale = 15.f;
    for (int j = 0; j < QK / 16; j++) {
        y->scales[j] = max_scale > 0 ? (uint8_t)quant_nearest_int(q4scale / max_scale * scales[j]) : 0;
    }
    y->d = quant_f32_to_f16(max_scale > 0 ? max_scale / q4scale : 0.f);
    if (max_min > 0) {
        const float iscale = q4scale / max_min;
        for (int j = 0; j < QK / 16; j++) {
            y->scales[j] |= (uint8_t)((unsigned)quant_nearest_int(iscale * mins[j]) << 4);
        }
    }
    y->dmin = quant_f32_to_f16(max_min > 0 ? max_min / q4scale : 0.f);
    q2_K_finish(x, L, y);
}

/* Re-rounds every weight with its sub-block's stored scale and min (those whose scale is zero keep the
 * search's levels), then packs. */
static void q2_K_finish(const float *x, uint8_t L[QK], block_q2_K *y)
{
    for (int j = 0; j < QK / 16; j++) {
        const float d = quant_f16_to_f32(y->d) * (y->scales[j] & 0xf);
        if (!d) continue;
        const float dm = quant_f16_to_f32(y->dmin) * (y->scales[j] >> 4);
        for (int i = 0; i < 16; i++) {
            L[16 * j + i] = (uint8_t)quant_clamp_int(quant_nearest_int((x[16 * j + i] + dm) / d), 0, 3);
        }
    }
    pack_2bit(L, y->qs);
}

/* ggml's quantize_row_q2_K_impl: importance qw times sqrt(sigma2 + x^2) weights each weight (sigma2 the
 * super-block's mean x^2), a finer affine search per sub-block, and the 4-bit scales and mins fitted by the
 * sub-blocks' summed weights instead of scaled from the largest. */
void quant_q2_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    (void)row_sigma2;
    block_q2_K *y = block;
    uint8_t L[QK], Ls[QK / 16], Lm[QK / 16];
    float weight[16], mins[QK / 16], scales[QK / 16], sw[QK / 16];
    float sumx2 = 0;
    for (int j = 0; j < QK; j++) sumx2 += x[j] * x[j];
    const float sigma2 = sumx2 / QK;
    for (int j = 0; j < QK / 16; j++) {
        sw[j] = 0;
        for (int l = 0; l < 16; l++) weight[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        for (int l = 0; l < 16; l++) sw[j] += weight[l];
        scales[j] = quant_search_affine_weighted(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], -0.9f, 0.05f, 36,
                                                 false);
    }
    const float dm = quant_search_positive(QK / 16, 15, scales, Ls, sw);
    const float mm = quant_search_positive(QK / 16, 15, mins, Lm, sw);
    y->d = quant_f32_to_f16(dm);
    y->dmin = quant_f32_to_f16(mm);
    for (int j = 0; j < QK / 16; j++) y->scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
    q2_K_finish(x, L, y);
}

void quant_q2_K_dequantize_block(const void *block, float *y)
{
    const block_q2_K *b = block;
    const float d = quant_f16_to_f32(b->d);
    const float min = quant_f16_to_f32(b->dmin);
    for (int j = 0; j < QK; j++) {
        const uint8_t sc = b->scales[j / 16];
        const float dl = d * (sc & 0xf), ml = min * (sc >> 4);
        y[j] = dl * unpack_2bit(b->qs, j) - ml;
    }
}

/* ---- Q3_K ---- */

/* 6-bit scale of sub-block j (0..15) stored biased by 32: low nibble in scales[j % 8] (j >= 8 in the high
 * nibble), high 2 bits in scales[8 + j % 4] at bit 2 * (j / 4). */
static int q3_K_get_scale(const uint8_t scales[12], int j)
{
    int low = j < 8 ? scales[j] & 0xf : scales[j - 8] >> 4;
    int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (low | (high << 4)) - 32;
}

static void q3_K_set_scales(const int biased[16], uint8_t scales[12])
{
    memset(scales, 0, 12);
    for (int j = 0; j < 16; j++) {
        if (j < 8) {
            scales[j] = (uint8_t)(biased[j] & 0xf);
        } else {
            scales[j - 8] |= (uint8_t)((biased[j] & 0xf) << 4);
        }
        scales[8 + j % 4] |= (uint8_t)((biased[j] >> 4) << (2 * (j / 4)));
    }
}

static void q3_K_finish(const float *x, int8_t L[QK], block_q3_K *y);
static void q3_K_pack(const int8_t L[QK], block_q3_K *y);

void quant_q3_K_quantize_block(const float *x, void *block)
{
    block_q3_K *y = block;
    int8_t L[QK];
    float scales[QK / 16];
    float max_scale = 0, amax = 0; /* the signed scale of largest magnitude */
    for (int j = 0; j < QK / 16; j++) {
        scales[j] = quant_search_symmetric_q3(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }

    if (max_scale) {
        const float iscale = -32.f / max_scale;
        int biased[16];
        for (int j = 0; j < QK / 16; j++) {
            /* ggml narrows to int8 before clamping; the clamp range fits, so only the clamp matters. */
            biased[j] = quant_clamp_int((int8_t)quant_nearest_int(iscale * scales[j]), -32, 31) + 32;
        }
        q3_K_set_scales(biased, y->scales);
        y->d = quant_f32_to_f16(1 / iscale);
    } else {
        memset(y->scales, 0, sizeof y->scales);
        y->d = quant_f32_to_f16(0.f);
    }
    q3_K_finish(x, L, y);
}

/* Re-rounds with the stored scales (levels + 4 in L), then packs. */
static void q3_K_finish(const float *x, int8_t L[QK], block_q3_K *y)
{
    for (int j = 0; j < QK / 16; j++) {
        const float d = quant_f16_to_f32(y->d) * q3_K_get_scale(y->scales, j);
        if (!d) continue;
        for (int i = 0; i < 16; i++) {
            L[16 * j + i] = (int8_t)(quant_clamp_int(quant_nearest_int(x[16 * j + i] / d), -4, 3) + 4);
        }
    }

    q3_K_pack(L, y);
}

/* Bit 2 of weight j goes to hmask[j % 32] bit j / 32; the low two bits pack like Q2_K.  L: levels + 4. */
static void q3_K_pack(const int8_t L[QK], block_q3_K *y)
{
    uint8_t low[QK];
    memset(y->hmask, 0, sizeof y->hmask);
    for (int j = 0; j < QK; j++) {
        if (L[j] > 3) y->hmask[j % 32] |= (uint8_t)(1 << (j / 32));
        low[j] = (uint8_t)(L[j] & 3);
    }
    pack_2bit(low, y->qs);
}

/* ggml's quantize_row_q3_K_impl: each weight weighted by qw * sqrt(sigma2 + x^2) (sigma2 twice the
 * super-block's mean x^2) in make_qx_quants' search, and the 6-bit scales fitted by the same search,
 * weighted by each sub-block's summed weights. */
void quant_q3_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    (void)row_sigma2;
    block_q3_K *y = block;
    int8_t L[QK], Ls[QK / 16];
    float scales[QK / 16], weight[16], sw[QK / 16];
    float sumx2 = 0;
    for (int j = 0; j < QK; j++) sumx2 += x[j] * x[j];
    const float sigma2 = 2 * sumx2 / QK;
    for (int j = 0; j < QK / 16; j++) {
        for (int l = 0; l < 16; l++) weight[l] = qw[16 * j + l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 16; l++) sumw += weight[l];
        sw[j] = sumw;
        scales[j] = quant_search_symmetric(16, 4, x + 16 * j, L + 16 * j, weight);
    }
    const float d_block = quant_search_symmetric(QK / 16, 32, scales, Ls, sw);
    int biased[16];
    for (int j = 0; j < QK / 16; j++) biased[j] = Ls[j];
    q3_K_set_scales(biased, y->scales);
    y->d = quant_f32_to_f16(d_block);
    q3_K_finish(x, L, y);
}

void quant_q3_K_dequantize_block(const void *block, float *y)
{
    const block_q3_K *b = block;
    const float d_all = quant_f16_to_f32(b->d);
    for (int j = 0; j < QK; j++) {
        const float dl = d_all * q3_K_get_scale(b->scales, j / 16);
        const int high = (b->hmask[j % 32] >> (j / 32)) & 1;
        y[j] = dl * (unpack_2bit(b->qs, j) - (high ? 0 : 4));
    }
}

/* ---- Q4_K and Q5_K: 8 sub-blocks of 32, affine, 6-bit scales and mins ---- */

static void requantize_affine_superblock(const float *x, int nmax, uint8_t L[QK], uint16_t d16, uint16_t dmin16,
                                         const uint8_t scales_out[QUANT_K_SCALE_SIZE]);

/* Searches the 8 sub-blocks (levels 0..nmax into L), weighting each weight by |x| plus the sub-block's
 * RMS, stores d, dmin and the packed scales, then re-rounds L with the stored values. */
static void quantize_affine_superblock(const float *x, int nmax, float rmin, int nstep,
                                       uint8_t L[QK], uint16_t *d_out, uint16_t *dmin_out,
                                       uint8_t scales_out[QUANT_K_SCALE_SIZE])
{
    float weights[32], mins[QK / 32], scales[QK / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(xs[l]);
        scales[j] = quant_search_affine(32, nmax, xs, weights, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }

    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales_out, 0, QUANT_K_SCALE_SIZE);
    for (int j = 0; j < QK / 32; j++) {
        /* uint8 narrowing first, then the clamp, exactly as ggml. */
        uint8_t ls = (uint8_t)quant_nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)quant_nearest_int(inv_min * mins[j]);
        set_scale_min(j, scales_out, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
    }
    *d_out = quant_f32_to_f16(max_scale / 63.f);
    *dmin_out = quant_f32_to_f16(max_min / 63.f);
    requantize_affine_superblock(x, nmax, L, *d_out, *dmin_out, scales_out);
}

/* ggml's quantize_row_q4_K_impl / q5_K_impl: weights qw * sqrt(sigma2 + x^2) (sigma2 twice the
 * super-block's mean x^2), make_qkx3_quants per sub-block, and the 6-bit scales and mins fitted by
 * make_qp_quants with each sub-block's summed weights. */
static void quantize_affine_superblock_weighted(const float *x, const float *qw, int nmax, uint8_t L[QK],
                                                uint16_t *d_out, uint16_t *dmin_out,
                                                uint8_t scales_out[QUANT_K_SCALE_SIZE])
{
    float weights[32], mins[QK / 32], scales[QK / 32], sw[QK / 32];
    uint8_t Ls[QK / 32], Lm[QK / 32];
    float sum_x2 = 0;
    for (int l = 0; l < QK; l++) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / QK;
    for (int j = 0; j < QK / 32; j++) {
        for (int l = 0; l < 32; l++) weights[l] = qw[32 * j + l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        float sumw = 0;
        for (int l = 0; l < 32; l++) sumw += weights[l];
        sw[j] = sumw;
        scales[j] = quant_search_affine_weighted(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], -0.9f, 0.05f,
                                                 36, false);
    }
    const float d_block = quant_search_positive(QK / 32, 63, scales, Ls, sw);
    const float m_block = quant_search_positive(QK / 32, 63, mins, Lm, sw);
    memset(scales_out, 0, QUANT_K_SCALE_SIZE);
    for (int j = 0; j < QK / 32; j++) {
        /* quant_search_positive keeps levels <= 63; ggml's Q5_K clamps again, Q4_K does not. */
        set_scale_min(j, scales_out, Ls[j], Lm[j]);
    }
    *d_out = quant_f32_to_f16(d_block);
    *dmin_out = quant_f32_to_f16(m_block);
    requantize_affine_superblock(x, nmax, L, *d_out, *dmin_out, scales_out);
}

/* Re-rounds each sub-block with its stored scale and min; those whose scale is zero keep their levels. */
static void requantize_affine_superblock(const float *x, int nmax, uint8_t L[QK], uint16_t d16, uint16_t dmin16,
                                         const uint8_t scales_out[QUANT_K_SCALE_SIZE])
{
    for (int j = 0; j < QK / 32; j++) {
        uint8_t sc, m;
        get_scale_min(j, scales_out, &sc, &m);
        const float d = quant_f16_to_f32(d16) * sc;
        if (!d) continue;
        const float dm = quant_f16_to_f32(dmin16) * m;
        for (int i = 0; i < 32; i++) {
            L[32 * j + i] = (uint8_t)quant_clamp_int(quant_nearest_int((x[32 * j + i] + dm) / d), 0, nmax);
        }
    }
}

/* Each 64-weight chunk: 32 bytes, low nibble weight l, high nibble weight l + 32. */
static void q4_K_pack(const uint8_t L[QK], block_q4_K *b)
{
    for (int chunk = 0; chunk < QK / 64; chunk++) {
        for (int l = 0; l < 32; l++) {
            b->qs[32 * chunk + l] = (uint8_t)(L[64 * chunk + l] | (L[64 * chunk + l + 32] << 4));
        }
    }
}

void quant_q4_K_quantize_block(const float *x, void *block)
{
    block_q4_K *b = block;
    uint8_t L[QK];
    quantize_affine_superblock(x, 15, -1.f, 20, L, &b->d, &b->dmin, b->scales);
    q4_K_pack(L, b);
}

void quant_q4_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    (void)row_sigma2;
    block_q4_K *b = block;
    uint8_t L[QK];
    quantize_affine_superblock_weighted(x, qw, 15, L, &b->d, &b->dmin, b->scales);
    q4_K_pack(L, b);
}

/* Q4_K and Q5_K share their dequantization: sub-block j of 32 weights is d * scale_j * level - dmin * min_j,
 * levels from the nibbles of qs, plus 16 where qh (Q5_K; NULL for Q4_K) has bit j set. */
static void dequantize_affine_superblock(uint16_t d16, uint16_t dmin16, const uint8_t *scales, const uint8_t *qs,
                                         const uint8_t *qh, float *y)
{
    const float d = quant_f16_to_f32(d16);
    const float min = quant_f16_to_f32(dmin16);
    for (int j = 0; j < QK / 32; j++) {
        uint8_t sc, m;
        get_scale_min(j, scales, &sc, &m);
        const float dl = d * sc, ml = min * m;
        const uint8_t *q = qs + 32 * (j / 2);
        const int shift = 4 * (j % 2);
        for (int l = 0; l < 32; l++) {
            const int high = qh && ((qh[l] >> j) & 1) ? 16 : 0;
            y[32 * j + l] = dl * (((q[l] >> shift) & 0xf) + high) - ml;
        }
    }
}

void quant_q4_K_dequantize_block(const void *block, float *y)
{
    const block_q4_K *b = block;
    dequantize_affine_superblock(b->d, b->dmin, b->scales, b->qs, NULL, y);
}

/* As Q4_K for the low nibbles; bit 4 of chunk c's weights go to qh bits 2c and 2c+1. */
static void q5_K_pack(const uint8_t L[QK], block_q5_K *b)
{
    memset(b->qh, 0, sizeof b->qh);
    for (int chunk = 0; chunk < QK / 64; chunk++) {
        for (int l = 0; l < 32; l++) {
            const uint8_t lo = L[64 * chunk + l], hi = L[64 * chunk + l + 32];
            b->qh[l] |= (uint8_t)(((lo >> 4) << (2 * chunk)) | ((hi >> 4) << (2 * chunk + 1)));
            b->qs[32 * chunk + l] = (uint8_t)((lo & 0xf) | ((hi & 0xf) << 4));
        }
    }
}

void quant_q5_K_quantize_block(const float *x, void *block)
{
    block_q5_K *b = block;
    uint8_t L[QK];
    quantize_affine_superblock(x, 31, -0.5f, 15, L, &b->d, &b->dmin, b->scales);
    q5_K_pack(L, b);
}

void quant_q5_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    (void)row_sigma2;
    block_q5_K *b = block;
    uint8_t L[QK];
    quantize_affine_superblock_weighted(x, qw, 31, L, &b->d, &b->dmin, b->scales);
    q5_K_pack(L, b);
}

void quant_q5_K_dequantize_block(const void *block, float *y)
{
    const block_q5_K *b = block;
    dequantize_affine_superblock(b->d, b->dmin, b->scales, b->qs, b->qh, y);
}

/* ---- Q6_K ---- */

static void q6_K_pack(const int8_t L[QK], block_q6_K *y);

/* qw: the importance weights of the scale search (ggml passes them as they are, x^2 without them). */
static void q6_K_quantize(const float *x, const float *qw, block_q6_K *y)
{
    int8_t L[QK];
    float scales[QK / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < QK / 16; j++) {
        scales[j] = quant_search_symmetric(16, 32, x + 16 * j, L + 16 * j, qw ? qw + 16 * j : NULL);
        if (fabsf(scales[j]) > max_abs_scale) {
            max_abs_scale = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(y, 0, sizeof *y);
    if (max_abs_scale < QUANT_GROUP_MAX_EPS) return; /* all zero: ggml writes a zero block */

    const float iscale = -128.f / max_scale;
    y->d = quant_f32_to_f16(1 / iscale);
    for (int j = 0; j < QK / 16; j++) {
        int s = quant_nearest_int(iscale * scales[j]);
        y->scales[j] = (int8_t)(s < 127 ? s : 127);
    }
    for (int j = 0; j < QK / 16; j++) {
        const float d = quant_f16_to_f32(y->d) * y->scales[j];
        if (!d) continue;
        for (int i = 0; i < 16; i++) {
            L[16 * j + i] = (int8_t)(quant_clamp_int(quant_nearest_int(x[16 * j + i] / d), -32, 31) + 32);
        }
    }

    q6_K_pack(L, y);
}

/* Per 128-weight half: low nibbles of weights l and l+64 in ql[l], of l+32 and l+96 in ql[l+32]; the high
 * two bits of the four in qh[l].  L: levels + 32. */
static void q6_K_pack(const int8_t L[QK], block_q6_K *y)
{
    for (int half = 0; half < 2; half++) {
        const int8_t *Lh = L + 128 * half;
        uint8_t *ql = y->ql + 64 * half;
        uint8_t *qh = y->qh + 32 * half;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((Lh[l] & 0xf) | ((Lh[l + 64] & 0xf) << 4));
            ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xf) | ((Lh[l + 96] & 0xf) << 4));
            qh[l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                              ((Lh[l + 96] >> 4) << 6));
        }
    }
}

void quant_q6_K_quantize_block(const float *x, void *block) { q6_K_quantize(x, NULL, block); }

void quant_q6_K_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    (void)row_sigma2;
    q6_K_quantize(x, qw, block);
}

void quant_q6_K_dequantize_block(const void *block, float *y)
{
    const block_q6_K *b = block;
    const float d = quant_f16_to_f32(b->d);
    for (int half = 0; half < 2; half++) {
        const uint8_t *ql = b->ql + 64 * half;
        const uint8_t *qh = b->qh + 32 * half;
        const int8_t *sc = b->scales + 8 * half;
        float *yh = y + 128 * half;
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            yh[l] = d * sc[is + 0] * q1;
            yh[l + 32] = d * sc[is + 2] * q2;
            yh[l + 64] = d * sc[is + 4] * q3;
            yh[l + 96] = d * sc[is + 6] * q4;
        }
    }
}

/* ---- Q8_K: d = max / -127 (float), q = round(x / d), bsums per 16 ---- */

void quant_q8_K_quantize_block(const float *x, void *block)
{
    block_q8_K *b = block;
    memset(b, 0, sizeof *b);
    const float max = quant_signed_absmax(QK, x);
    if (!max) return; /* all zero: d, levels and sums stay 0 */
    const float iscale = -127.f / max;
    for (int j = 0; j < QK; j++) {
        int v = quant_nearest_int(iscale * x[j]);
        b->qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < QK / 16; j++) {
        int sum = 0;
        for (int l = 0; l < 16; l++) sum += b->qs[16 * j + l];
        b->bsums[j] = (int16_t)sum;
    }
    b->d = 1 / iscale;
}

void quant_q8_K_dequantize_block(const void *block, float *y)
{
    const block_q8_K *b = block;
    for (int j = 0; j < QK; j++) y[j] = b->d * b->qs[j];
}

/* ---- Levels set directly (GPTQ rounds each weight itself and keeps the block's scales): codes 0..nmax as
 * the block stores them (Q3_K: level + 4, Q6_K: level + 32). ---- */

void quant_q2_K_set_levels(void *block, const uint8_t *levels) { pack_2bit(levels, ((block_q2_K *)block)->qs); }

void quant_q3_K_set_levels(void *block, const uint8_t *levels)
{
    int8_t L[QK];
    for (int j = 0; j < QK; j++) L[j] = (int8_t)levels[j];
    q3_K_pack(L, block);
}

void quant_q4_K_set_levels(void *block, const uint8_t *levels) { q4_K_pack(levels, block); }
void quant_q5_K_set_levels(void *block, const uint8_t *levels) { q5_K_pack(levels, block); }

void quant_q6_K_set_levels(void *block, const uint8_t *levels)
{
    int8_t L[QK];
    for (int j = 0; j < QK; j++) L[j] = (int8_t)levels[j];
    q6_K_pack(L, block);
}
