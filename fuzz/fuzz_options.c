/* Fuzz target `options`: the fuzz input is a command line, arguments separated by NUL bytes, the first naming
 * the command (run, chat, bench, bench-ops, synth, quantize, convert, devices), through cli_parse_command_line
 * (src/cli/options.h), the side-effect-free parser of every command.  What it accepts must be within the ranges
 * options.h states; what it refuses must come with a message. */
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

static void check_run(const cli_options *o)
{
    FUZZ_CHECK(o->n_predict >= 0 && o->n_predict <= CLI_MAX_N_PREDICT);
    FUZZ_CHECK(o->n_ctx <= CLI_MAX_CTX);
    const vkllm_sampling *s = &o->sampling;
    FUZZ_CHECK(isfinite(s->temperature) && s->temperature >= 0 && s->temperature <= 100);
    FUZZ_CHECK(s->top_k >= -1);
    FUZZ_CHECK(isfinite(s->top_p) && s->top_p >= 0 && s->top_p <= 1);
    FUZZ_CHECK(isfinite(s->min_p) && s->min_p >= 0 && s->min_p <= 1);
    FUZZ_CHECK(isfinite(s->repeat_penalty) && s->repeat_penalty >= 0.01f && s->repeat_penalty <= 100);
    FUZZ_CHECK(s->repeat_last_n >= 0 && s->repeat_last_n <= CLI_MAX_CTX);
}

static void check_bench_ops(const cli_bench_ops_options *o)
{
    FUZZ_CHECK(o->n_mv <= CLI_BENCH_OPS_MAX_SHAPES && o->n_mm <= CLI_BENCH_OPS_MAX_SHAPES);
    FUZZ_CHECK(o->n_ns <= CLI_BENCH_OPS_MAX_NS && o->n_batches <= CLI_BENCH_OPS_MAX_NS);
    FUZZ_CHECK(o->n_sweeps <= CLI_BENCH_OPS_MAX_SWEEPS);
    for (uint32_t i = 0; i < o->n_sweeps; i++) {
        FUZZ_CHECK(o->sweeps[i].n <= CLI_BENCH_OPS_MAX_SWEEP_VALUES);
        FUZZ_CHECK(memchr(o->sweeps[i].field, 0, sizeof o->sweeps[i].field) != NULL);
    }
    FUZZ_CHECK(o->rotate_mb >= -1 && o->rotate_mb <= CLI_BENCH_OPS_MAX_ROTATE_MB);
    FUZZ_CHECK(o->runs == -1 || (o->runs >= 1 && o->runs <= 64));
    FUZZ_CHECK(o->min_ms == -1 || (o->min_ms >= 1 && o->min_ms <= 600000));
}

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
    /* The message buffer's size comes from the input's length, so tiny buffers (1 byte, 0 bytes) are covered. */
    char err[256];
    const size_t err_len = size % 7 == 0 ? size % 3 : sizeof err;
    memset(err, 'x', sizeof err);
    cli_command_options o;
    const cli_parse_result r = cli_parse_command_line(argc, argv, &o, err, err_len);
    FUZZ_CHECK(r == CLI_PARSE_OK || r == CLI_PARSE_ERROR || r == CLI_PARSE_HELP);
    /* A refusal writes a NUL-terminated message within err_len (empty only where one byte leaves no room). */
    if (r == CLI_PARSE_ERROR && err_len > 0) FUZZ_CHECK(memchr(err, 0, err_len) != NULL);
    if (r == CLI_PARSE_ERROR && err_len > 1) FUZZ_CHECK(err[0] != '\0');
    if (r == CLI_PARSE_OK) {
        const char *c = o.command;
        if (!strcmp(c, "run") || !strcmp(c, "chat")) check_run(&o.u.run);
        if (!strcmp(c, "bench")) {
            FUZZ_CHECK(o.u.bench.n_prompt <= CLI_BENCH_MAX_TOKENS && o.u.bench.n_gen <= CLI_BENCH_MAX_TOKENS);
            FUZZ_CHECK(o.u.bench.n_prompt + o.u.bench.n_gen > 0);
            FUZZ_CHECK(o.u.bench.reps >= 1 && o.u.bench.reps <= CLI_BENCH_MAX_REPS);
        }
        if (!strcmp(c, "bench-ops")) check_bench_ops(&o.u.bench_ops);
    }
    free(buf);
    return 0;
}
