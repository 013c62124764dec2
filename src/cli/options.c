#include "options.h"
#include "replicas.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ops/matmul/matmul.h"
#include "runtime/error.h"

/* Where a model is looked for when neither -m nor VKLLM_MODEL names one.  CMake passes the shared
 * models folder of this repository's machines (../shared/models/stories260K.gguf beside the checkout). */
#ifndef VKLLM_DEFAULT_MODEL
#define VKLLM_DEFAULT_MODEL ""
#endif

static cli_parse_result fail(char *err, size_t err_len, const char *fmt, ...) VKLLM_PRINTF(3, 4);

static cli_parse_result fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return CLI_PARSE_ERROR;
}

/* Printable excerpt of an argument for a message: at most 40 bytes, so a huge argv entry stays one line. */
#define SHOWN(text) 40, (text)

/* Optional '-', then decimal digits only. */
static bool decimal_integer_text(const char *text, bool allow_minus)
{
    if (allow_minus && *text == '-') text++;
    if (!*text) return false;
    for (; *text; text++)
        if (*text < '0' || *text > '9') return false;
    return true;
}

cli_parse_result cli_parse_integer(const char *option, const char *text, int64_t lo, int64_t hi, int64_t *out,
                                   char *err, size_t err_len)
{
    if (!text) return fail(err, err_len, "%s needs a value: an integer in [%" PRId64 ", %" PRId64 "]", option, lo, hi);
    errno = 0;
    char *end = NULL;
    long long v = decimal_integer_text(text, true) ? strtoll(text, &end, 10) : 0;
    if (!end || *end || errno == ERANGE || v < lo || v > hi)
        return fail(err, err_len, "%s needs an integer in [%" PRId64 ", %" PRId64 "] (decimal digits), got '%.*s'",
                    option, lo, hi, SHOWN(text));
    *out = v;
    return CLI_PARSE_OK;
}

cli_parse_result cli_parse_u64(const char *option, const char *text, uint64_t *out, char *err, size_t err_len)
{
    if (!text) return fail(err, err_len, "%s needs a value: an integer in [0, %" PRIu64 "]", option, UINT64_MAX);
    errno = 0;
    char *end = NULL;
    unsigned long long v = decimal_integer_text(text, false) ? strtoull(text, &end, 10) : 0;
    if (!end || *end || errno == ERANGE)
        return fail(err, err_len, "%s needs an integer in [0, %" PRIu64 "] (decimal digits), got '%.*s'", option,
                    UINT64_MAX, SHOWN(text));
    *out = v;
    return CLI_PARSE_OK;
}

cli_parse_result cli_parse_real(const char *option, const char *text, double lo, double hi, double *out, char *err,
                                size_t err_len)
{
    if (!text) return fail(err, err_len, "%s needs a value: a number in [%g, %g]", option, lo, hi);
    /* Digits, one sign, a point and an exponent only: strtod alone takes "nan", "inf" and hex floats. */
    bool ok = *text != '\0';
    for (const char *p = text; *p && ok; p++)
        ok = (*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '-' || *p == '+';
    ok = ok && *text != '+';
    errno = 0;
    char *end = NULL;
    double v = ok ? strtod(text, &end) : 0;
    if (!ok || !end || *end || errno == ERANGE || !isfinite(v) || v < lo || v > hi)
        return fail(err, err_len, "%s needs a number in [%g, %g], got '%.*s'", option, lo, hi, SHOWN(text));
    *out = v;
    return CLI_PARSE_OK;
}

/* The value after a flag that takes one: argv[*i + 1], *i advanced; NULL (message in err) if argv ends. */
static const char *take_value(int argc, char **argv, int *i, char *err, size_t err_len)
{
    if (*i + 1 >= argc) {
        fail(err, err_len, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static bool is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

/* ---- speculation ---- */

cli_spec_options cli_spec_default(void)
{
    return (cli_spec_options){.lookup_ngram = 3, .draft_max = 7};
}

cli_parse_result cli_parse_spec_option(int argc, char **argv, int *i, cli_spec_options *o, bool *taken, char *err,
                                       size_t err_len)
{
    const char *a = argv[*i], *v;
    int64_t n;
    double x;
    *taken = true;
    if (!strcmp(a, "--lookup")) {
        o->lookup = true;
    } else if (!strcmp(a, "--no-adaptive")) {
        o->no_adaptive = true;
    } else if (!strcmp(a, "--draft") || !strcmp(a, "--medusa") || !strcmp(a, "--medusa-tree")) {
        if (!(v = take_value(argc, argv, i, err, err_len))) return CLI_PARSE_ERROR;
        *(!strcmp(a, "--draft") ? &o->draft : !strcmp(a, "--medusa") ? &o->medusa : &o->medusa_tree) = v;
    } else if (!strcmp(a, "--lookup-ngram") || !strcmp(a, "--draft-max")) {
        bool ngram = !strcmp(a, "--lookup-ngram");
        if (!(v = take_value(argc, argv, i, err, err_len)) ||
            cli_parse_integer(a, v, 1, ngram ? 16 : 64, &n, err, err_len) != CLI_PARSE_OK)
            return CLI_PARSE_ERROR;
        *(ngram ? &o->lookup_ngram : &o->draft_max) = (uint32_t)n;
    } else if (!strcmp(a, "--draft-min-p")) {
        if (!(v = take_value(argc, argv, i, err, err_len)) || cli_parse_real(a, v, 0, 1, &x, err, err_len) != CLI_PARSE_OK)
            return CLI_PARSE_ERROR;
        o->draft_min_p = (float)x;
    } else {
        *taken = false;
    }
    return CLI_PARSE_OK;
}

cli_parse_result cli_parse_kv_option(const char *option, const char *value, vkllm_kv_type *k, vkllm_kv_type *v,
                                     char *err, size_t err_len)
{
    vkllm_kv_type t;
    if (!value || vkllm_kv_type_parse(value, &t) != VKLLM_OK)
        return fail(err, err_len, "%s takes f16, f32, q8_0 or q4_0, got '%.*s'", option, SHOWN(value ? value : ""));
    if (strcmp(option, "--kv-v")) *k = t;
    if (strcmp(option, "--kv-k")) *v = t;
    return CLI_PARSE_OK;
}

cli_parse_result cli_parse_kv_on_off(const char *option, const char *value, bool *off, char *err, size_t err_len)
{
    if (!value || (strcmp(value, "on") && strcmp(value, "off")))
        return fail(err, err_len, "%s takes on or off, got '%.*s'", option, SHOWN(value ? value : ""));
    *off = !strcmp(value, "off");
    return CLI_PARSE_OK;
}

/* --kv, --kv-k, --kv-v, --kv-rotate, --kv-center: the KV-cache options run, bench and perplexity share. */
static bool is_kv_option(const char *a)
{
    return !strcmp(a, "--kv") || !strcmp(a, "--kv-k") || !strcmp(a, "--kv-v") || !strcmp(a, "--kv-rotate") ||
           !strcmp(a, "--kv-center");
}

static cli_parse_result parse_kv_arg(int argc, char **argv, int *i, vkllm_kv_type *k, vkllm_kv_type *v,
                                     bool *no_rotate, bool *no_center, char *err, size_t err_len)
{
    const char *a = argv[*i], *value = take_value(argc, argv, i, err, err_len);
    if (!value) return CLI_PARSE_ERROR;
    if (!strcmp(a, "--kv-rotate") || !strcmp(a, "--kv-center"))
        return cli_parse_kv_on_off(a, value, !strcmp(a, "--kv-rotate") ? no_rotate : no_center, err, err_len);
    return cli_parse_kv_option(a, value, k, v, err, err_len);
}

/* ---- run and chat ---- */

cli_parse_result cli_parse_run_options(int argc, char **argv, cli_options *o, char *err, size_t err_len)
{
    *o = (cli_options){
        .n_predict = 128, .cpu_threads = -1, .sampling = vkllm_sampling_default(), .spec = cli_spec_default()};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        double x;
        bool taken;
        if (cli_parse_spec_option(argc, argv, &i, &o->spec, &taken, err, err_len) != CLI_PARSE_OK) return CLI_PARSE_ERROR;
        if (taken) continue;
#define VALUE() (v = take_value(argc, argv, &i, err, err_len))
#define INTEGER(lo, hi) (VALUE() && cli_parse_integer(a, v, lo, hi, &n, err, err_len) == CLI_PARSE_OK)
#define REAL(lo, hi) (VALUE() && cli_parse_real(a, v, lo, hi, &x, err, err_len) == CLI_PARSE_OK)
        if (is_help(a)) return CLI_PARSE_HELP;
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!VALUE()) return CLI_PARSE_ERROR;
            o->model = v;
        } else if (!strcmp(a, "--device")) {
            if (!VALUE()) return CLI_PARSE_ERROR;
            o->device = v;
        } else if (!strcmp(a, "--threads")) {
            if (!INTEGER(0, 1024)) return CLI_PARSE_ERROR;
            o->cpu_threads = (int)n;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!VALUE()) return CLI_PARSE_ERROR;
            o->prompt = v;
        } else if (!strcmp(a, "--template")) {
            if (!VALUE()) return CLI_PARSE_ERROR;
            o->chat_template = v;
        } else if (!strcmp(a, "--system")) {
            if (!VALUE()) return CLI_PARSE_ERROR;
            o->system = v;
        } else if (is_kv_option(a)) {
            if (parse_kv_arg(argc, argv, &i, &o->type_k, &o->type_v, &o->kv_no_rotate, &o->kv_no_center, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!INTEGER(0, CLI_MAX_N_PREDICT)) return CLI_PARSE_ERROR;
            o->n_predict = (int)n;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            if (!INTEGER(0, CLI_MAX_CTX)) return CLI_PARSE_ERROR;
            o->n_ctx = (uint32_t)n;
        } else if (!strcmp(a, "--temp")) {
            if (!REAL(0, 100)) return CLI_PARSE_ERROR;
            o->sampling.temperature = (float)x;
        } else if (!strcmp(a, "--top-k")) {
            if (!INTEGER(-1, INT32_MAX)) return CLI_PARSE_ERROR; /* <= 0: off */
            o->sampling.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p")) {
            if (!REAL(0, 1)) return CLI_PARSE_ERROR;
            o->sampling.top_p = (float)x;
        } else if (!strcmp(a, "--min-p")) {
            if (!REAL(0, 1)) return CLI_PARSE_ERROR;
            o->sampling.min_p = (float)x;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!REAL(0.01, 100)) return CLI_PARSE_ERROR;
            o->sampling.repeat_penalty = (float)x;
        } else if (!strcmp(a, "--repeat-last-n")) {
            /* A window past the longest context sees nothing more, and the sampler allocates it whole. */
            if (!INTEGER(0, CLI_MAX_CTX)) return CLI_PARSE_ERROR;
            o->sampling.repeat_last_n = (int32_t)n;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (!VALUE() || cli_parse_u64(a, v, &o->sampling.seed, err, err_len) != CLI_PARSE_OK) return CLI_PARSE_ERROR;
        } else {
            return fail(err, err_len, "unknown flag '%.*s'", SHOWN(a));
        }
#undef REAL
#undef INTEGER
#undef VALUE
    }
    return CLI_PARSE_OK;
}

/* ---- bench ---- */

cli_parse_result cli_parse_bench_options(int argc, char **argv, cli_bench_options *o, char *err, size_t err_len)
{
    *o = (cli_bench_options){.n_prompt = 512, .n_gen = 128, .reps = 5, .cpu_threads = -1, .spec = cli_spec_default()};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        bool taken;
        if (cli_parse_spec_option(argc, argv, &i, &o->spec, &taken, err, err_len) != CLI_PARSE_OK) return CLI_PARSE_ERROR;
        if (taken) continue;
        if (!strcmp(a, "--prompt")) {
            if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
            o->prompt = v;
            continue;
        }
        if (is_help(a)) return CLI_PARSE_HELP;
        else if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--profile")) o->profile = true;
        else if (!strcmp(a, "--no-ttft")) o->no_ttft = true;
        else if (is_kv_option(a)) {
            if (parse_kv_arg(argc, argv, &i, &o->type_k, &o->type_v, &o->kv_no_rotate, &o->kv_no_center, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
        } else if (!strcmp(a, "--threads")) {
            if (!(v = take_value(argc, argv, &i, err, err_len)) ||
                cli_parse_integer(a, v, 0, 1024, &n, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            o->cpu_threads = (int)n;
        } else if (!strcmp(a, "--parallel")) {
            if (!(v = take_value(argc, argv, &i, err, err_len)) ||
                cli_parse_integer(a, v, 2, 256, &n, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            o->parallel = (uint32_t)n;
        } else if (!strcmp(a, "--replicas")) {
            if (!(v = take_value(argc, argv, &i, err, err_len)) ||
                cli_parse_integer(a, v, 1, CLI_MAX_REPLICAS, &n, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            o->replicas = (uint32_t)n;
        } else if (!strcmp(a, "-d")) {
            if (!(v = take_value(argc, argv, &i, err, err_len)) ||
                cli_parse_integer(a, v, 0, CLI_BENCH_MAX_TOKENS, &n, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            o->depth = (uint32_t)n;
        }
        else if (!strcmp(a, "-m") || !strcmp(a, "--device")) {
            if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
            *(!strcmp(a, "-m") ? &o->model : &o->device) = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "-r")) {
            bool reps = !strcmp(a, "-r");
            if (!(v = take_value(argc, argv, &i, err, err_len)) ||
                cli_parse_integer(a, v, reps ? 1 : 0, reps ? CLI_BENCH_MAX_REPS : CLI_BENCH_MAX_TOKENS, &n, err,
                                  err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            *(!strcmp(a, "-p") ? &o->n_prompt : reps ? &o->reps : &o->n_gen) = (uint32_t)n;
        } else {
            return fail(err, err_len, "unknown flag '%.*s'", SHOWN(a));
        }
    }
    if (!o->model) return fail(err, err_len, "-m MODEL is required");
    if (!o->n_prompt && !o->n_gen) return fail(err, err_len, "-p 0 and -n 0 leave nothing to measure");
    if (o->replicas > 1 && !o->parallel) return fail(err, err_len, "--replicas needs --parallel");
    if (o->replicas > o->parallel && o->parallel)
        return fail(err, err_len, "--replicas %u leaves a replica without requests of --parallel %u", o->replicas,
                    o->parallel);
    return CLI_PARSE_OK;
}

/* ---- perplexity ---- */

cli_parse_result cli_parse_perplexity_options(int argc, char **argv, cli_perplexity_options *o, char *err,
                                              size_t err_len)
{
    *o = (cli_perplexity_options){.n_ctx = 512, .chunks = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        if (is_help(a)) return CLI_PARSE_HELP;
        else if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "-m") || !strcmp(a, "--device") || !strcmp(a, "-f") || !strcmp(a, "--kl-base") ||
                 !strcmp(a, "--kl")) {
            if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
            *(!strcmp(a, "-m") ? &o->model : !strcmp(a, "--device") ? &o->device : !strcmp(a, "-f") ? &o->file
              : !strcmp(a, "--kl") ? &o->kl : &o->kl_base) = v;
        } else if (is_kv_option(a)) {
            if (parse_kv_arg(argc, argv, &i, &o->type_k, &o->type_v, &o->kv_no_rotate, &o->kv_no_center, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
        } else if (!strcmp(a, "-c") || !strcmp(a, "-b") || !strcmp(a, "--chunks")) {
            int64_t lo = !strcmp(a, "-c") ? 4 : 1, hi = !strcmp(a, "--chunks") ? INT32_MAX - 1 : CLI_PPL_MAX_CTX;
            if (!(v = take_value(argc, argv, &i, err, err_len)) ||
                cli_parse_integer(a, v, lo, hi, &n, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            if (!strcmp(a, "-c")) o->n_ctx = (uint32_t)n;
            else if (!strcmp(a, "-b")) o->n_batch = (uint32_t)n;
            else o->chunks = n;
        } else {
            return fail(err, err_len, "unknown flag '%.*s'", SHOWN(a));
        }
    }
    if (!o->file) return fail(err, err_len, "-f TEXT is required");
    if (o->kl && o->kl_base) return fail(err, err_len, "--kl-base and --kl cannot be used together");
    if (!o->n_batch || o->n_batch > o->n_ctx) o->n_batch = o->n_ctx;
    return CLI_PARSE_OK;
}

/* ---- synth, quantize, convert, devices ---- */

cli_parse_result cli_parse_synth_options(int argc, char **argv, cli_synth_options *o, char *err, size_t err_len)
{
    *o = (cli_synth_options){0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (is_help(a)) return CLI_PARSE_HELP;
        else if (!strcmp(a, "--pure")) o->pure = true;
        else if (!strcmp(a, "--preset") || !strcmp(a, "--type") || !strcmp(a, "-o")) {
            if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
            *(!strcmp(a, "--preset") ? &o->preset : !strcmp(a, "--type") ? &o->type : &o->out) = v;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = take_value(argc, argv, &i, err, err_len)) || cli_parse_u64(a, v, &o->seed, err, err_len))
                return CLI_PARSE_ERROR;
        } else {
            return fail(err, err_len, "unexpected argument '%.*s'", SHOWN(a));
        }
    }
    if (!o->preset || !o->type || !o->out) return fail(err, err_len, "--preset, --type and -o are required");
    return CLI_PARSE_OK;
}

cli_parse_result cli_parse_medusa_train_options(int argc, char **argv, cli_medusa_train_options *o, char *err,
                                                size_t err_len)
{
    *o = (cli_medusa_train_options){.heads = 4, .tokens = 32768, .epochs = 3, .batch = 64, .seed = 1, .lr = 3e-3f,
                                    .temp = 0.0f};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        double r;
        if (is_help(a)) return CLI_PARSE_HELP;
        static const char *const known[] = {"-m", "-o", "--calib", "--device", "--seed", "--lr", "--temp",
                                            "--heads", "--tokens", "--epochs", "--batch"};
        size_t kn = 0;
        while (kn < sizeof known / sizeof *known && strcmp(a, known[kn])) kn++;
        if (kn == sizeof known / sizeof *known) return fail(err, err_len, "unexpected argument '%.*s'", SHOWN(a));
        if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "-o")) o->out = v;
        else if (!strcmp(a, "--calib")) o->calib = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--seed")) {
            if (cli_parse_u64(a, v, &o->seed, err, err_len)) return CLI_PARSE_ERROR;
        } else if (!strcmp(a, "--lr") || !strcmp(a, "--temp")) {
            bool lr = !strcmp(a, "--lr");
            if (cli_parse_real(a, v, lr ? 1e-9 : 0, lr ? 1 : 10, &r, err, err_len)) return CLI_PARSE_ERROR;
            *(lr ? &o->lr : &o->temp) = (float)r;
        } else {
            struct { const char *name; int64_t lo, hi; uint32_t *dst; } ints[] = {
                {"--heads", 1, 16, &o->heads}, {"--tokens", 256, 1 << 26, &o->tokens},
                {"--epochs", 1, 100, &o->epochs}, {"--batch", 1, 4096, &o->batch}};
            size_t k = 0;
            while (strcmp(a, ints[k].name)) k++; /* one of them: known[] above */
            if (cli_parse_integer(a, v, ints[k].lo, ints[k].hi, &n, err, err_len)) return CLI_PARSE_ERROR;
            *ints[k].dst = (uint32_t)n;
        }
    }
    if (!o->out) return fail(err, err_len, "-o HEADS.gguf is required");
    return CLI_PARSE_OK;
}

/* An option taking a string: where its value goes. */
typedef struct cli_string_option {
    const char *name;
    const char **value;
} cli_string_option;

static const char **string_slot(const cli_string_option *options, size_t n, const char *arg)
{
    for (size_t k = 0; k < n; k++)
        if (!strcmp(arg, options[k].name)) return options[k].value;
    return NULL;
}

cli_parse_result cli_parse_quantize_options(int argc, char **argv, cli_quantize_options *o, char *err, size_t err_len)
{
    *o = (cli_quantize_options){0};
    const cli_string_option strings[] = {{"--imatrix", &o->imatrix},
                                         {"--method", &o->method},
                                         {"--calib", &o->calib},
                                         {"--output-tensor-type", &o->output_type},
                                         {"--sequential", &o->sequential},
                                         {"--sequential-target", &o->sequential_target},
                                         {"--token-embedding-type", &o->token_embd_type}};
    const char **positional[3] = {&o->in, &o->out, &o->type};
    int n = 0;
    bool rounds_set = false, descent_set = false;
    o->gptq_rounds = 0;
    o->gptq_descent = 0;
    for (int i = 1; i < argc; i++) {
        const char **slot = string_slot(strings, sizeof strings / sizeof strings[0], argv[i]);
        if (is_help(argv[i])) return CLI_PARSE_HELP;
        else if (!strcmp(argv[i], "--pure")) o->pure = true;
        else if (!strcmp(argv[i], "--act-order")) o->act_order = true;
        else if (slot) {
            if (!(*slot = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
        } else if (!strcmp(argv[i], "--gptq-rounds")) {
            const char *v = take_value(argc, argv, &i, err, err_len);
            if (!v || cli_parse_integer("--gptq-rounds", v, 0, 8, &o->gptq_rounds, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            rounds_set = true;
        } else if (!strcmp(argv[i], "--gptq-descent")) {
            const char *v = take_value(argc, argv, &i, err, err_len);
            if (!v || cli_parse_integer("--gptq-descent", v, 0, 8, &o->gptq_descent, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            descent_set = true;
        } else if (!strcmp(argv[i], "--calib-ctx") || !strcmp(argv[i], "--calib-chunks")) {
            const char *a = argv[i], *v;
            int64_t value;
            bool ctx = !strcmp(a, "--calib-ctx");
            if (!(v = take_value(argc, argv, &i, err, err_len)) ||
                cli_parse_integer(a, v, ctx ? 16 : 1, ctx ? CLI_PPL_MAX_CTX : INT32_MAX - 1, &value, err, err_len) !=
                    CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            if (ctx) o->calib_ctx = (uint32_t)value;
            else o->calib_chunks = value;
        } else if (argv[i][0] != '-' && n < 3) *positional[n++] = argv[i];
        else return fail(err, err_len, "unexpected argument '%.*s'", SHOWN(argv[i]));
    }
    if (n != 3) return fail(err, err_len, "IN.gguf, OUT.gguf and TYPE are required");
    if (!o->method) o->method = "rtn";
    if (strcmp(o->method, "rtn") && strcmp(o->method, "gptq") && strcmp(o->method, "awq") &&
        strcmp(o->method, "awq+gptq"))
        return fail(err, err_len, "--method '%.*s': expected rtn, gptq, awq or awq+gptq", SHOWN(o->method));
    if (strcmp(o->method, "rtn") && !o->calib)
        return fail(err, err_len, "--method %s needs --calib TEXT", o->method);
    if (!strcmp(o->method, "rtn") && o->calib) return fail(err, err_len, "--calib goes with --method gptq or awq");
    if (o->act_order && !strstr(o->method, "gptq")) return fail(err, err_len, "--act-order goes with --method gptq");
    if (!o->sequential) o->sequential = "off";
    if (strcmp(o->sequential, "off") && strcmp(o->sequential, "layer") && strcmp(o->sequential, "input"))
        return fail(err, err_len, "--sequential '%.*s': expected off, layer or input", SHOWN(o->sequential));
    if (strcmp(o->sequential, "off") && strcmp(o->method, "gptq"))
        return fail(err, err_len, "--sequential goes with --method gptq");
    if (o->sequential_target && strcmp(o->sequential_target, "float") && strcmp(o->sequential_target, "quantized"))
        return fail(err, err_len, "--sequential-target '%.*s': expected float or quantized",
                    SHOWN(o->sequential_target));
    if (o->sequential_target && !strcmp(o->sequential, "off"))
        return fail(err, err_len, "--sequential-target goes with --sequential layer or input");
    if (!o->sequential_target) o->sequential_target = "float";
    if (rounds_set && !strstr(o->method, "gptq")) return fail(err, err_len, "--gptq-rounds goes with --method gptq");
    if (descent_set && !strstr(o->method, "gptq")) return fail(err, err_len, "--gptq-descent goes with --method gptq");
    if (!o->calib_ctx) o->calib_ctx = 512;
    if (!o->calib_chunks) o->calib_chunks = -1;
    return CLI_PARSE_OK;
}

cli_parse_result cli_parse_imatrix_options(int argc, char **argv, cli_imatrix_options *o, char *err, size_t err_len)
{
    *o = (cli_imatrix_options){.n_ctx = 512, .chunks = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t n;
        if (is_help(a)) return CLI_PARSE_HELP;
        else if (!strcmp(a, "--process-output")) o->process_output = true;
        else if (!strcmp(a, "-m") || !strcmp(a, "-f") || !strcmp(a, "-o") || !strcmp(a, "--device")) {
            if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
            *(!strcmp(a, "-m") ? &o->model : !strcmp(a, "-f") ? &o->file : !strcmp(a, "-o") ? &o->out : &o->device) = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--chunks")) {
            int64_t lo = !strcmp(a, "-c") ? 16 : 1, hi = !strcmp(a, "-c") ? CLI_PPL_MAX_CTX : INT32_MAX - 1;
            if (!(v = take_value(argc, argv, &i, err, err_len)) ||
                cli_parse_integer(a, v, lo, hi, &n, err, err_len) != CLI_PARSE_OK)
                return CLI_PARSE_ERROR;
            if (!strcmp(a, "-c")) o->n_ctx = (uint32_t)n;
            else o->chunks = n;
        } else {
            return fail(err, err_len, "unknown flag '%.*s'", SHOWN(a));
        }
    }
    if (!o->file || !o->out) return fail(err, err_len, "-f TEXT and -o OUT are required");
    return CLI_PARSE_OK;
}

cli_parse_result cli_parse_convert_options(int argc, char **argv, cli_convert_options *o, char *err, size_t err_len)
{
    *o = (cli_convert_options){0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (is_help(a)) return CLI_PARSE_HELP;
        else if (!strcmp(a, "--tokenizer") || !strcmp(a, "-o")) {
            if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
            *(!strcmp(a, "-o") ? &o->out : &o->tokenizer) = v;
        } else if (a[0] != '-' && !o->model) {
            o->model = a;
        } else {
            return fail(err, err_len, "unexpected argument '%.*s'", SHOWN(a));
        }
    }
    if (!o->model || !o->tokenizer || !o->out) return fail(err, err_len, "MODEL.bin, --tokenizer and -o are required");
    return CLI_PARSE_OK;
}

cli_parse_result cli_parse_devices_options(int argc, char **argv, char *err, size_t err_len)
{
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) return CLI_PARSE_HELP;
        return fail(err, err_len, "unexpected argument '%.*s' (devices takes none)", SHOWN(argv[i]));
    }
    return CLI_PARSE_OK;
}

/* ---- bench-ops ---- */

/* One decimal number of at most 10 digits at *text, advancing past it. */
static bool take_u32(const char **text, uint64_t *out)
{
    const char *p = *text;
    uint64_t v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 11; p++, digits++) v = v * 10 + (uint64_t)(*p - '0');
    if (digits == 0 || digits > 10) return false;
    *out = v;
    *text = p;
    return true;
}

bool cli_parse_shapes(const char *text, cli_shape *out, uint32_t *count)
{
    if (strcmp(text, "small") == 0) text = "4096x768,32000x768";
    else if (strcmp(text, "large") == 0) text = "4096x4096,32000x4096,14336x4096,4096x14336";
    *count = 0;
    while (*text) {
        uint64_t rows, cols;
        if (*count == CLI_BENCH_OPS_MAX_SHAPES || !take_u32(&text, &rows) || *text++ != 'x' || !take_u32(&text, &cols) ||
            rows == 0 || cols == 0 || rows > CLI_BENCH_OPS_MAX_ROWS || cols > CLI_BENCH_OPS_MAX_COLS)
            return false;
        out[(*count)++] = (cli_shape){(uint32_t)rows, (uint32_t)cols};
        if (*text == ',' && text[1]) text++;
        else if (*text) return false;
    }
    return *count > 0;
}

bool cli_parse_list(const char *text, uint32_t *out, uint32_t *count, uint32_t max, uint32_t lo, uint32_t hi)
{
    *count = 0;
    while (*text) {
        uint64_t v;
        if (*count == max || !take_u32(&text, &v) || v < lo || v > hi) return false;
        out[(*count)++] = (uint32_t)v;
        if (*text == ',' && text[1]) text++;
        else if (*text) return false;
    }
    return *count > 0;
}

static bool parse_sweep(const char *text, cli_sweep *sw)
{
    const char *eq = strchr(text, '=');
    if (!eq || eq == text || (size_t)(eq - text) >= sizeof sw->field) return false;
    memcpy(sw->field, text, (size_t)(eq - text));
    sw->field[eq - text] = 0;
    if (strcasecmp(eq + 1, "max") == 0) {
        sw->values[0] = UINT32_MAX;
        sw->n = 1;
        return true;
    }
    return cli_parse_list(eq + 1, sw->values, &sw->n, CLI_BENCH_OPS_MAX_SWEEP_VALUES, 0, UINT32_MAX);
}

/* Configurations the sweeps make: their product, saturating. */
static uint64_t sweep_configs(const cli_bench_ops_options *o)
{
    uint64_t n = 1;
    for (uint32_t i = 0; i < o->n_sweeps && n <= UINT32_MAX; i++) n *= o->sweeps[i].n;
    return n;
}

cli_parse_result cli_parse_bench_ops_options(int argc, char **argv, cli_bench_ops_options *o, char *err,
                                             size_t err_len)
{
    *o = (cli_bench_ops_options){.rotate_mb = -1, .runs = -1, .min_ms = -1};
    const char *shapes = NULL, *mm_shapes = NULL, *ns = NULL, *batches = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (is_help(a)) return CLI_PARSE_HELP;
        else if (!strcmp(a, "--quick")) o->quick = true;
        else if (!strcmp(a, "--json")) o->json = true;
        else if (!strcmp(a, "--fields")) o->fields = true;
        else if (!strcmp(a, "--cpu-time")) o->cpu_time = true;
        else if (!strcmp(a, "--shapes") || !strcmp(a, "--mm-shapes") || !strcmp(a, "--types") || !strcmp(a, "--ns") ||
                 !strcmp(a, "--batches") || !strcmp(a, "--batch") || !strcmp(a, "--set")) {
            if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
            const char **slot = !strcmp(a, "--shapes")      ? &shapes
                                : !strcmp(a, "--mm-shapes") ? &mm_shapes
                                : !strcmp(a, "--types")     ? &o->types
                                : !strcmp(a, "--ns")        ? &ns
                                : !strcmp(a, "--set")       ? &o->set
                                                            : &batches;
            *slot = v;
        } else if (!strcmp(a, "--rotate-mb") || !strcmp(a, "--runs") || !strcmp(a, "--min-ms")) {
            int64_t *slot = !strcmp(a, "--rotate-mb") ? &o->rotate_mb : !strcmp(a, "--runs") ? &o->runs : &o->min_ms;
            int64_t lo = slot == &o->rotate_mb ? 0 : 1;
            int64_t hi = slot == &o->rotate_mb ? CLI_BENCH_OPS_MAX_ROTATE_MB : slot == &o->runs ? 64 : 600000;
            if (!(v = take_value(argc, argv, &i, err, err_len)) || cli_parse_integer(a, v, lo, hi, slot, err, err_len))
                return CLI_PARSE_ERROR;
        } else if (!strcmp(a, "--sweep")) {
            if (!(v = take_value(argc, argv, &i, err, err_len))) return CLI_PARSE_ERROR;
            if (o->n_sweeps == CLI_BENCH_OPS_MAX_SWEEPS)
                return fail(err, err_len, "more than %d --sweep options at '%.*s'", CLI_BENCH_OPS_MAX_SWEEPS, SHOWN(v));
            if (!parse_sweep(v, &o->sweeps[o->n_sweeps++]))
                return fail(err, err_len, "bad --sweep '%.*s' (want field=v1,v2,... with at most %d decimal values, or "
                            "field=max)", SHOWN(v), CLI_BENCH_OPS_MAX_SWEEP_VALUES);
        } else {
            return fail(err, err_len, "unknown flag '%.*s'", SHOWN(a));
        }
    }
    if (sweep_configs(o) > 4096) return fail(err, err_len, "--sweep: more than 4096 configurations");
    /* "none" leaves out the mat-vecs (--shapes none) or the mat-muls (--mm-shapes none, --batches none). */
    o->no_mv = shapes && !strcmp(shapes, "none");
    o->no_mm = (mm_shapes && !strcmp(mm_shapes, "none")) || (batches && !strcmp(batches, "none"));
    if (ns && !cli_parse_list(ns, o->ns, &o->n_ns, CLI_BENCH_OPS_MAX_NS, 1, OPS_MATVEC_MAX_N))
        return fail(err, err_len, "bad --ns '%.*s' (want up to %d values in 1..%u)", SHOWN(ns), CLI_BENCH_OPS_MAX_NS,
                    OPS_MATVEC_MAX_N);
    if (batches && !o->no_mm &&
        !cli_parse_list(batches, o->batches, &o->n_batches, CLI_BENCH_OPS_MAX_NS, OPS_MATVEC_MAX_N + 1, 1u << 16))
        return fail(err, err_len, "bad --batches '%.*s' (want up to %d values in %u..65536, or none)", SHOWN(batches),
                    CLI_BENCH_OPS_MAX_NS, OPS_MATVEC_MAX_N + 1);
    if (shapes && !o->no_mv && !cli_parse_shapes(shapes, o->mv, &o->n_mv))
        return fail(err, err_len, "bad --shapes '%.*s' (want small, large, RxC,RxC... with R in 1..%u and C in 1..%u, "
                    "or none)", SHOWN(shapes), CLI_BENCH_OPS_MAX_ROWS, CLI_BENCH_OPS_MAX_COLS);
    if (mm_shapes && !o->no_mm && !cli_parse_shapes(mm_shapes, o->mm, &o->n_mm))
        return fail(err, err_len, "bad --mm-shapes '%.*s' (want RxC,RxC... with R in 1..%u and C in 1..%u, or none)",
                    SHOWN(mm_shapes), CLI_BENCH_OPS_MAX_ROWS, CLI_BENCH_OPS_MAX_COLS);
    return CLI_PARSE_OK;
}

/* ---- every command ---- */

cli_parse_result cli_parse_command_line(int argc, char **argv, cli_command_options *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (argc < 2 || !argv[1]) return fail(err, err_len, "no command");
    const char *c = out->command = argv[1];
    argc--, argv++;
    if (!strcmp(c, "run") || !strcmp(c, "chat")) return cli_parse_run_options(argc, argv, &out->u.run, err, err_len);
    if (!strcmp(c, "bench")) return cli_parse_bench_options(argc, argv, &out->u.bench, err, err_len);
    if (!strcmp(c, "perplexity")) return cli_parse_perplexity_options(argc, argv, &out->u.perplexity, err, err_len);
    if (!strcmp(c, "bench-ops")) return cli_parse_bench_ops_options(argc, argv, &out->u.bench_ops, err, err_len);
    if (!strcmp(c, "synth")) return cli_parse_synth_options(argc, argv, &out->u.synth, err, err_len);
    if (!strcmp(c, "quantize")) return cli_parse_quantize_options(argc, argv, &out->u.quantize, err, err_len);
    if (!strcmp(c, "convert")) return cli_parse_convert_options(argc, argv, &out->u.convert, err, err_len);
    if (!strcmp(c, "devices")) return cli_parse_devices_options(argc, argv, err, err_len);
    if (!strcmp(c, "medusa-train"))
        return cli_parse_medusa_train_options(argc, argv, &out->u.medusa_train, err, err_len);
    return fail(err, err_len, "unknown command '%.*s'", SHOWN(c));
}

int cli_parse_exit(const char *command, cli_parse_result result, const char *err, void (*usage)(FILE *out))
{
    if (result == CLI_PARSE_HELP) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "vkllm %s: %s\n", command, err);
    usage(stderr);
    return 2;
}

/* ---- model loading ---- */

const char *cli_model_path(const cli_options *o)
{
    if (o->model) return o->model;
    const char *env = getenv("VKLLM_MODEL");
    if (env && *env) return env;
    if (*VKLLM_DEFAULT_MODEL && access(VKLLM_DEFAULT_MODEL, R_OK) == 0) return VKLLM_DEFAULT_MODEL;
    static char user_default[1024];
    const char *home = getenv("HOME");
    if (home) {
        snprintf(user_default, sizeof user_default, "%s/.local/share/vkllm/stories260K.gguf", home);
        if (access(user_default, R_OK) == 0) return user_default;
    }
    fprintf(stderr, "vkllm: no model: pass -m MODEL.gguf, set VKLLM_MODEL, or put stories260K.gguf in "
                    "~/.local/share/vkllm/ (see README)\n");
    return NULL;
}

int cli_open_model(const char *command, const cli_options *o, vkllm_model **model, vkllm_context **ctx)
{
    *model = NULL;
    *ctx = NULL;
    const char *path = cli_model_path(o);
    if (!path) return -1;
    vkllm_model_params mp = vkllm_model_default_params();
    mp.device = o->device;
    mp.cpu_threads = o->cpu_threads;
    vkllm_status st = vkllm_model_load_params(path, &mp, model);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.type_k = o->type_k;
    cp.type_v = o->type_v;
    cp.rotate_k = !o->kv_no_rotate;
    cp.center_k = !o->kv_no_center;
    if (cli_spec_on(&o->spec)) cp.n_outputs_max = o->spec.draft_max + 1; /* a verification's rows */
    if (o->spec.medusa_tree) cp.n_outputs_max = 64;                      /* a tree's */
    cp.output_hidden = o->spec.medusa != NULL;
    if (st == VKLLM_OK) st = vkllm_context_create(*model, &cp, ctx);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm %s: %s: %s\n", command, vkllm_status_name(st), vkllm_last_error());
        vkllm_model_free(*model);
        *model = NULL;
        return -1;
    }
    return 0;
}
