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
    vkllm_model *model;
    vkllm_context *ctx;
    if (cli_open_model("run", &o, &model, &ctx) != 0) return 1;
    vkllm_generate_stats stats = {0};
    fputs(o.prompt, stdout);
    fflush(stdout); /* the prompt shows before generation starts, even when stdout is a pipe */
    vkllm_status st = vkllm_generate(ctx, o.prompt, 0, (uint32_t)o.n_predict, &o.sampling, print_piece, NULL, &stats);
    fputc('\n', stdout);
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
