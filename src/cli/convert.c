/* vkllm convert: llama2.c checkpoint + tokenizer -> GGUF. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tools/llama2c.h"

static void convert_usage(FILE *out)
{
    fprintf(out, "usage: vkllm convert MODEL.bin --tokenizer TOKENIZER.bin -o OUT.gguf\n"
                 "  converts a llama2.c checkpoint (karpathy/llama2.c legacy format) and its tokenizer to GGUF\n");
}

int cli_convert(int argc, char **argv)
{
    const char *model = NULL, *tokenizer = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            convert_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            tokenizer = argv[++i];
        } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] != '-' && !model) {
            model = argv[i];
        } else {
            fprintf(stderr, "vkllm convert: unexpected argument '%s'\n", argv[i]);
            convert_usage(stderr);
            return 2;
        }
    }
    if (!model || !tokenizer || !out) {
        convert_usage(stderr);
        return 2;
    }
    if (llama2c_convert(model, tokenizer, out) != VKLLM_OK) {
        fprintf(stderr, "vkllm convert: %s\n", vkllm_last_error());
        return 1;
    }
    printf("wrote %s\n", out);
    return 0;
}
