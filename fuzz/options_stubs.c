/* The fuzz-only build links no Vulkan: the library functions src/cli/options.c calls besides the parsers
 * (cli_open_model's model loading, the sampling defaults of src/model/generate.c) are stood in for here.  The
 * fuzz target calls only the parsers; the normal build's replay test links the real library instead. */
#include "fuzz.h"
#include "vkllm.h"

vkllm_sampling vkllm_sampling_default(void)
{
    return (vkllm_sampling){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                            .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

vkllm_model_params vkllm_model_default_params(void) { return (vkllm_model_params){0}; }

vkllm_status vkllm_model_load_params(const char *path, const vkllm_model_params *params, vkllm_model **out)
{
    (void)path, (void)params;
    *out = NULL;
    return VKLLM_ERROR_UNSUPPORTED;
}

void vkllm_model_free(vkllm_model *model) { (void)model; }

vkllm_context_params vkllm_context_default_params(void) { return (vkllm_context_params){0}; }

vkllm_status vkllm_context_create(vkllm_model *model, const vkllm_context_params *params, vkllm_context **out)
{
    (void)model, (void)params;
    *out = NULL;
    return VKLLM_ERROR_UNSUPPORTED;
}
