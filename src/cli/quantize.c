/* vkllm quantize: requantize a GGUF model with llama.cpp's per-tensor type rules. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "progress_bar.h"
#include "tools/quantize.h"

static void quantize_usage(FILE *out)
{
    fprintf(out, "usage: vkllm quantize [--pure] IN.gguf OUT.gguf TYPE\n"
                 "  types: %s\n"
                 "  --pure: every 2-D weight in TYPE, also for the mixtures (Q2_K)\n",
            quant_recipe_names());
}

int cli_quantize(int argc, char **argv)
{
    const char *args[3] = {NULL, NULL, NULL};
    int n_args = 0;
    bool pure = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            quantize_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--pure") == 0) {
            pure = true;
        } else if (argv[i][0] != '-' && n_args < 3) {
            args[n_args++] = argv[i];
        } else {
            fprintf(stderr, "vkllm quantize: unexpected argument '%s'\n", argv[i]);
            quantize_usage(stderr);
            return 2;
        }
    }
    if (n_args != 3) {
        quantize_usage(stderr);
        return 2;
    }
    quant_recipe recipe;
    if (!quant_recipe_from_name(args[2], pure, &recipe)) {
        fprintf(stderr, "vkllm quantize: unknown type '%s'\n", args[2]);
        quantize_usage(stderr);
        return 2;
    }
    progress_bar bar;
    progress_bar_init(&bar);
    vkllm_status status = quantize_file(args[0], args[1], &recipe, progress_bar_update, &bar);
    progress_bar_finish(&bar);
    if (status != VKLLM_OK) {
        fprintf(stderr, "vkllm quantize: %s\n", vkllm_last_error());
        return 1;
    }
    printf("wrote %s (%s%s)\n", args[1], recipe.name, recipe.pure ? "" : " mixture");
    return 0;
}
