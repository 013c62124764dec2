#include "check.h"

vkllm_status ops_check_bytes(const char *op, const char *operand, vkr_range r, uint64_t bytes)
{
    if (!r.buffer || r.size < bytes)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %s holds %llu bytes, the shape needs %llu", op, operand,
                          (unsigned long long)(r.buffer ? r.size : 0), (unsigned long long)bytes);
    return VKLLM_OK;
}
