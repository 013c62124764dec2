/* A program that embeds an installed vkllm, built by tests/consumer/run.sh through find_package(vkllm) and
 * through pkg-config: it checks the header against the library and, given a model, generates a few greedy
 * tokens.  Only <vkllm.h>: nothing else of vkllm is installed.
 *   consumer [MODEL.gguf] */
#include <stdio.h>
#include <string.h>

#include <vkllm.h>

static int print_piece(const char *piece, size_t len, void *user)
{
    (void)user;
    fwrite(piece, 1, len, stdout);
    return 1;
}

int main(int argc, char **argv)
{
    if (strcmp(vkllm_version(), VKLLM_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", VKLLM_VERSION_STRING, vkllm_version());
        return 1;
    }
    printf("vkllm %s (%d.%d.%d), %s\n", vkllm_version(), VKLLM_VERSION_MAJOR, VKLLM_VERSION_MINOR,
           VKLLM_VERSION_PATCH, vkllm_status_name(VKLLM_ERROR_IO));
    if (argc < 2) return 0;
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_status st = vkllm_model_load(argv[1], &model);
    if (st == VKLLM_OK) st = vkllm_context_create(model, NULL, &ctx);
    if (st == VKLLM_OK) {
        vkllm_sampling greedy = vkllm_sampling_default();
        greedy.temperature = 0;
        printf("Once upon a time");
        st = vkllm_generate(ctx, "Once upon a time", 0, 16, &greedy, print_piece, NULL, NULL);
        printf("\n");
    }
    if (st != VKLLM_OK) fprintf(stderr, "consumer: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    return st == VKLLM_OK ? 0 : 1;
}
