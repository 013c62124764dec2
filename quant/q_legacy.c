/* Legacy block types (32 weights per block): Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.  The quantizers are
 * ggml's round-to-nearest references (quantize_row_*_ref) step for step, so the bytes match.  Each codec
 * handles one block in aligned scratch; quant.c loops over blocks and copies them to or from callers'
 * buffers, which need no alignment. */
#include "quant_internal.h"

#define QK QUANT_QK_LEGACY

static void min_max(const float *x, float *min_out, float *max_out)
{
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < QK; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

/* Splits 5-bit levels into low nibbles (weights j and j+16 share byte j) and the qh bit mask. */
static void pack_5bit(const uint8_t levels[QK], uint8_t qs[QK / 2], uint8_t qh_bytes[4])
{
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        qs[j] = (uint8_t)((levels[j] & 0x0f) | ((levels[j + QK / 2] & 0x0f) << 4));
        qh |= (uint32_t)(levels[j] >> 4) << j;
        qh |= (uint32_t)(levels[j + QK / 2] >> 4) << (j + QK / 2);
    }
    for (int k = 0; k < 4; k++) qh_bytes[k] = (uint8_t)(qh >> (8 * k)); /* little-endian, as in files */
}

static void unpack_5bit(const uint8_t qs[QK / 2], const uint8_t qh_bytes[4], uint8_t levels[QK])
{
    uint32_t qh = 0;
    for (int k = 0; k < 4; k++) qh |= (uint32_t)qh_bytes[k] << (8 * k);
    for (int j = 0; j < QK / 2; j++) {
        levels[j] = (uint8_t)((qs[j] & 0x0f) | (((qh >> j) & 1) << 4));
        levels[j + QK / 2] = (uint8_t)((qs[j] >> 4) | (((qh >> (j + QK / 2)) & 1) << 4));
    }
}

void quant_q4_0_quantize_block(const float *x, void *block)
{
    block_q4_0 *b = block;
    const float d = quant_signed_absmax(QK, x) / -8;
    const float id = d ? 1.0f / d : 0.0f;
    b->d = quant_f32_to_f16(d);
    for (int j = 0; j < QK / 2; j++) {
        /* +8.5 then truncation rounds half up onto [0, 16]; 16 (the max itself) is clamped to 15. */
        int lo = quant_truncate_clamped(x[j] * id + 8.5f, 0, 15);
        int hi = quant_truncate_clamped(x[j + QK / 2] * id + 8.5f, 0, 15);
        b->qs[j] = (uint8_t)(lo | (hi << 4));
    }
}

void quant_q4_0_dequantize_block(const void *block, float *y)
{
    const block_q4_0 *b = block;
    const float d = quant_f16_to_f32(b->d);
    for (int j = 0; j < QK / 2; j++) {
        y[j] = ((b->qs[j] & 0x0f) - 8) * d;
        y[j + QK / 2] = ((b->qs[j] >> 4) - 8) * d;
    }
}

void quant_q4_1_quantize_block(const float *x, void *block)
{
    block_q4_1 *b = block;
    float min, max;
    min_max(x, &min, &max);
    const float d = (max - min) / 15;
    const float id = d ? 1.0f / d : 0.0f;
    b->d = quant_f32_to_f16(d);
    b->m = quant_f32_to_f16(min);
    for (int j = 0; j < QK / 2; j++) {
        int lo = quant_truncate_clamped((x[j] - min) * id + 0.5f, 0, 15);
        int hi = quant_truncate_clamped((x[j + QK / 2] - min) * id + 0.5f, 0, 15);
        b->qs[j] = (uint8_t)(lo | (hi << 4));
    }
}

void quant_q4_1_dequantize_block(const void *block, float *y)
{
    const block_q4_1 *b = block;
    const float d = quant_f16_to_f32(b->d);
    const float m = quant_f16_to_f32(b->m);
    for (int j = 0; j < QK / 2; j++) {
        y[j] = (b->qs[j] & 0x0f) * d + m;
        y[j + QK / 2] = (b->qs[j] >> 4) * d + m;
    }
}

void quant_q5_0_quantize_block(const float *x, void *block)
{
    block_q5_0 *b = block;
    const float d = quant_signed_absmax(QK, x) / -16;
    const float id = d ? 1.0f / d : 0.0f;
    uint8_t levels[QK];
    for (int j = 0; j < QK; j++) levels[j] = (uint8_t)quant_truncate_clamped(x[j] * id + 16.5f, 0, 31);
    b->d = quant_f32_to_f16(d);
    pack_5bit(levels, b->qs, b->qh);
}

void quant_q5_0_dequantize_block(const void *block, float *y)
{
    const block_q5_0 *b = block;
    const float d = quant_f16_to_f32(b->d);
    uint8_t levels[QK];
    unpack_5bit(b->qs, b->qh, levels);
    for (int j = 0; j < QK; j++) y[j] = (levels[j] - 16) * d;
}

void quant_q5_1_quantize_block(const float *x, void *block)
{
    block_q5_1 *b = block;
    float min, max;
    min_max(x, &min, &max);
    const float d = (max - min) / 31;
    const float id = d ? 1.0f / d : 0.0f;
    uint8_t levels[QK];
    for (int j = 0; j < QK; j++) levels[j] = (uint8_t)quant_truncate_clamped((x[j] - min) * id + 0.5f, 0, 31);
    b->d = quant_f32_to_f16(d);
    b->m = quant_f32_to_f16(min);
    pack_5bit(levels, b->qs, b->qh);
}

void quant_q5_1_dequantize_block(const void *block, float *y)
{
    const block_q5_1 *b = block;
    const float d = quant_f16_to_f32(b->d);
    const float m = quant_f16_to_f32(b->m);
    uint8_t levels[QK];
    unpack_5bit(b->qs, b->qh, levels);
    for (int j = 0; j < QK; j++) y[j] = levels[j] * d + m;
}

/* ---- Importance-weighted (ggml's quantize_row_q4_0_impl etc., used when an imatrix is given): each weight
 * counts qw * sqrt(sigma2 + x^2), sigma2 the mean x^2 of the whole row, in a least-squares scale search. ---- */

static void legacy_weights(const float *x, const float *qw, float row_sigma2, float weight[QK])
{
    for (int j = 0; j < QK; j++) weight[j] = qw[j] * sqrtf(row_sigma2 + x[j] * x[j]);
}

void quant_q4_0_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    block_q4_0 *b = block;
    float weight[QK];
    int8_t L[QK];
    legacy_weights(x, qw, row_sigma2, weight);
    b->d = quant_f32_to_f16(quant_search_symmetric(QK, 8, x, L, weight));
    for (int j = 0; j < QK / 2; j++) b->qs[j] = (uint8_t)(L[j] | (L[j + QK / 2] << 4));
}

void quant_q5_0_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    block_q5_0 *b = block;
    float weight[QK];
    int8_t L[QK];
    uint8_t levels[QK];
    legacy_weights(x, qw, row_sigma2, weight);
    b->d = quant_f32_to_f16(quant_search_symmetric(QK, 16, x, L, weight));
    for (int j = 0; j < QK; j++) levels[j] = (uint8_t)L[j];
    pack_5bit(levels, b->qs, b->qh);
}

void quant_q4_1_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    block_q4_1 *b = block;
    float weight[QK], neg_min;
    uint8_t L[QK];
    legacy_weights(x, qw, row_sigma2, weight);
    const float d = quant_search_affine_weighted(QK, 15, x, weight, L, &neg_min, -0.9f, 0.05f, 36, false);
    b->d = quant_f32_to_f16(d);
    b->m = quant_f32_to_f16(-neg_min);
    for (int j = 0; j < QK / 2; j++) b->qs[j] = (uint8_t)(L[j] | (L[j + QK / 2] << 4));
}

void quant_q5_1_quantize_block_weighted(const float *x, const float *qw, float row_sigma2, void *block)
{
    block_q5_1 *b = block;
    float weight[QK], neg_min;
    uint8_t L[QK];
    legacy_weights(x, qw, row_sigma2, weight);
    const float d = quant_search_affine_weighted(QK, 31, x, weight, L, &neg_min, -0.9f, 0.05f, 36, false);
    b->d = quant_f32_to_f16(d);
    b->m = quant_f32_to_f16(-neg_min);
    pack_5bit(L, b->qs, b->qh);
}

/* Q8_0 and Q8_1 share the symmetric 8-bit rounding: d = absmax / 127, q = round(x / d) (half away). */
static float quantize_8bit(const float *x, int8_t qs[QK])
{
    float amax = 0.0f;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK; j++) qs[j] = (int8_t)quant_truncate_clamped(roundf(x[j] * id), -128, 127);
    return d;
}

void quant_q8_0_quantize_block(const float *x, void *block)
{
    block_q8_0 *b = block;
    b->d = quant_f32_to_f16(quantize_8bit(x, b->qs));
}

void quant_q8_0_dequantize_block(const void *block, float *y)
{
    const block_q8_0 *b = block;
    const float d = quant_f16_to_f32(b->d);
    for (int j = 0; j < QK; j++) y[j] = b->qs[j] * d;
}

void quant_q8_1_quantize_block(const float *x, void *block)
{
    block_q8_1 *b = block;
    const float d = quantize_8bit(x, b->qs);
    int sum = 0;
    for (int j = 0; j < QK; j++) sum += b->qs[j];
    b->d = quant_f32_to_f16(d);
    b->s = quant_f32_to_f16(sum * d);
}

void quant_q8_1_dequantize_block(const void *block, float *y)
{
    const block_q8_1 *b = block;
    const float d = quant_f16_to_f32(b->d);
    for (int j = 0; j < QK; j++) y[j] = b->qs[j] * d;
}

/* ---- Levels set directly (GPTQ): codes as stored (Q8_0: q + 128). ---- */

static void pack_4bit(const uint8_t *levels, uint8_t qs[QK / 2])
{
    for (int j = 0; j < QK / 2; j++) qs[j] = (uint8_t)(levels[j] | (levels[j + QK / 2] << 4));
}

void quant_q4_0_set_levels(void *block, const uint8_t *levels) { pack_4bit(levels, ((block_q4_0 *)block)->qs); }
void quant_q4_1_set_levels(void *block, const uint8_t *levels) { pack_4bit(levels, ((block_q4_1 *)block)->qs); }

void quant_q5_0_set_levels(void *block, const uint8_t *levels)
{
    block_q5_0 *b = block;
    pack_5bit(levels, b->qs, b->qh);
}

void quant_q5_1_set_levels(void *block, const uint8_t *levels)
{
    block_q5_1 *b = block;
    pack_5bit(levels, b->qs, b->qh);
}

void quant_q8_0_set_levels(void *block, const uint8_t *levels)
{
    block_q8_0 *b = block;
    for (int j = 0; j < QK; j++) b->qs[j] = (int8_t)(levels[j] - 128);
}
