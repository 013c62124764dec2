/* vkllm quantize: requantize a GGUF model with llama.cpp's per-tensor type rules. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "progress_bar.h"
#include "runtime/log.h"
#include "quantize/quantize.h"

static void quantize_usage(FILE *out)
{
    fprintf(out, "usage: vkllm quantize [--pure] [--imatrix FILE] [--method rtn|gptq|awq|awq+gptq --calib TEXT\n"
                 "                      [--calib-ctx 512]"
                 "                      [--calib-chunks N] [--act-order]] IN.gguf OUT.gguf TYPE\n"
                 "  types: %s\n"
                 "  --pure: every 2-D weight in TYPE, also for the mixtures (Q2_K)\n"
                 "  --imatrix FILE: importance-weighted rounding with llama.cpp's importance matrix\n"
                 "                  (llama-imatrix's GGUF or .dat, or vkllm imatrix); same bytes as llama-quantize\n"
                 "  --method gptq: GPTQ with the Hessians of IN's own activations on the --calib text (chunks of\n"
                 "                 --calib-ctx tokens, at most --calib-chunks); --act-order: columns by importance\n"
                 "  --method awq: AWQ's per-channel scales folded into the norms, up and V (same F32 function),\n"
                 "                then round to nearest; awq+gptq: then GPTQ\n",
            quant_recipe_names());
}

int cli_quantize(int argc, char **argv)
{
    cli_quantize_options qo;
    char err[256];
    cli_parse_result parsed = cli_parse_quantize_options(argc, argv, &qo, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("quantize", parsed, err, quantize_usage);
    const char *args[3] = {qo.in, qo.out, qo.type};
    bool pure = qo.pure;
    quant_recipe recipe;
    if (!quant_recipe_from_name(args[2], pure, &recipe)) {
        fprintf(stderr, "vkllm quantize: unknown type '%s'\n", args[2]);
        quantize_usage(stderr);
        return 2;
    }
    imatrix_data *imatrix = NULL;
    if (qo.imatrix && imatrix_load(qo.imatrix, &imatrix) != VKLLM_OK) {
        fprintf(stderr, "vkllm quantize: %s\n", vkllm_last_error());
        return 1;
    }
    progress_bar bar;
    progress_bar_init(&bar);
    const bool gptq = strstr(qo.method, "gptq") != NULL, awq = strstr(qo.method, "awq") != NULL;
    quant_calib_options calib = {.text_path = qo.calib, .n_ctx = qo.calib_ctx, .chunks = qo.calib_chunks,
                                 .gptq_params = {.damp = 0.01, .act_order = qo.act_order}, .gptq = gptq, .awq = awq};
    quantize_options options = {.imatrix = imatrix, .imatrix_path = qo.imatrix,
                                .calib = gptq || awq ? &calib : NULL,
                                .progress = progress_bar_update, .progress_ctx = &bar};
    double started = vkllm_log_clock();
    vkllm_status status = quantize_file_ex(args[0], args[1], &recipe, &options);
    progress_bar_finish(&bar);
    imatrix_free(imatrix);
    if (status != VKLLM_OK) {
        fprintf(stderr, "vkllm quantize: %s\n", vkllm_last_error());
        return 1;
    }
    printf("wrote %s (%s%s%s%s) in %.1f s\n", args[1], recipe.name, recipe.pure ? "" : " mixture",
           qo.imatrix ? ", importance-weighted" : "",
           awq && gptq ? ", AWQ+GPTQ" : awq ? ", AWQ" : gptq ? ", GPTQ" : "", vkllm_log_clock() - started);
    return 0;
}
