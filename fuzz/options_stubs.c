/* The fuzz-only build links no Vulkan: the library functions src/cli/options.c calls besides the parsers
 * (cli_open_model's model loading, the sampling defaults of src/model/generate.c, the KV type names) are stood
 * in for here.  The
 * fuzz target calls only the parsers; the normal build's replay test links the real library instead. */
#include <strings.h>

#include "fuzz.h"
#include "vkllm.h"

vkllm_sampling vkllm_sampling_default(void)
{
    return (vkllm_sampling){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                            .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

/* src/server/job.c's defaults (the openai target). */
vkllm_request_params vkllm_request_default_params(void)
{
    return (vkllm_request_params){.sampling = vkllm_sampling_default()};
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

/* The real parser's behaviour (src/model/context.c), so that --kv values are fuzzed as the CLI reads them. */
vkllm_status vkllm_kv_type_parse(const char *name, vkllm_kv_type *type)
{
    static const char *const names[] = {[VKLLM_KV_F16] = "f16", [VKLLM_KV_F32] = "f32", [VKLLM_KV_Q8_0] = "q8_0",
                                        [VKLLM_KV_Q4_0] = "q4_0"};
    for (unsigned i = 0; name && i < sizeof names / sizeof *names; i++)
        if (!strcasecmp(name, names[i])) {
            *type = (vkllm_kv_type)i;
            return VKLLM_OK;
        }
    return VKLLM_ERROR_INVALID_ARGUMENT;
}
