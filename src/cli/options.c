#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where a model is looked for when neither -m nor VKLLM_MODEL names one.  CMake passes the shared
 * models folder of this repository's machines (../shared/models/stories260K.gguf beside the checkout). */
#ifndef VKLLM_DEFAULT_MODEL
#define VKLLM_DEFAULT_MODEL ""
#endif

static int parse_number(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(text ? text : "", &end);
    if (!text || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "vkllm: %s needs a number in [%g, %g], got '%s'\n", flag, lo, hi, text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

static int missing_value(const char *flag)
{
    fprintf(stderr, "vkllm: %s needs a value\n", flag);
    return -1;
}

int cli_parse_options(int argc, char **argv, cli_options *o, const char *usage)
{
    *o = (cli_options){.n_predict = 128, .sampling = vkllm_sampling_default()};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
#define NUM(lo, hi) (parse_number(a, v, lo, hi, &x) == 0 ? (i++, 1) : 0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("%s", usage);
            return 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v) return missing_value(a);
            o->model = v, i++;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!v) return missing_value(a);
            o->prompt = v, i++;
        } else if (!strcmp(a, "--template")) {
            if (!v) return missing_value(a);
            o->chat_template = v, i++;
        } else if (!strcmp(a, "--system")) {
            if (!v) return missing_value(a);
            o->system = v, i++;
        } else if (!strcmp(a, "--kv")) {
            if (!v || (strcmp(v, "f16") && strcmp(v, "f32"))) {
                fprintf(stderr, "vkllm: --kv takes f16 or f32\n");
                return -1;
            }
            o->kv_f32 = !strcmp(v, "f32"), i++;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!NUM(0, 1e9)) return -1;
            o->n_predict = (int)x;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!NUM(0, 1 << 24)) return -1;
            o->n_ctx = (uint32_t)x;
        } else if (!strcmp(a, "--temp")) {
            if (!NUM(0, 100)) return -1;
            o->sampling.temperature = (float)x;
        } else if (!strcmp(a, "--top-k")) {
            if (!NUM(-1, 1e9)) return -1;
            o->sampling.top_k = (int32_t)x;
        } else if (!strcmp(a, "--top-p")) {
            if (!NUM(0, 1)) return -1;
            o->sampling.top_p = (float)x;
        } else if (!strcmp(a, "--min-p")) {
            if (!NUM(0, 1)) return -1;
            o->sampling.min_p = (float)x;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!NUM(0.01, 100)) return -1;
            o->sampling.repeat_penalty = (float)x;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!NUM(0, 1e9)) return -1;
            o->sampling.repeat_last_n = (int32_t)x;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (!NUM(0, 1.8e19)) return -1;
            o->sampling.seed = (uint64_t)x;
        } else {
            fprintf(stderr, "vkllm: unknown flag '%s'\n%s", a, usage);
            return -1;
        }
#undef NUM
    }
    return 0;
}

const char *cli_model_path(const cli_options *o)
{
    if (o->model) return o->model;
    const char *env = getenv("VKLLM_MODEL");
    if (env && *env) return env;
    if (*VKLLM_DEFAULT_MODEL && access(VKLLM_DEFAULT_MODEL, R_OK) == 0) return VKLLM_DEFAULT_MODEL;
    static char user_default[1024];
    const char *home = getenv("HOME");
    if (home) {
        snprintf(user_default, sizeof user_default, "%s/.local/share/vkllm/stories260K.gguf", home);
        if (access(user_default, R_OK) == 0) return user_default;
    }
    fprintf(stderr, "vkllm: no model: pass -m MODEL.gguf, set VKLLM_MODEL, or put stories260K.gguf in "
                    "~/.local/share/vkllm/ (see README)\n");
    return NULL;
}

int cli_open_model(const char *command, const cli_options *o, vkllm_model **model, vkllm_context **ctx)
{
    *model = NULL;
    *ctx = NULL;
    const char *path = cli_model_path(o);
    if (!path) return -1;
    vkllm_status st = vkllm_model_load(path, model);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.kv_type = o->kv_f32 ? VKLLM_KV_F32 : VKLLM_KV_F16;
    if (st == VKLLM_OK) st = vkllm_context_create(*model, &cp, ctx);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm %s: %s: %s\n", command, vkllm_status_name(st), vkllm_last_error());
        vkllm_model_free(*model);
        *model = NULL;
        return -1;
    }
    return 0;
}
