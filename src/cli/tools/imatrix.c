/* vkllm imatrix: llama-imatrix's importance matrix, from vkllm's forward pass (src/quantize/imatrix.c). */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "progress_bar.h"
#include "runtime/log.h"
#include "quantize/imatrix.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: vkllm imatrix [-m MODEL] -f TEXT -o OUT.gguf [-c 512] [--chunks N] [--process-output]\n"
                 "                     [--device INDEX|NAME]\n"
                 "  sums each weight's squared inputs over the text, cut into chunks of -c tokens (BOS in front,\n"
                 "  as llama-imatrix); OUT is llama.cpp's imatrix GGUF, for vkllm or llama-quantize --imatrix\n"
                 "  --process-output: also output.weight (llama-imatrix leaves it out by default)\n");
}

int cli_imatrix(int argc, char **argv)
{
    cli_imatrix_options o;
    char err[256];
    cli_parse_result parsed = cli_parse_imatrix_options(argc, argv, &o, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("imatrix", parsed, err, usage);
    cli_options ro = {.model = o.model};
    const char *path = cli_model_path(&ro);
    if (!path) return 1;
    imatrix_options io = {.model = path, .text_path = o.file, .n_ctx = o.n_ctx, .chunks = o.chunks,
                          .process_output = o.process_output, .device = o.device};
    progress_bar bar;
    progress_bar_init(&bar);
    imatrix_data *d = NULL;
    double started = vkllm_log_clock_ms();
    vkllm_status st = imatrix_compute(&io, progress_bar_update, &bar, &d);
    progress_bar_finish(&bar);
    if (st == VKLLM_OK) st = imatrix_write(d, o.out);
    if (st == VKLLM_OK)
        printf("wrote %s: %llu entries from %u chunks of %u tokens in %.1f s\n", o.out,
               (unsigned long long)d->n_entries, d->chunk_count, d->chunk_size, (vkllm_log_clock_ms() - started) / 1e3);
    else
        fprintf(stderr, "vkllm imatrix: %s\n", vkllm_last_error());
    imatrix_free(d);
    return st == VKLLM_OK ? 0 : 1;
}
