/* vkllm convert: llama2.c checkpoint + tokenizer -> GGUF. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "tools/llama2c.h"

static void convert_usage(FILE *out)
{
    fprintf(out, "usage: vkllm convert MODEL.bin --tokenizer TOKENIZER.bin -o OUT.gguf\n"
                 "  converts a llama2.c checkpoint (karpathy/llama2.c legacy format) and its tokenizer to GGUF\n");
}

int cli_convert(int argc, char **argv)
{
    cli_convert_options co;
    char err[256];
    cli_parse_result parsed = cli_parse_convert_options(argc, argv, &co, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("convert", parsed, err, convert_usage);
    const char *model = co.model, *tokenizer = co.tokenizer, *out = co.out;
    if (llama2c_convert(model, tokenizer, out) != VKLLM_OK) {
        fprintf(stderr, "vkllm convert: %s\n", vkllm_last_error());
        return 1;
    }
    printf("wrote %s\n", out);
    return 0;
}
