#include "check.h"

#include <math.h>

vkllm_status ops_check_bytes(const char *op, const char *operand, vkr_range r, uint64_t bytes)
{
    if (!r.buffer || r.size < bytes)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %s holds %llu bytes, the shape needs %llu", op, operand,
                          (unsigned long long)(r.buffer ? r.size : 0), (unsigned long long)bytes);
    return VKLLM_OK;
}

vkllm_status ops_check_row_loop(const char *op, uint32_t cols, uint32_t wg)
{
    uint64_t iterations = ((uint64_t)cols + wg - 1) / wg;
    if (iterations > 65535u)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "%s: a row of %u columns needs %llu iterations per invocation at workgroup size %u; at most "
                          "65535 are allowed", op, cols, (unsigned long long)iterations, wg);
    return VKLLM_OK;
}

vkllm_status ops_check_rope_freq(const char *op, float freq_base, float freq_scale)
{
    if (!(freq_base > 0.0f) || !isfinite(freq_base) || !isfinite(freq_scale))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: freq_base %g must be finite and > 0, freq_scale %g finite",
                          op, (double)freq_base, (double)freq_scale);
    return VKLLM_OK;
}
