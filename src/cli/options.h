/* Command-line options of every vkllm subcommand, parsed in one place without side effects.
 *
 * Each cli_parse_*_options function reads a whole command's argv (argv[0] is the command name, as main passes it)
 * into its options struct.  It opens no file, prints nothing, allocates nothing and keeps no state: on a bad
 * argument it writes one line naming the option and what it accepts into err (always NUL-terminated when
 * err_len > 0) and returns CLI_PARSE_ERROR; for -h/--help it returns CLI_PARSE_HELP (the caller prints the
 * usage).  The out struct's strings point into argv.  Numbers are strict: decimal only (no hex, octal or
 * leading '+'), integers without a fraction or exponent, reals finite (no nan, inf or hex floats), and every
 * value within the range the message states.
 *
 * cli_parse_command_line is the single entry point for a fuzz target: argv[1] names the command, and the
 * result is the same as the command's own parser on argv + 1. */
#ifndef VKLLM_CLI_OPTIONS_H
#define VKLLM_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vkllm.h"

typedef enum cli_parse_result {
    CLI_PARSE_ERROR = -1, /* err says what is wrong */
    CLI_PARSE_OK = 0,
    CLI_PARSE_HELP = 1,   /* -h or --help */
} cli_parse_result;

/* ---- one value ---- */

/* A decimal integer in [lo, hi] ("-12", "4096"); not "0x10", "4.7", "1e3", " 5", "+5". */
cli_parse_result cli_parse_integer(const char *option, const char *text, int64_t lo, int64_t hi, int64_t *out,
                                   char *err, size_t err_len);
/* A decimal integer in [0, UINT64_MAX] (seeds). */
cli_parse_result cli_parse_u64(const char *option, const char *text, uint64_t *out, char *err, size_t err_len);
/* A finite decimal real in [lo, hi] ("0.8", "1e-3", "2"); not "nan", "inf", "0x1p3". */
cli_parse_result cli_parse_real(const char *option, const char *text, double lo, double hi, double *out, char *err,
                                size_t err_len);

/* ---- run and chat ---- */

#define CLI_MAX_N_PREDICT 1000000000
#define CLI_MAX_CTX (1 << 24)

/* Speculative decoding (run, chat, bench). */
typedef struct cli_spec_options {
    bool lookup;                /* --lookup */
    uint32_t lookup_ngram;      /* --lookup-ngram [1, 16]; default 3 */
    const char *draft;          /* --draft D.gguf */
    uint32_t draft_max;         /* --draft-max [1, 64]; default 7 */
    float draft_min_p;          /* --draft-min-p [0, 1]; default 0 */
    bool no_adaptive;           /* --no-adaptive: keep drafting whatever the acceptance */
    const char *medusa;         /* --medusa HEADS.gguf (drafts at most one token per head) */
    const char *medusa_tree;    /* --medusa-tree SPEC: "default" or paths of ranks (vkllm_speculation.medusa_tree) */
} cli_spec_options;

/* Any speculation asked for. */
static inline bool cli_spec_on(const cli_spec_options *o) { return o->lookup || o->draft || o->medusa; }

/* Parses argv[*i] (and its value) if it is one of the speculation options: CLI_PARSE_OK and *taken true; not one:
 * CLI_PARSE_OK and *taken false; a bad value: CLI_PARSE_ERROR. */
cli_parse_result cli_parse_spec_option(int argc, char **argv, int *i, cli_spec_options *o, bool *taken, char *err,
                                       size_t err_len);
cli_spec_options cli_spec_default(void);

typedef struct cli_options {
    const char *model;          /* -m; else VKLLM_MODEL; else the default location */
    const char *device;         /* --device: index or name substring (vkllm_model_params.device); NULL: default */
    int cpu_threads;            /* --threads [0, 1024] (vkllm_model_params.cpu_threads); -1: automatic */
    const char *prompt;         /* -p */
    int n_predict;              /* -n, [0, CLI_MAX_N_PREDICT]; default 128 */
    uint32_t n_ctx;             /* --ctx, [0, CLI_MAX_CTX]; 0: the model's (at most 4096) */
    vkllm_sampling sampling;    /* --temp [0, 100], --top-k [-1, INT32_MAX], --top-p and --min-p [0, 1],
                                   --repeat-penalty [0.01, 100], --repeat-last-n [0, CLI_MAX_CTX], --seed (u64) */
    const char *chat_template;  /* --template */
    const char *system;         /* --system */
    vkllm_kv_type type_k, type_v; /* --kv TYPE (both), --kv-k, --kv-v (each): f16 (default), f32, q8_0, q4_0 */
    bool kv_no_rotate;            /* --kv-rotate off: no Hadamard rotation of quantized keys (rotate_k = 0) */
    bool kv_no_center;            /* --kv-center off: quantized keys not centered on the mean key (center_k = 0) */
    cli_spec_options spec;        /* --lookup, --draft and their settings */
} cli_options;

cli_parse_result cli_parse_run_options(int argc, char **argv, cli_options *out, char *err, size_t err_len);

/* --kv, --kv-k or --kv-v (option) with its value: sets both or one of *k, *v.  Returns CLI_PARSE_OK, or
 * CLI_PARSE_ERROR (message in err) for a name vkllm_kv_type_parse does not know. */
cli_parse_result cli_parse_kv_option(const char *option, const char *value, vkllm_kv_type *k, vkllm_kv_type *v,
                                     char *err, size_t err_len);
/* An on|off KV option (--kv-rotate, --kv-center) named option: *off set for off. */
cli_parse_result cli_parse_kv_on_off(const char *option, const char *value, bool *off, char *err, size_t err_len);

/* ---- bench ---- */

#define CLI_BENCH_MAX_TOKENS (1u << 20)
#define CLI_BENCH_MAX_REPS 1000u

typedef struct cli_bench_options {
    const char *model;               /* -m (required) */
    const char *device;              /* --device, as run's */
    int cpu_threads;                 /* --threads, as run's */
    uint32_t n_prompt, n_gen, reps;  /* -p [0, 2^20] (512), -n [0, 2^20] (128), not both 0; -r [1, 1000] (5) */
    bool json, profile, no_ttft;     /* --json, --profile, --no-ttft */
    cli_spec_options spec;           /* --lookup, --draft ...: tg measured with and without speculation */
    const char *prompt;              /* --prompt TEXT: with speculation, the text generation starts from */
    uint32_t depth;                  /* -d [0, 2^20]: tokens already in the cache when the tg steps start */
    vkllm_kv_type type_k, type_v;    /* --kv, --kv-k, --kv-v as run's */
    bool kv_no_rotate;               /* --kv-rotate off */
    bool kv_no_center;               /* --kv-center off */
    uint32_t parallel;               /* --parallel [2, 256]: the scheduler's rate with that many requests, vs 1 */
    uint32_t replicas;               /* --replicas [1, CLI_MAX_REPLICAS] with --parallel: copies of the model sharing
                                        the requests (0: cli_auto_replicas, src/cli/replicas.h) */
} cli_bench_options;

cli_parse_result cli_parse_bench_options(int argc, char **argv, cli_bench_options *out, char *err, size_t err_len);

/* ---- perplexity ---- */

#define CLI_PPL_MAX_CTX (1 << 20)

typedef struct cli_perplexity_options {
    const char *model, *device;     /* -m (else as run's), --device */
    const char *file;               /* -f TEXT (required) */
    uint32_t n_ctx;                 /* -c [4, 2^20]; default 512 */
    uint32_t n_batch;               /* -b [1, 2^20]; default -c (one forward pass per chunk) */
    int64_t chunks;                 /* --chunks [1, 2^31); -1: every whole chunk of the text */
    vkllm_kv_type type_k, type_v;   /* --kv, --kv-k, --kv-v */
    bool kv_no_rotate;              /* --kv-rotate off */
    bool kv_no_center;              /* --kv-center off */
    const char *kl_base;            /* --kl-base OUT: save the log-probabilities */
    const char *kl;                 /* --kl BASE: compare with them (not with --kl-base) */
    bool json;                      /* --json */
} cli_perplexity_options;

cli_parse_result cli_parse_perplexity_options(int argc, char **argv, cli_perplexity_options *out, char *err,
                                              size_t err_len);

/* ---- synth, quantize, convert, devices ---- */

typedef struct cli_synth_options {
    const char *preset, *type, *out; /* --preset, --type, -o (required; names checked by the command) */
    uint64_t seed;                   /* --seed, decimal; default 0 */
    bool pure;                       /* --pure */
} cli_synth_options;

cli_parse_result cli_parse_synth_options(int argc, char **argv, cli_synth_options *out, char *err, size_t err_len);

typedef struct cli_imatrix_options {
    const char *model, *file, *out, *device; /* -m, -f, -o, --device */
    uint32_t n_ctx;                          /* -c, default 512 */
    int64_t chunks;                          /* --chunks, -1: all */
    bool process_output;                     /* --process-output */
} cli_imatrix_options;

cli_parse_result cli_parse_imatrix_options(int argc, char **argv, cli_imatrix_options *out, char *err,
                                           size_t err_len);

typedef struct cli_quantize_options {
    const char *in, *out, *type; /* IN.gguf OUT.gguf TYPE */
    bool pure;                   /* --pure */
    const char *imatrix;         /* --imatrix FILE: llama.cpp's importance matrix (GGUF or .dat) */
    const char *method;          /* --method rtn|gptq|awq|awq+gptq (default rtn) */
    const char *calib;           /* --calib TEXT: calibration text of gptq and awq */
    uint32_t calib_ctx;          /* --calib-ctx N: tokens per chunk (default 512) */
    int64_t calib_chunks;        /* --calib-chunks N (default: all) */
    bool act_order;              /* --act-order */
    const char *sequential;      /* --sequential off|layer|input (default off) */
    const char *sequential_target; /* --sequential-target float|quantized (default float) */
    int64_t gptq_rounds;         /* --gptq-rounds N (default 0) */
    int64_t gptq_descent;        /* --gptq-descent N (default 0) */
    const char *output_type;     /* --output-tensor-type T: output.weight in T (llama-quantize's option) */
    const char *token_embd_type; /* --token-embedding-type T: token_embd.weight in T */
} cli_quantize_options;

cli_parse_result cli_parse_quantize_options(int argc, char **argv, cli_quantize_options *out, char *err,
                                            size_t err_len);

typedef struct cli_convert_options {
    const char *model, *tokenizer, *out; /* MODEL.bin --tokenizer TOKENIZER.bin -o OUT.gguf */
} cli_convert_options;

cli_parse_result cli_parse_convert_options(int argc, char **argv, cli_convert_options *out, char *err,
                                           size_t err_len);

typedef struct cli_medusa_train_options {
    const char *model, *out, *calib, *device; /* -m (default: cli_model_path's), -o (required), --calib, --device */
    uint32_t heads;                  /* --heads [1, 16]; default 4 */
    uint32_t tokens;                 /* --tokens [256, 2^26]; default 32768 */
    uint32_t epochs;                 /* --epochs [1, 100]; default 3 */
    uint32_t batch;                  /* --batch [1, 4096]; default 64 */
    uint64_t seed;                   /* --seed; default 1 */
    float lr;                        /* --lr (0, 1]; default 3e-3 */
    float temp;                      /* --temp [0, 10]: of the generated text; default 0 (greedy) */
} cli_medusa_train_options;

cli_parse_result cli_parse_medusa_train_options(int argc, char **argv, cli_medusa_train_options *out, char *err,
                                                size_t err_len);

/* devices takes no arguments but -h. */
cli_parse_result cli_parse_devices_options(int argc, char **argv, char *err, size_t err_len);

/* ---- bench-ops ---- */

#define CLI_BENCH_OPS_MAX_SHAPES 8
#define CLI_BENCH_OPS_MAX_NS 8
#define CLI_BENCH_OPS_MAX_SWEEPS 8
#define CLI_BENCH_OPS_MAX_SWEEP_VALUES 16
#define CLI_BENCH_OPS_MAX_ROWS (1u << 20)  /* rows and columns of a benchmarked shape */
#define CLI_BENCH_OPS_MAX_COLS (1u << 18)
#define CLI_BENCH_OPS_MAX_ROTATE_MB (1 << 20)

typedef struct cli_shape {
    uint32_t rows, cols;
} cli_shape;

typedef struct cli_sweep {
    char field[64];
    uint32_t values[CLI_BENCH_OPS_MAX_SWEEP_VALUES]; /* UINT32_MAX: "max" */
    uint32_t n;
} cli_sweep;

typedef struct cli_bench_ops_options {
    cli_shape mv[CLI_BENCH_OPS_MAX_SHAPES]; /* --shapes, rows x cols */
    uint32_t n_mv;
    cli_shape mm[CLI_BENCH_OPS_MAX_SHAPES]; /* --mm-shapes */
    uint32_t n_mm;
    uint32_t ns[CLI_BENCH_OPS_MAX_NS];      /* --ns, 1..OPS_MATVEC_MAX_N */
    uint32_t n_ns;
    uint32_t batches[CLI_BENCH_OPS_MAX_NS]; /* --batches, > OPS_MATVEC_MAX_N */
    uint32_t n_batches;
    bool no_mv, no_mm;      /* --shapes none; --mm-shapes none or --batches none */
    int64_t rotate_mb;      /* --rotate-mb [0, 2^20]; -1: the device's default */
    int64_t runs;           /* --runs [1, 64]; -1: default */
    int64_t min_ms;         /* --min-ms [1, 600000]; -1: default */
    const char *types;      /* --types: names checked by the command */
    const char *set;        /* --set: checked against the tuning by the command */
    cli_sweep sweeps[CLI_BENCH_OPS_MAX_SWEEPS];
    uint32_t n_sweeps;
    bool quick, json, fields, cpu_time;
} cli_bench_ops_options;

cli_parse_result cli_parse_bench_ops_options(int argc, char **argv, cli_bench_ops_options *out, char *err,
                                             size_t err_len);
/* "4096x768,32000x768", "small" or "large" into at most CLI_BENCH_OPS_MAX_SHAPES shapes (also the defaults). */
bool cli_parse_shapes(const char *text, cli_shape *out, uint32_t *count);
/* "1,2,4,8": at most max decimal values in [lo, hi]. */
bool cli_parse_list(const char *text, uint32_t *out, uint32_t *count, uint32_t max, uint32_t lo, uint32_t hi);

/* ---- every command ---- */

typedef struct cli_command_options {
    const char *command; /* argv[1] */
    union {
        cli_options run;  /* run and chat */
        cli_bench_options bench;
        cli_perplexity_options perplexity;
        cli_bench_ops_options bench_ops;
        cli_synth_options synth;
        cli_quantize_options quantize;
        cli_convert_options convert;
        cli_medusa_train_options medusa_train;
    } u;
} cli_command_options;

/* argv[0] is the program, argv[1] the command (run, chat, bench, bench-ops, synth, quantize, convert,
 * devices); the rest goes to that command's parser.  An unknown or missing command is an error. */
cli_parse_result cli_parse_command_line(int argc, char **argv, cli_command_options *out, char *err, size_t err_len);

/* What a command does with a parse that is not CLI_PARSE_OK: for help, the usage on stdout and exit code 0;
 * for an error, "vkllm COMMAND: ERR" and the usage on stderr and exit code 2.  Returns the exit code. */
int cli_parse_exit(const char *command, cli_parse_result result, const char *err, void (*usage)(FILE *out));

/* ---- model loading for run, chat ---- */

/* The model file to load: -m, $VKLLM_MODEL, or the first existing default location; NULL if none (message
 * printed). */
const char *cli_model_path(const cli_options *o);
/* The speculation options onto ctx: --draft loads its model (on device) and a context of n_ctx positions into
 * *draft_model and *draft_ctx (free them after ctx).  Prints "vkllm COMMAND: ..." and returns -1 on failure. */
int cli_open_speculation(const char *command, const cli_spec_options *o, const char *device, uint32_t n_ctx,
                         vkllm_context *ctx,
                         vkllm_model **draft_model, vkllm_context **draft_ctx);
/* vkllm bench's speculative part (src/cli/bench/bench_spec.c): greedy text of n_gen tokens with and without
 * speculation on m, alternated; prints the figures; returns the exit code (1 also when the texts differ). */
int cli_bench_speculation(const cli_bench_options *a, vkllm_model *m, uint32_t n_gen);
/* The GPU time per op since the last call, to stderr (title NULL: discarded); with --profile (bench.c). */
void cli_bench_print_profile(vkllm_model *m, const char *title);
/* bench --parallel (src/cli/bench/bench_parallel.c) */
int cli_bench_parallel(const cli_bench_options *a, vkllm_model *const *models);
/* "speculation: D drafted, A accepted (P%), S verification passes, M tokens per pass" on stderr. */
void cli_print_speculation(const vkllm_generate_stats *stats);
/* Loads the model cli_model_path names and a context with --ctx and --kv.  On failure it prints
 * "vkllm COMMAND: ..." and returns -1 with *model and *ctx NULL. */
int cli_open_model(const char *command, const cli_options *o, vkllm_model **model, vkllm_context **ctx);

#endif
