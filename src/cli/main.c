/* vkllm: the command-line program.  Each subcommand lives in its own file under src/cli/ (the
 * benchmarks in bench/, the file tools in tools/). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_command commands[] = {
    {"run", "generate text from a prompt", cli_run},
    {"chat", "chat interactively with a model", cli_chat},
#ifdef VKLLM_HAVE_SERVER
    {"serve", "an OpenAI-compatible HTTP server (continuous batching)", cli_serve},
#endif
    {"bench", "prompt and generation speed, like llama-bench", cli_bench},
    {"perplexity", "perplexity of a text, KL divergence from a saved run", cli_perplexity},
    {"devices", "list Vulkan devices and their capabilities", cli_devices},
    {"bench-ops", "mat-vec and mat-mul speed per weight type vs. copy bandwidth", cli_bench_ops},
    {"convert", "convert a llama2.c checkpoint and tokenizer to GGUF", cli_convert},
    {"synth", "write a random-weight model shaped like a real one", cli_synth},
    {"imatrix", "importance matrix of a calibration text (llama.cpp's imatrix GGUF)", cli_imatrix},
    {"quantize", "requantize a GGUF model (llama.cpp's type rules)", cli_quantize},
    {"medusa-train", "train Medusa heads on the model's own output", cli_medusa_train},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: vkllm COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vkllm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
