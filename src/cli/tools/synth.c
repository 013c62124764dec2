/* vkllm synth: a random-weight model with the shapes, metadata and tokenizer of a real one. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
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
    cli_synth_options so;
    char err[256];
    cli_parse_result parsed = cli_parse_synth_options(argc, argv, &so, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("synth", parsed, err, synth_usage);
    const char *preset_name = so.preset, *type_name = so.type, *out = so.out;
    uint64_t seed = so.seed;
    bool pure = so.pure;
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
