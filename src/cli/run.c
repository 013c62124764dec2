/* vkllm run: one completion, streamed as it is made; speeds on stderr at the end. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"

static const char usage[] =
    "usage: vkllm run [-m MODEL] -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
    "                 [--repeat-penalty R] [--repeat-last-n N] [--seed S] [--ctx N] [--kv f16|f32]\n"
    "  --temp 0 is greedy decoding (argmax on the GPU).\n";

static int print_piece(const char *piece, size_t len, void *user)
{
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 1;
}

int cli_run(int argc, char **argv)
{
    cli_options o;
    int r = cli_parse_options(argc, argv, &o, usage);
    if (r) return r < 0 ? 2 : 0;
    if (!o.prompt) {
        fprintf(stderr, "vkllm run: -p PROMPT is required\n%s", usage);
        return 2;
    }
    const char *path = cli_model_path(&o);
    if (!path) return 1;
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_status st = vkllm_model_load(path, &model);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = o.n_ctx;
    cp.kv_type = o.kv_f32 ? VKLLM_KV_F32 : VKLLM_KV_F16;
    if (st == VKLLM_OK) st = vkllm_context_create(model, &cp, &ctx);
    vkllm_generate_stats stats = {0};
    if (st == VKLLM_OK) {
        fputs(o.prompt, stdout);
        st = vkllm_generate(ctx, o.prompt, 0, (uint32_t)o.n_predict, &o.sampling, print_piece, NULL, &stats);
        fputc('\n', stdout);
    }
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm run: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    } else {
        fprintf(stderr, "\nprompt: %u tokens in %.1f ms (%.1f tokens/s)\n", stats.n_prompt, stats.prompt_ms,
                stats.prompt_ms > 0 ? 1e3 * stats.n_prompt / stats.prompt_ms : 0.0);
        fprintf(stderr, "generation: %u tokens in %.1f ms (%.1f tokens/s)\n", stats.n_generated, stats.generate_ms,
                stats.generate_ms > 0 ? 1e3 * stats.n_decode / stats.generate_ms : 0.0);
    }
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    return st == VKLLM_OK ? 0 : 1;
}
