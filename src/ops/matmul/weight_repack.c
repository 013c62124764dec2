/* Repacking GGUF weight rows into the GPU layout of shaders/dequant.glsl.  Each type decodes a ggml block
 * into integer levels (as the quant/ dequantizers read them) and re-packs them so that a chunk of 8
 * weights is one 32-bit word (4-bit parts) or half a word (2-bit parts); scales, mins and high bits go to
 * the aux array.  Word order is little-endian, as the device reads it. */
#include <string.h>

#include "matmul.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "weight_format.h"

#define QK QUANT_QK_LEGACY
#define QKK QUANT_QK_K

static void put_word(uint8_t *dst, uint32_t word)
{
    dst[0] = (uint8_t)word;
    dst[1] = (uint8_t)(word >> 8);
    dst[2] = (uint8_t)(word >> 16);
    dst[3] = (uint8_t)(word >> 24);
}

static void put_half(uint8_t *dst, uint16_t half)
{
    dst[0] = (uint8_t)half;
    dst[1] = (uint8_t)(half >> 8);
}

/* 32 levels -> 16 bytes: word j (chunk j) byte b = level 8j+b | level 8j+4+b << 4 (low nibbles only). */
static void pack_nibbles(const uint8_t levels[32], uint8_t out[16])
{
    for (int j = 0; j < 4; j++)
        for (int b = 0; b < 4; b++)
            out[4 * j + b] = (uint8_t)((levels[8 * j + b] & 15) | (levels[8 * j + 4 + b] & 15) << 4);
}

/* 64 levels -> 16 bytes: word w byte b bit pair k = level 16w + 4k + b (low 2 bits only). */
static void pack_crumbs(const uint8_t levels[64], uint8_t out[16])
{
    memset(out, 0, 16);
    for (int w = 0; w < 4; w++)
        for (int k = 0; k < 4; k++)
            for (int b = 0; b < 4; b++) out[4 * w + b] |= (uint8_t)((levels[16 * w + 4 * k + b] & 3) << (2 * k));
}

/* Bit `shift` of n levels into words: bit t of word t / 32. */
static void pack_bit(const uint8_t *levels, int n, int shift, uint8_t *out)
{
    for (int w = 0; w < n / 32; w++) {
        uint32_t word = 0;
        for (int t = 0; t < 32; t++) word |= (uint32_t)((levels[32 * w + t] >> shift) & 1) << t;
        put_word(out + 4 * w, word);
    }
}

/* Bits shift..shift+1 of 32 levels into 2 words: pair t at bit 2 * (t % 16) of word t / 16. */
static void pack_pairs(const uint8_t levels[32], int shift, uint8_t out[8])
{
    for (int w = 0; w < 2; w++) {
        uint32_t word = 0;
        for (int t = 0; t < 16; t++) word |= (uint32_t)((levels[16 * w + t] >> shift) & 3) << (2 * t);
        put_word(out + 4 * w, word);
    }
}

/* ---- float types: copied, rows zero-padded to a multiple of 8 elements ---- */

static void repack_f32(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    memcpy(q, src, 4ull * cols);
}

static void repack_f16(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    memcpy(q, src, 2ull * cols);
}

/* ---- legacy blocks of 32: one group each ---- */

static void q4_levels(const uint8_t qs[16], uint8_t levels[32])
{
    for (int j = 0; j < 16; j++) {
        levels[j] = qs[j] & 15;
        levels[j + 16] = qs[j] >> 4;
    }
}

static void q5_levels(const uint8_t qs[16], const uint8_t qh[4], uint8_t levels[32])
{
    uint32_t high = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    q4_levels(qs, levels);
    for (int j = 0; j < 32; j++) levels[j] |= (uint8_t)(((high >> j) & 1) << 4);
}

static void repack_q8_0(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QK; i++) {
        block_q8_0 b;
        memcpy(&b, src + i * sizeof b, sizeof b);
        memcpy(q + 32 * i, b.qs, 32);
        put_half(aux + 2 * i, b.d);
    }
}

static void repack_q4_0(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QK; i++) {
        block_q4_0 b;
        uint8_t levels[32];
        memcpy(&b, src + i * sizeof b, sizeof b);
        q4_levels(b.qs, levels);
        pack_nibbles(levels, q + 16 * i);
        put_half(aux + 2 * i, b.d);
    }
}

static void repack_q4_1(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QK; i++) {
        block_q4_1 b;
        uint8_t levels[32];
        memcpy(&b, src + i * sizeof b, sizeof b);
        q4_levels(b.qs, levels);
        pack_nibbles(levels, q + 16 * i);
        put_word(aux + 4 * i, b.d | (uint32_t)b.m << 16);
    }
}

static void repack_q5_0(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QK; i++) {
        block_q5_0 b;
        uint8_t levels[32];
        memcpy(&b, src + i * sizeof b, sizeof b);
        q5_levels(b.qs, b.qh, levels);
        pack_nibbles(levels, q + 16 * i);
        pack_bit(levels, 32, 4, aux + 8 * i);
        put_word(aux + 8 * i + 4, b.d);
    }
}

static void repack_q5_1(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QK; i++) {
        block_q5_1 b;
        uint8_t levels[32];
        memcpy(&b, src + i * sizeof b, sizeof b);
        q5_levels(b.qs, b.qh, levels);
        pack_nibbles(levels, q + 16 * i);
        pack_bit(levels, 32, 4, aux + 8 * i);
        put_word(aux + 8 * i + 4, b.d | (uint32_t)b.m << 16);
    }
}

/* ---- K-quants: super-blocks of 256 ---- */

/* Level of weight j of a Q2_K/Q3_K super-block's 2-bit array: for each 128-weight half, byte l of its 32
 * holds weights l, l+32, l+64, l+96 in bit pairs 0-1, 2-3, 4-5, 6-7. */
static uint8_t k_2bit(const uint8_t qs[64], int j)
{
    const int half = j / 128, within = j % 128;
    return (qs[half * 32 + within % 32] >> (2 * (within / 32))) & 3;
}

static void repack_q2_K(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QKK; i++) {
        block_q2_K b;
        uint8_t levels[QKK];
        memcpy(&b, src + i * sizeof b, sizeof b);
        for (int j = 0; j < QKK; j++) levels[j] = k_2bit(b.qs, j);
        for (int g = 0; g < 4; g++) pack_crumbs(levels + 64 * g, q + 64 * i + 16 * g);
        uint8_t *a = aux + 20 * i;
        memcpy(a, b.scales, 16);
        put_word(a + 16, b.d | (uint32_t)b.dmin << 16);
    }
}

/* Q3_K's 6-bit scale of sub-block j, unbiased: low nibble in scales[j % 8] (j >= 8: high nibble), high 2
 * bits in scales[8 + j % 4] at bit 2 * (j / 4). */
static int q3_K_scale(const uint8_t scales[12], int j)
{
    int low = j < 8 ? scales[j] & 15 : scales[j - 8] >> 4;
    int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (low | high << 4) - 32;
}

static void repack_q3_K(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QKK; i++) {
        block_q3_K b;
        uint8_t levels[QKK];
        memcpy(&b, src + i * sizeof b, sizeof b);
        /* level = low 2 bits | third bit << 2; the shader subtracts 4 (ggml: 4 when the hmask bit is 0). */
        for (int j = 0; j < QKK; j++)
            levels[j] = (uint8_t)(k_2bit(b.qs, j) | ((b.hmask[j % 32] >> (j / 32)) & 1) << 2);
        for (int g = 0; g < 4; g++) pack_crumbs(levels + 64 * g, q + 64 * i + 16 * g);
        uint8_t *a = aux + 52 * i;
        put_word(a, b.d);
        for (int j = 0; j < 16; j++) a[4 + j] = (uint8_t)(int8_t)q3_K_scale(b.scales, j);
        pack_bit(levels, QKK, 2, a + 20);
    }
}

/* Q4_K/Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes. */
static void k_scale_min(const uint8_t s[12], int j, uint8_t *scale, uint8_t *min)
{
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (uint8_t)((s[j + 4] & 15) | (s[j - 4] >> 6) << 4);
        *min = (uint8_t)((s[j + 4] >> 4) | (s[j] >> 6) << 4);
    }
}

/* Shared by Q4_K and Q5_K: levels of the low nibbles (weight 32c + l: nibble c % 2 of qs[32 (c / 2) + l]),
 * quants, and the first 5 aux words (d | dmin << 16, 8 scale bytes, 8 min bytes). */
static void repack_q4_K_part(const uint8_t qs[128], uint16_t d, uint16_t dmin, const uint8_t scales[12],
                             uint8_t levels[QKK], uint8_t *q, uint8_t *a)
{
    for (int c = 0; c < 8; c++)
        for (int l = 0; l < 32; l++) levels[32 * c + l] = (qs[32 * (c / 2) + l] >> (4 * (c % 2))) & 15;
    for (int g = 0; g < 8; g++) pack_nibbles(levels + 32 * g, q + 16 * g);
    put_word(a, d | (uint32_t)dmin << 16);
    for (int j = 0; j < 8; j++) k_scale_min(scales, j, &a[4 + j], &a[12 + j]);
}

static void repack_q4_K(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QKK; i++) {
        block_q4_K b;
        uint8_t levels[QKK];
        memcpy(&b, src + i * sizeof b, sizeof b);
        repack_q4_K_part(b.qs, b.d, b.dmin, b.scales, levels, q + 128 * i, aux + 20 * i);
    }
}

static void repack_q5_K(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QKK; i++) {
        block_q5_K b;
        uint8_t levels[QKK];
        memcpy(&b, src + i * sizeof b, sizeof b);
        repack_q4_K_part(b.qs, b.d, b.dmin, b.scales, levels, q + 128 * i, aux + 52 * i);
        /* fifth bit of weight 32c + l is bit c of qh[l] */
        for (int c = 0; c < 8; c++)
            for (int l = 0; l < 32; l++) levels[32 * c + l] |= (uint8_t)(((b.qh[l] >> c) & 1) << 4);
        pack_bit(levels, QKK, 4, aux + 52 * i + 20);
    }
}

static void repack_q6_K(const uint8_t *src, uint32_t cols, uint8_t *q, uint8_t *aux)
{
    for (uint32_t i = 0; i < cols / QKK; i++) {
        block_q6_K b;
        uint8_t levels[QKK];
        memcpy(&b, src + i * sizeof b, sizeof b);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = b.ql + 64 * half, *qh = b.qh + 32 * half;
            uint8_t *L = levels + 128 * half;
            for (int l = 0; l < 32; l++) {
                L[l] = (uint8_t)((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4);
                L[l + 32] = (uint8_t)((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4);
                L[l + 64] = (uint8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
                L[l + 96] = (uint8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
            }
        }
        uint8_t *a = aux + 84 * i;
        put_word(a, b.d);
        memcpy(a + 4, b.scales, 16);
        for (int g = 0; g < 8; g++) {
            pack_nibbles(levels + 32 * g, q + 128 * i + 16 * g);
            pack_pairs(levels + 32 * g, 4, a + 20 + 8 * g);
        }
    }
}

static const struct weight_format formats[] = {
    /* type, name, group, group_bytes, aux_span, aux_bytes, fp16, f16_dots, q8, repack_row */
    {QUANT_F32, "f32", 8, 32, 8, 0, false, false, false, repack_f32},
    {QUANT_F16, "f16", 8, 16, 8, 0, true, true, false, repack_f16},
    {QUANT_BF16, "bf16", 8, 16, 8, 0, false, false, false, repack_f16},
    {QUANT_Q8_0, "q8_0", 32, 32, 32, 2, true, true, true, repack_q8_0},
    {QUANT_Q4_0, "q4_0", 32, 16, 32, 2, true, true, true, repack_q4_0},
    {QUANT_Q4_1, "q4_1", 32, 16, 32, 4, true, false, true, repack_q4_1},
    {QUANT_Q5_0, "q5_0", 32, 16, 32, 8, true, true, true, repack_q5_0},
    {QUANT_Q5_1, "q5_1", 32, 16, 32, 8, true, false, true, repack_q5_1},
    {QUANT_Q2_K, "q2_k", 64, 16, QKK, 20, true, false, true, repack_q2_K},
    {QUANT_Q3_K, "q3_k", 64, 16, QKK, 52, true, true, true, repack_q3_K},
    {QUANT_Q4_K, "q4_k", 32, 16, QKK, 20, true, false, true, repack_q4_K},
    {QUANT_Q5_K, "q5_k", 32, 16, QKK, 52, true, false, true, repack_q5_K},
    {QUANT_Q6_K, "q6_k", 32, 16, QKK, 84, true, true, true, repack_q6_K},
};

_Static_assert(sizeof formats / sizeof formats[0] == QUANT_WEIGHT_TYPE_COUNT,
               "one GPU format per type of QUANT_WEIGHT_TYPES (quant/quant.h)");

const struct weight_format *weight_format_of(uint32_t type)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i].type == type) return &formats[i];
    return NULL;
}
