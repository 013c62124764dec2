/* vkllm quantize: requantize a GGUF model with llama.cpp's per-tensor type rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "progress_bar.h"
#include "quant/parallel.h"
#include "runtime/log.h"
#include "quantize/quantize.h"

static void quantize_usage(FILE *out)
{
    fprintf(out, "usage: vkllm quantize [--pure] [--output-tensor-type T] [--token-embedding-type T] [--imatrix FILE]\n"
                 "                      [--method rtn|gptq|awq|awq+gptq --calib TEXT [--calib-ctx 512]\n"
                 "                      [--calib-chunks N] [--act-order] [--gptq-rounds 0]\n"
                 "                      [--gptq-descent 0] [--sequential off|layer|input\n"
                 "                      [--sequential-target float|quantized]]]\n"
                 "                      IN.gguf OUT.gguf TYPE\n"
                 "  types: %s\n"
                 "  --pure: every 2-D weight in TYPE, also for the mixtures (Q2_K)\n"
                 "  --output-tensor-type T, --token-embedding-type T: output.weight / token_embd.weight in T\n"
                 "                  whatever TYPE and --pure say (llama-quantize's options)\n"
                 "  --imatrix FILE: importance-weighted rounding with llama.cpp's importance matrix\n"
                 "                  (llama-imatrix's GGUF or .dat, or vkllm imatrix); same bytes as llama-quantize\n"
                 "  --method gptq: GPTQ with the Hessians of IN's own activations on the --calib text (chunks of\n"
                 "                 --calib-ctx tokens, at most --calib-chunks); --act-order: columns by importance;\n"
                 "                 --sequential layer|input: each layer's (each input's) Hessian from the model\n"
                 "                 quantized up to it (one calibration pass per layer / per input);\n"
                 "                 --sequential-target float: each weight fitted to what the unquantized\n"
                 "                 model's input gives it (GPTAQ; the default), quantized: to what the\n"
                 "                 quantized model's gives it (the GPTQ paper; one pass less per stage)\n"
                 "                 --gptq-rounds N: GPTQ again N times with the refit block scales held\n"
                 "                 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 blocks; each row keeps its best round)\n"
                 "                 --gptq-descent N: then N rounds of coordinate descent on the codes, each\n"
                 "                 code moved a step where that lowers the layer's output error (every\n"
                 "                 type; slower: about a GPTQ run per round)\n"
                 "  --method awq: AWQ's per-channel scales folded into the norms, up and V (same F32 function),\n"
                 "                then round to nearest; awq+gptq: then GPTQ\n"
                 "  VKLLM_QUANT_THREADS=N: CPU threads (default: one per online CPU; the same bytes for any N)\n",
            quant_recipe_names());
}

/* A tensor type vkllm can write (one of the weight types), for the per-tensor overrides. */
static bool override_type(const char *option, const char *name, bool *set, quant_type *type)
{
    if (!name) return true;
    static const quant_type writable[] = {QUANT_WEIGHT_TYPE_IDS};
    const size_t n = sizeof writable / sizeof writable[0];
    if (quant_type_from_name(name, type))
        for (size_t i = 0; i < n; i++)
            if (writable[i] == *type) return *set = true;
    fprintf(stderr, "vkllm quantize: %s '%s': not a tensor type vkllm writes (", option, name);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%s", i ? " " : "", quant_get_traits(writable[i])->name);
    fprintf(stderr, ")\n");
    return false;
}

int cli_quantize(int argc, char **argv)
{
    cli_quantize_options qo;
    char err[256];
    cli_parse_result parsed = cli_parse_quantize_options(argc, argv, &qo, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("quantize", parsed, err, quantize_usage);
    uint32_t n_threads = 0;
    if (!quant_threads_setting(&n_threads)) {
        fprintf(stderr, "vkllm quantize: VKLLM_QUANT_THREADS='%.32s': expected a count from 1 to %d\n",
                getenv("VKLLM_QUANT_THREADS"), QUANT_MAX_THREADS);
        return 2;
    }
    const char *args[3] = {qo.in, qo.out, qo.type};
    bool pure = qo.pure;
    quant_recipe recipe;
    if (!quant_recipe_from_name(args[2], pure, &recipe)) {
        fprintf(stderr, "vkllm quantize: unknown type '%s'\n", args[2]);
        quantize_usage(stderr);
        return 2;
    }
    if (!override_type("--output-tensor-type", qo.output_type, &recipe.set_output, &recipe.output_type) ||
        !override_type("--token-embedding-type", qo.token_embd_type, &recipe.set_token_embd, &recipe.token_embd_type))
        return 2;
    imatrix_data *imatrix = NULL;
    if (qo.imatrix && imatrix_load(qo.imatrix, &imatrix) != VKLLM_OK) {
        fprintf(stderr, "vkllm quantize: %s\n", vkllm_last_error());
        return 1;
    }
    progress_bar bar;
    progress_bar_init(&bar);
    const bool gptq = strstr(qo.method, "gptq") != NULL, awq = strstr(qo.method, "awq") != NULL;
    quant_calib_options calib = {.text_path = qo.calib, .n_ctx = qo.calib_ctx, .chunks = qo.calib_chunks,
                                 .gptq_params = {.damp = 0.01, .act_order = qo.act_order,
                                                 .rounds = (uint32_t)qo.gptq_rounds,
                                                 .descent = (uint32_t)qo.gptq_descent}, .gptq = gptq, .awq = awq,
                                 .sequential = !strcmp(qo.sequential, "layer")   ? QUANT_SEQUENTIAL_LAYER
                                               : !strcmp(qo.sequential, "input") ? QUANT_SEQUENTIAL_INPUT
                                                                                 : QUANT_SEQUENTIAL_OFF,
                                 .quantized_target = !strcmp(qo.sequential_target, "quantized")};
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
