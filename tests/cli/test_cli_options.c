/* The CLI's option parser (src/cli/options.h), without a device: every number is strict (decimal, finite, whole
 * where it must be, within its range), each refusal names the option and its range, and any argv (long, empty,
 * cut short, with a tiny error buffer) parses without touching memory it does not own.  Also the default replicas
 * (src/cli/replicas.h). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/options.h"
#include "cli/replicas.h"
#include "harness.h"

/* Parses "vkllm ARGS..." split at spaces (no argument contains one here). */
static cli_parse_result parse_line(const char *line, cli_command_options *out, char *err, size_t err_len)
{
    static char buf[1024];
    char *argv[64];
    int argc = 0;
    snprintf(buf, sizeof buf, "vkllm %s", line);
    for (char *tok = strtok(buf, " "); tok && argc < 64; tok = strtok(NULL, " ")) argv[argc++] = tok;
    return cli_parse_command_line(argc, argv, out, err, err_len);
}

static void expect_error(const char *line, const char *needle)
{
    cli_command_options o;
    char err[256] = "";
    cli_parse_result r = parse_line(line, &o, err, sizeof err);
    printf("  %-48s -> %s\n", line, err);
    if (r != CLI_PARSE_ERROR) fail_msg("'%s' parsed", line);
    if (!strstr(err, needle)) fail_msg("'%s': '%s' lacks '%s'", line, err, needle);
}

static cli_command_options expect_ok(const char *line)
{
    cli_command_options o;
    char err[256] = "";
    cli_parse_result r = parse_line(line, &o, err, sizeof err);
    if (r != CLI_PARSE_OK) fail_msg("'%s': %s", line, err);
    return o;
}

static void test_kv_and_perplexity(void **state)
{
    (void)state;
    cli_command_options o = expect_ok("run -p hi --kv q8_0 --kv-v q4_0 --kv-rotate off");
    assert_int_equal(o.u.run.type_k, VKLLM_KV_Q8_0);
    assert_int_equal(o.u.run.type_v, VKLLM_KV_Q4_0);
    assert_true(o.u.run.kv_no_rotate);
    o = expect_ok("chat --kv-k Q4_0");
    assert_int_equal(o.u.run.type_k, VKLLM_KV_Q4_0);
    assert_int_equal(o.u.run.type_v, VKLLM_KV_F16);
    assert_false(o.u.run.kv_no_rotate);
    expect_error("run --kv-rotate maybe", "--kv-rotate takes on or off, got 'maybe'");
    assert_false(o.u.run.kv_no_center);
    o = expect_ok("run -p hi --kv q8_0 --kv-center off");
    assert_true(o.u.run.kv_no_center);
    assert_false(o.u.run.kv_no_rotate);
    expect_error("chat --kv-center 1", "--kv-center takes on or off, got '1'");
    expect_error("run --kv-v", "--kv-v needs a value");
    o = expect_ok("bench -m m.gguf -d 4096 -n 16 --kv-k q8_0");
    assert_int_equal(o.u.bench.depth, 4096);
    assert_int_equal(o.u.bench.type_k, VKLLM_KV_Q8_0);
    assert_false(o.u.bench.kv_no_center);
    o = expect_ok("bench -m m.gguf --kv q4_0 --kv-center off");
    assert_true(o.u.bench.kv_no_center);
    o = expect_ok("perplexity -f t.txt --kv q8_0 --kv-center off --kv-rotate off");
    assert_true(o.u.perplexity.kv_no_center && o.u.perplexity.kv_no_rotate);
    expect_error("bench -m m.gguf -d -1", "-d needs an integer in [0, 1048576]");
    o = expect_ok("perplexity -f t.txt");
    assert_int_equal(o.u.perplexity.n_ctx, 512);
    assert_int_equal(o.u.perplexity.n_batch, 512); /* -b defaults to -c */
    assert_int_equal(o.u.perplexity.chunks, -1);
    o = expect_ok("perplexity -m m.gguf -f t.txt -c 128 -b 1000 --chunks 3 --kv q4_0 --kl base.bin --json");
    assert_int_equal(o.u.perplexity.n_batch, 128); /* never more than a chunk */
    assert_int_equal(o.u.perplexity.chunks, 3);
    assert_string_equal(o.u.perplexity.kl, "base.bin");
    assert_true(o.u.perplexity.json);
    expect_error("perplexity -m m.gguf", "-f TEXT is required");
    expect_error("perplexity -f t -c 3", "-c needs an integer in [4, 1048576]");
    expect_error("perplexity -f t --chunks 0", "--chunks needs an integer in [1, 2147483646]");
    expect_error("perplexity -f t --kl a --kl-base b", "--kl-base and --kl cannot be used together");
    expect_error("perplexity -f t --kv f8", "--kv takes f16, f32, q8_0 or q4_0, got 'f8'");
}

/* --threads (vkllm_model_params.cpu_threads): -1 (automatic) unless given, 0..1024. */
static void test_threads(void **state)
{
    (void)state;
    assert_int_equal(expect_ok("run -p hi").u.run.cpu_threads, -1);
    assert_int_equal(expect_ok("run -p hi --threads 1").u.run.cpu_threads, 1);
    assert_int_equal(expect_ok("chat --threads 0").u.run.cpu_threads, 0);
    assert_int_equal(expect_ok("bench -m m.gguf").u.bench.cpu_threads, -1);
    assert_int_equal(expect_ok("bench -m m.gguf --threads 4").u.bench.cpu_threads, 4);
    expect_error("run -p hi --threads -1", "--threads needs an integer in [0, 1024]");
    expect_error("bench -m m.gguf --threads 1025", "--threads needs an integer in [0, 1024]");
    expect_error("run --threads", "--threads needs a value");
}

static void test_numbers_are_strict(void **state)
{
    expect_error("run -n nan", "-n needs an integer in [0, 1000000000] (decimal digits), got 'nan'");
    expect_error("run -n inf", "got 'inf'");
    expect_error("run -n 0x10", "got '0x10'");
    expect_error("run -n 4.7", "got '4.7'");
    expect_error("run -n 1e3", "got '1e3'");
    expect_error("run -n +5", "got '+5'");
    expect_error("run -n -1", "got '-1'");
    expect_error("run -n 1000000001", "got '1000000001'");
    expect_error("run -n 99999999999999999999999", "got '99999999999999999999999'");
    expect_error("run --ctx 16777217", "--ctx needs an integer in [0, 16777216]");
    expect_error("run --temp nan", "--temp needs a number in [0, 100], got 'nan'");
    expect_error("run --temp -inf", "got '-inf'");
    expect_error("run --temp 1e999", "got '1e999'");
    expect_error("run --temp 0x1p3", "got '0x1p3'");
    expect_error("run --temp 101", "got '101'");
    expect_error("run --top-p 1.5", "--top-p needs a number in [0, 1]");
    expect_error("run --min-p -0.1", "--min-p needs a number in [0, 1]");
    expect_error("run --repeat-penalty 0", "--repeat-penalty needs a number in [0.01, 100]");
    expect_error("run --top-k nan", "--top-k needs an integer in [-1, 2147483647]");
    expect_error("run --top-k 2.5", "--top-k needs an integer");
    expect_error("run --repeat-last-n -1", "--repeat-last-n needs an integer in [0, 16777216]");
    expect_error("run --seed -1", "--seed needs an integer in [0, 18446744073709551615]");
    expect_error("run --seed 18446744073709551616", "got '18446744073709551616'");
    expect_error("chat --seed 0x10", "got '0x10'");
    expect_error("run --kv f8", "--kv takes f16, f32, q8_0 or q4_0, got 'f8'");
    expect_error("run -n", "-n needs a value");
    expect_error("run --bogus", "unknown flag '--bogus'");

    cli_command_options o = expect_ok("run -m x.gguf -p hi -n 0 --ctx 64 --temp 0.5 --top-k -1 --top-p 1 --min-p 0 "
                                      "--repeat-penalty 1.1 --repeat-last-n 64 --seed 18446744073709551615 --kv f32");
    assert_int_equal(o.u.run.n_predict, 0);
    assert_int_equal(o.u.run.n_ctx, 64);
    assert_true(o.u.run.sampling.temperature == 0.5f);
    assert_int_equal(o.u.run.sampling.top_k, -1);
    assert_true(o.u.run.sampling.seed == UINT64_MAX);
    assert_int_equal(o.u.run.type_k, VKLLM_KV_F32);
    assert_int_equal(o.u.run.type_v, VKLLM_KV_F32);
    assert_string_equal(o.u.run.prompt, "hi");
    o = expect_ok("run -n 010 --temp 1e-3");
    assert_int_equal(o.u.run.n_predict, 10); /* decimal, not octal */
    assert_null(o.u.run.device);
    o = expect_ok("chat --device llvmpipe");
    assert_string_equal(o.u.run.device, "llvmpipe");
    expect_error("run --device", "--device needs a value");
}

static void test_bench(void **state)
{
    expect_error("bench -m m.gguf -p 16 -n -1 -r 1", "-n needs an integer in [0, 1048576] (decimal digits), got '-1'");
    expect_error("bench -m m.gguf -p 1048577", "-p needs an integer in [0, 1048576]");
    expect_error("bench -m m.gguf -r 0", "-r needs an integer in [1, 1000]");
    expect_error("bench -m m.gguf -p 0 -n 0", "-p 0 and -n 0 leave nothing to measure");
    expect_error("bench -p 16", "-m MODEL is required");
    expect_error("bench -m m.gguf --device", "--device needs a value");
    assert_string_equal(expect_ok("bench -m m.gguf --device 0").u.bench.device, "0");
    cli_command_options o = expect_ok("bench -m m.gguf -p 16 -n 8 -r 1 --json --no-ttft");
    assert_int_equal(o.u.bench.n_prompt, 16);
    assert_int_equal(o.u.bench.n_gen, 8);
    assert_int_equal(o.u.bench.reps, 1);
    assert_true(o.u.bench.json && o.u.bench.no_ttft && !o.u.bench.profile);
    assert_int_equal(expect_ok("bench -m m.gguf --parallel 16").u.bench.parallel, 16);
    expect_error("bench -m m.gguf --parallel 1", "--parallel needs an integer in [2, 256]");
    expect_error("bench -m m.gguf --parallel 257", "--parallel needs an integer in [2, 256]");
}

/* --lookup, --draft and their settings on run, chat and bench. */
static void test_speculation(void **state)
{
    cli_command_options o = expect_ok("run -p hi --lookup --lookup-ngram 4 --draft-max 3 --no-adaptive");
    assert_true(o.u.run.spec.lookup && o.u.run.spec.no_adaptive);
    assert_int_equal(o.u.run.spec.lookup_ngram, 4);
    assert_int_equal(o.u.run.spec.draft_max, 3);
    assert_null(o.u.run.spec.draft);
    o = expect_ok("chat --draft d.gguf --draft-min-p 0.5");
    assert_string_equal(o.u.run.spec.draft, "d.gguf");
    assert_true(o.u.run.spec.draft_min_p == 0.5f && !o.u.run.spec.lookup);
    assert_int_equal(o.u.run.spec.draft_max, 7);
    assert_int_equal(o.u.run.spec.lookup_ngram, 3);
    o = expect_ok("bench -m m.gguf --lookup --prompt text --draft-max 64");
    assert_true(o.u.bench.spec.lookup);
    assert_int_equal(o.u.bench.spec.draft_max, 64);
    assert_string_equal(o.u.bench.prompt, "text");
    expect_error("run -p hi --draft-max 0", "--draft-max needs an integer in [1, 64]");
    expect_error("run -p hi --draft-max 65", "--draft-max needs an integer in [1, 64]");
    expect_error("run -p hi --lookup-ngram 0", "--lookup-ngram needs an integer in [1, 16]");
    expect_error("run -p hi --draft-min-p 1.5", "--draft-min-p needs a number in [0, 1]");
    expect_error("bench -m m.gguf --draft", "--draft needs a value");
}

static void test_bench_ops(void **state)
{
    expect_error("bench-ops --runs 0x10", "--runs needs an integer in [1, 64]");
    expect_error("bench-ops --runs 65", "--runs needs an integer in [1, 64]");
    expect_error("bench-ops --min-ms 0", "--min-ms needs an integer in [1, 600000]");
    expect_error("bench-ops --rotate-mb -2", "--rotate-mb needs an integer in [0, 1048576]");
    expect_error("bench-ops --shapes -1x4", "bad --shapes '-1x4'");
    expect_error("bench-ops --shapes 4x", "bad --shapes '4x'");
    expect_error("bench-ops --shapes 4x4,", "bad --shapes '4x4,'");
    expect_error("bench-ops --shapes 4294967297x4", "bad --shapes");
    expect_error("bench-ops --shapes 2000000x4", "R in 1..1048576");
    expect_error("bench-ops --ns 0x2", "bad --ns '0x2'");
    expect_error("bench-ops --ns 9", "bad --ns '9'");
    expect_error("bench-ops --batches 8", "bad --batches '8'");
    expect_error("bench-ops --sweep matvec_rows=1,,2", "bad --sweep");
    expect_error("bench-ops --sweep a=1 --sweep b=1 --sweep c=1 --sweep d=1 --sweep e=1 --sweep f=1 --sweep g=1 "
                 "--sweep h=1 --sweep i=1", "more than 8 --sweep options");
    expect_error("bench-ops --sweep a=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 --sweep b=1,2,3,4,5,6,7,8,9,10,11,12,13,"
                 "14,15,16 --sweep c=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 --sweep d=1,2", "more than 4096 configurations");
    cli_command_options o = expect_ok("bench-ops --types Q4_0 --shapes 256x256 --mm-shapes none --ns 1,2 --runs 1 "
                                      "--min-ms 1 --rotate-mb 0 --sweep matvec_rows=max --json --cpu-time");
    assert_int_equal(o.u.bench_ops.n_mv, 1);
    assert_int_equal(o.u.bench_ops.mv[0].rows, 256);
    assert_true(o.u.bench_ops.no_mm && !o.u.bench_ops.no_mv);
    assert_int_equal(o.u.bench_ops.n_ns, 2);
    assert_int_equal(o.u.bench_ops.runs, 1);
    assert_int_equal(o.u.bench_ops.rotate_mb, 0);
    assert_true(o.u.bench_ops.json && o.u.bench_ops.cpu_time);
}

static void test_other_commands(void **state)
{
    expect_error("synth --preset tiny --type F32 -o x.gguf --seed 0x10", "--seed needs an integer");
    expect_error("synth --preset tiny --type F32", "--preset, --type and -o are required");
    expect_error("quantize a.gguf b.gguf", "IN.gguf, OUT.gguf and TYPE are required");
    expect_error("quantize a.gguf b.gguf Q4_0 extra", "unexpected argument 'extra'");
    expect_error("convert m.bin -o x.gguf", "MODEL.bin, --tokenizer and -o are required");
    expect_error("devices extra", "unexpected argument 'extra'");
    expect_error("frobnicate", "unknown command 'frobnicate'");
    cli_command_options o = expect_ok("synth --preset tiny --type F32 -o x.gguf --seed 42 --pure");
    assert_true(o.u.synth.seed == 42 && o.u.synth.pure);
    o = expect_ok("quantize --pure a.gguf b.gguf Q4_0");
    assert_string_equal(o.u.quantize.type, "Q4_0");
    o = expect_ok("quantize --output-tensor-type Q8_0 --token-embedding-type q6_k a.gguf b.gguf Q4_0");
    assert_string_equal(o.u.quantize.output_type, "Q8_0");
    assert_string_equal(o.u.quantize.token_embd_type, "q6_k");
    expect_error("quantize a.gguf b.gguf Q4_0 --output-tensor-type", "--output-tensor-type needs a value");
    o = expect_ok("quantize a.gguf b.gguf Q4_0");
    assert_string_equal(o.u.quantize.sequential, "off");
    assert_int_equal(o.u.quantize.gptq_rounds, 0);
    o = expect_ok("quantize --method gptq --calib c.txt --sequential input --gptq-rounds 2 a.gguf b.gguf Q4_0");
    assert_string_equal(o.u.quantize.sequential, "input");
    assert_string_equal(o.u.quantize.sequential_target, "float");
    assert_int_equal(o.u.quantize.gptq_rounds, 2);
    assert_int_equal(o.u.quantize.gptq_descent, 0);
    o = expect_ok("quantize --method awq+gptq --calib c.txt --gptq-descent 3 a.gguf b.gguf Q4_K_M");
    assert_int_equal(o.u.quantize.gptq_descent, 3);
    expect_error("quantize --method awq --calib c.txt --gptq-descent 1 a.gguf b.gguf Q4_0",
                 "--gptq-descent goes with --method gptq");
    expect_error("quantize --method gptq --calib c.txt --gptq-descent 9 a.gguf b.gguf Q4_0", "--gptq-descent");
    expect_error("quantize --method gptq --calib c.txt --sequential all a.gguf b.gguf Q4_0",
                 "--sequential 'all': expected off, layer or input");
    expect_error("quantize --method awq+gptq --calib c.txt --sequential layer a.gguf b.gguf Q4_0",
                 "--sequential goes with --method gptq");
    expect_error("quantize --sequential layer a.gguf b.gguf Q4_0", "--sequential goes with --method gptq");
    o = expect_ok("quantize --method gptq --calib c.txt --sequential layer --sequential-target quantized a.gguf b.gguf "
                  "Q4_0");
    assert_string_equal(o.u.quantize.sequential_target, "quantized");
    expect_error("quantize --method gptq --calib c.txt --sequential layer --sequential-target fp a.gguf b.gguf Q4_0",
                 "--sequential-target 'fp': expected float or quantized");
    expect_error("quantize --method gptq --calib c.txt --sequential-target float a.gguf b.gguf Q4_0",
                 "--sequential-target goes with --sequential layer or input");
    expect_error("quantize --gptq-rounds 2 a.gguf b.gguf Q4_0", "--gptq-rounds goes with --method gptq");
    expect_error("quantize --method gptq --calib c.txt --gptq-rounds 9 a.gguf b.gguf Q4_0", "--gptq-rounds");
    o = expect_ok("convert m.bin --tokenizer t.bin -o x.gguf");
    assert_string_equal(o.u.convert.tokenizer, "t.bin");
    expect_ok("devices");
    expect_error("medusa-train --heads 2", "-o HEADS.gguf is required");
    expect_error("medusa-train -o h.gguf --heads 0", "--heads needs an integer in [1, 16]");
    expect_error("medusa-train -o h.gguf --lr 2", "--lr");
    expect_error("medusa-train -o h.gguf --bogus 1", "unexpected argument '--bogus'");
    o = expect_ok("medusa-train -m m.gguf -o h.gguf --heads 5 --tokens 4096 --seed 9 --calib c.txt --epochs 2 "
                  "--batch 32 --lr 0.01 --temp 0.5");
    assert_true(o.u.medusa_train.heads == 5 && o.u.medusa_train.tokens == 4096 && o.u.medusa_train.seed == 9);
    assert_true(o.u.medusa_train.epochs == 2 && o.u.medusa_train.batch == 32);
    assert_true(o.u.medusa_train.lr == 0.01f && o.u.medusa_train.temp == 0.5f);
    assert_string_equal(o.u.medusa_train.calib, "c.txt");
    o = expect_ok("run --medusa h.gguf --medusa-tree 0,1,0.0 -p x");
    assert_string_equal(o.u.run.spec.medusa, "h.gguf");
    assert_string_equal(o.u.run.spec.medusa_tree, "0,1,0.0");
    expect_error("run --medusa-tree", "--medusa-tree needs a value");
    o = expect_ok("medusa-train -o h.gguf");
    assert_true(o.u.medusa_train.heads == 4 && o.u.medusa_train.tokens == 32768 && !o.u.medusa_train.model);
    cli_command_options help;
    char err[8];
    assert_int_equal(parse_line("run --help", &help, err, sizeof err), CLI_PARSE_HELP);
    assert_int_equal(parse_line("bench-ops -h", &help, err, sizeof err), CLI_PARSE_HELP);
}

/* Odd argv: the error buffer is NUL-terminated even when tiny or empty, a huge argument is quoted in part, an
 * empty argv or one without a command is an error, and NULL error buffers are allowed. */
static void test_odd_argv_and_buffers(void **state)
{
    cli_command_options o;
    char tiny[5];
    memset(tiny, 'x', sizeof tiny);
    assert_int_equal(parse_line("run -n nan", &o, tiny, sizeof tiny), CLI_PARSE_ERROR);
    assert_int_equal(strlen(tiny), 4);
    assert_int_equal(parse_line("run -n nan", &o, NULL, 0), CLI_PARSE_ERROR);
    char *none[] = {"vkllm"};
    char err[256];
    assert_int_equal(cli_parse_command_line(1, none, &o, err, sizeof err), CLI_PARSE_ERROR);
    assert_int_equal(cli_parse_command_line(0, none, &o, err, sizeof err), CLI_PARSE_ERROR);
    static char huge[100000];
    memset(huge, '7', sizeof huge - 1);
    char *long_value[] = {"vkllm", "run", "-n", huge};
    assert_int_equal(cli_parse_command_line(4, long_value, &o, err, sizeof err), CLI_PARSE_ERROR);
    assert_true(strlen(err) < 200);
    char empty[] = "";
    char *empty_value[] = {"vkllm", "run", "--temp", empty};
    assert_int_equal(cli_parse_command_line(4, empty_value, &o, err, sizeof err), CLI_PARSE_ERROR);
    assert_non_null(strstr(err, "got ''"));
    char *empty_prompt[] = {"vkllm", "run", "-p", empty};
    assert_int_equal(cli_parse_command_line(4, empty_prompt, &o, err, sizeof err), CLI_PARSE_OK);
    assert_string_equal(o.u.run.prompt, "");
}


/* vkllm serve's and bench --parallel's default replicas: one per core (at most one per running request, at most
 * CLI_MAX_REPLICAS) where a CPU device computes the model in one thread; one with worker threads, on a GPU or on one
 * core. */
static void test_auto_replicas(void **state)
{
    (void)state;
    vkllm_model_info one_thread = {.cpu_threads = 1}, workers = {.cpu_threads = 2}, gpu = {.cpu_threads = 0};
    assert_int_equal(cli_auto_replicas(&one_thread, 16, 2), 2);
    assert_int_equal(cli_auto_replicas(&one_thread, 3, 8), 3);
    assert_int_equal(cli_auto_replicas(&one_thread, 64, 128), CLI_MAX_REPLICAS);
    assert_int_equal(cli_auto_replicas(&one_thread, 16, 1), 1);
    assert_int_equal(cli_auto_replicas(&one_thread, 0, 4), 1);
    assert_int_equal(cli_auto_replicas(&workers, 16, 8), 1);
    assert_int_equal(cli_auto_replicas(&gpu, 16, 8), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_are_strict),
        cmocka_unit_test(test_bench),
        cmocka_unit_test(test_speculation),
        cmocka_unit_test(test_kv_and_perplexity),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_bench_ops),
        cmocka_unit_test(test_other_commands),
        cmocka_unit_test(test_odd_argv_and_buffers),
        cmocka_unit_test(test_auto_replicas),
    };
    return TH_RUN("cli_options", tests);
}
