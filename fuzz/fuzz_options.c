/* Fuzz target `options`: the fuzz input is an argument list, arguments separated by NUL bytes (argv[0] is
 * "vkllm"), through the generating commands' parser, cli_parse_options (src/cli/options.h).  What it accepts
 * must be in the ranges the issue sets: finite numbers, counts within their types.
 *
 * Written against the parser of src/cli/options.c as it stands; when the side-effect-free parser of issue 10
 * item 1 lands there, this target moves to it. */
#include <math.h>
#include <string.h>

#include "cli/options.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 2] = {"vkllm"};
    int argc = 1;
    for (size_t at = 0; at < size && argc <= MAX_ARGS;) {
        argv[argc++] = buf + at;
        at += strlen(buf + at) + 1;
    }
    argv[argc] = NULL;
    cli_options o;
    if (cli_parse_options(argc, argv, &o, "usage\n") == 0) {
        FUZZ_CHECK(o.n_predict >= 0);
        FUZZ_CHECK(o.n_ctx <= 1u << 24);
        const vkllm_sampling *s = &o.sampling;
        FUZZ_CHECK(isfinite(s->temperature) && s->temperature >= 0);
        FUZZ_CHECK(isfinite(s->top_p) && isfinite(s->min_p) && isfinite(s->repeat_penalty));
        FUZZ_CHECK(s->repeat_last_n >= 0);
    }
    free(buf);
    return 0;
}
