/* The smallest program that embeds vkllm: load a model, stream a greedy completion.
 *   sample-simple MODEL.gguf "Once upon a time" [N] */
#include <stdio.h>
#include <stdlib.h>

#include "vkllm.h"

static int print_piece(const char *piece, size_t len, void *user)
{
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 1; /* keep going */
}

int main(int argc, char **argv)
{
    /* N: decimal digits only; atoi would read "-1" as 4294967295 tokens and "nan" as 0. */
    char *end = NULL;
    unsigned long n_predict = 64;
    if (argc > 3 && (argv[3][0] < '0' || argv[3][0] > '9' || (n_predict = strtoul(argv[3], &end, 10)) > 100000 || *end))
        argc = 0;
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N]  (N: 0 to 100000 tokens, default 64)\n", argv[0]);
        return 2;
    }
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_status st = vkllm_model_load(argv[1], &model);
    if (st == VKLLM_OK) st = vkllm_context_create(model, NULL, &ctx);
    if (st == VKLLM_OK) {
        vkllm_sampling greedy = vkllm_sampling_default();
        greedy.temperature = 0;
        printf("%s", argv[2]);
        st = vkllm_generate(ctx, argv[2], 0, (uint32_t)n_predict, &greedy, print_piece, NULL, NULL);
        printf("\n");
    }
    if (st != VKLLM_OK) fprintf(stderr, "error: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    return st == VKLLM_OK ? 0 : 1;
}
