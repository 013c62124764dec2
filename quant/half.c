/* IEEE binary16 and bfloat16 conversions, bit-identical to ggml's scalar versions: round to nearest even,
 * subnormals kept, overflow to infinity.  NaN handling follows ggml too: f32->f16 gives the canonical quiet
 * NaN 0x7E00 (sign kept), f16->f32 and f32->bf16 keep the payload and set the quiet bit. */
#include "quant_internal.h"

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Shift right by `shift` (1..31) rounding to nearest, ties to even. */
static uint32_t shift_right_round_even(uint32_t value, uint32_t shift)
{
    uint32_t kept = value >> shift;
    uint32_t rest = value & ((UINT32_C(1) << shift) - 1);
    uint32_t half = UINT32_C(1) << (shift - 1);
    if (rest > half || (rest == half && (kept & 1))) kept++;
    return kept;
}

uint16_t quant_f32_to_f16(float f)
{
    const uint32_t bits = float_bits(f);
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    const uint32_t magnitude = bits & 0x7fffffff;

    if (magnitude > 0x7f800000) return sign | 0x7e00;    /* NaN */
    if (magnitude >= 0x477ff000) return sign | 0x7c00;   /* >= 65520 rounds past the largest half */
    if (magnitude >= 0x38800000) {                       /* >= 2^-14: a normal half */
        /* Rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits; a carry out of the
         * mantissa correctly bumps the exponent. */
        return sign | (uint16_t)shift_right_round_even(magnitude - 0x38000000, 13);
    }
    /* Subnormal half: count units of 2^-24.  magnitude = mantissa * 2^(exponent - 150). */
    const uint32_t exponent = magnitude >> 23;
    if (exponent < 102) return sign; /* below 2^-25: rounds to zero */
    const uint32_t mantissa = (magnitude & 0x7fffff) | 0x800000;
    return sign | (uint16_t)shift_right_round_even(mantissa, 126 - exponent);
}

float quant_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exponent = (h >> 10) & 0x1f;
    const uint32_t mantissa = h & 0x3ff;

    if (exponent == 0x1f) {
        uint32_t nan_quiet = mantissa ? 0x400000 : 0;
        return bits_float(sign | 0x7f800000 | (mantissa << 13) | nan_quiet);
    }
    if (exponent == 0) {
        /* Subnormal (or zero): mantissa * 2^-24 is exact in float. */
        float magnitude = (float)mantissa * 0x1.0p-24f;
        return bits_float(sign | float_bits(magnitude));
    }
    return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t quant_f32_to_bf16(float f)
{
    const uint32_t bits = float_bits(f);
    if ((bits & 0x7fffffff) > 0x7f800000) return (uint16_t)((bits >> 16) | 0x40); /* NaN, made quiet */
    /* Round to nearest even on the low 16 bits; infinities stay, the largest floats overflow to inf. */
    return (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

float quant_bf16_to_f32(uint16_t h) { return bits_float((uint32_t)h << 16); }

void quant_f16_quantize(const float *src, void *dst, uint64_t n)
{
    uint8_t *out = dst;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h = quant_f32_to_f16(src[i]);
        memcpy(out + 2 * i, &h, sizeof h);
    }
}

void quant_f16_dequantize(const void *src, float *dst, uint64_t n)
{
    const uint8_t *in = src;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, sizeof h);
        dst[i] = quant_f16_to_f32(h);
    }
}

void quant_bf16_quantize(const float *src, void *dst, uint64_t n)
{
    uint8_t *out = dst;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h = quant_f32_to_bf16(src[i]);
        memcpy(out + 2 * i, &h, sizeof h);
    }
}

void quant_bf16_dequantize(const void *src, float *dst, uint64_t n)
{
    const uint8_t *in = src;
    for (uint64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, in + 2 * i, sizeof h);
        dst[i] = quant_bf16_to_f32(h);
    }
}
