#include "harness.h"
#include "quant/quant.h"

void th_f32_to_f16(const float *src, uint16_t *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = quant_f32_to_f16(src[i]);
}

void th_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = quant_f16_to_f32(src[i]);
}
