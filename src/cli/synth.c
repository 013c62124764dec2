/* vkllm synth: a random-weight model with the shapes, metadata and tokenizer of a real one. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "progress_bar.h"
#include "tools/synth.h"

static void synth_usage(FILE *out)
{
    fprintf(out, "usage: vkllm synth --preset NAME --type TYPE -o OUT.gguf [--seed S] [--pure]\n"
                 "  writes a model with random weights and the tensors, metadata and (generated) tokenizer of a\n"
                 "  real one; the same preset, type and seed give the same file byte for byte\n"
                 "  presets:");
    for (size_t i = 0; synth_preset_at(i); i++) fprintf(out, " %s", synth_preset_at(i)->name);
    fprintf(out, "\n  types: %s\n  --pure: every 2-D weight in TYPE, also for the mixtures (Q2_K)\n",
            quant_recipe_names());
}

int cli_synth(int argc, char **argv)
{
    const char *preset_name = NULL, *type_name = NULL, *out = NULL;
    uint64_t seed = 0;
    bool pure = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            synth_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc) {
            preset_name = argv[++i];
        } else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
            type_name = argv[++i];
        } else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            char *end = NULL;
            seed = strtoull(argv[++i], &end, 0);
            if (!*argv[i] || *end) {
                fprintf(stderr, "vkllm synth: --seed '%s' is not a number\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--pure") == 0) {
            pure = true;
        } else {
            fprintf(stderr, "vkllm synth: unexpected argument '%s'\n", argv[i]);
            synth_usage(stderr);
            return 2;
        }
    }
    if (!preset_name || !type_name || !out) {
        synth_usage(stderr);
        return 2;
    }
    const synth_preset *preset = synth_preset_find(preset_name);
    synth_options options = {.seed = seed};
    if (!preset || !quant_recipe_from_name(type_name, pure, &options.recipe)) {
        fprintf(stderr, "vkllm synth: unknown %s '%s'\n", preset ? "type" : "preset", preset ? type_name : preset_name);
        synth_usage(stderr);
        return 2;
    }
    progress_bar bar;
    progress_bar_init(&bar);
    options.progress = progress_bar_update;
    options.progress_ctx = &bar;
    vkllm_status status = synth_write(preset, &options, out);
    progress_bar_finish(&bar);
    if (status != VKLLM_OK) {
        fprintf(stderr, "vkllm synth: %s\n", vkllm_last_error());
        return 1;
    }
    printf("wrote %s (%s, %s%s, seed %" PRIu64 ")\n", out, preset->name, options.recipe.name,
           options.recipe.pure ? "" : " mixture", seed);
    return 0;
}
