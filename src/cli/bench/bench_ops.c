/* vkllm bench-ops: mat-vec bandwidth and mat-mul throughput per weight type, beside the device's own
 * streaming bandwidth (the copy_u4 shader) measured in the same run, under the device's tuning row or
 * under configurations of it (--set, --sweep: one row per configuration).
 *
 * Each measurement records one sequence of many repeated dispatches (amortizing the submit and, on
 * lavapipe, the ~40 us per dispatch), runs it once to warm up, then times `runs` replays with the wall
 * clock around vkr_sequence_run and reports the median per dispatch.  On a GPU whose last-level cache
 * holds a whole matrix (an H200 has 60 MB of L2; 4096 x 4096 Q4_0 is 9 MB), successive dispatches rotate
 * over several distinct copies of the weights, --rotate-mb in all, so each one reads from memory, not
 * from the cache; the copy shader's buffers are as large. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"
#include "options.h"
#include "ops/matmul/matmul.h"
#include "quant/quant.h"
#include "runtime/commands.h"

#define MAX_SHAPES CLI_BENCH_OPS_MAX_SHAPES
#define MAX_NS CLI_BENCH_OPS_MAX_NS
#define MAX_SWEEPS CLI_BENCH_OPS_MAX_SWEEPS
#define MAX_COPIES 64
#define SAMPLE_ROWS 16 /* distinct rows quantized; the matrix repeats them (timing does not need more) */

/* Shapes and sweeps as the option parser (options.h) reads them. */
typedef cli_shape shape;
typedef cli_sweep sweep;

typedef struct bench_options {
    shape mv[MAX_SHAPES]; /* mat-vec shapes, rows x cols */
    uint32_t n_mv;
    shape mm[MAX_SHAPES]; /* mat-mul shapes */
    uint32_t n_mm;
    uint32_t ns[MAX_NS];  /* mat-vec columns (1..8) */
    uint32_t n_ns;
    uint32_t batches[MAX_NS]; /* mat-mul columns (> 8) */
    uint32_t n_batches;
    uint32_t runs;
    double min_seconds;   /* per timed replay */
    uint64_t rotate_bytes; /* distinct weight copies per measurement, this many bytes in all (0: one copy) */
    const char *types;    /* comma-separated names, "all", or NULL for the default set */
    const char *set;      /* overrides applied to every configuration */
    sweep sweeps[MAX_SWEEPS];
    uint32_t n_sweeps;
    bool json;
} bench_options;

static const uint32_t all_types[] = {QUANT_WEIGHT_TYPE_IDS};
static const char default_types[] = "F16,Q8_0,Q4_0,Q4_K,Q5_K,Q6_K";

/* --cpu-time: the process's CPU time (all threads, lavapipe's workers included) instead of the wall clock:
 * steadier on a machine shared with other jobs; on a CPU device it sums the worker threads' time. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Records one repetition of a command (one dispatch or one ops_matmul). */
typedef vkllm_status (*record_fn)(ops_context *ops, vkr_sequence *seq, void *arg);

static vkllm_status record_reps(ops_context *ops, vkr_sequence *seq, record_fn fn, void *arg, uint32_t reps)
{
    VKLLM_TRY(vkr_sequence_begin(seq));
    for (uint32_t i = 0; i < reps; i++) VKLLM_TRY(fn(ops, seq, arg));
    return vkr_sequence_end(seq);
}

/* Median seconds per repetition; at least min_reps repetitions per replay. */
static vkllm_status time_op(ops_context *ops, const bench_options *opt, record_fn fn, void *arg, uint32_t min_reps,
                            double *out)
{
    vkr_sequence *seq;
    VKLLM_TRY(vkr_sequence_create(ops->dev, &seq));
    /* Calibrate: one repetition (also compiles the shader), then enough for min_seconds per replay. */
    vkllm_status st = record_reps(ops, seq, fn, arg, 1);
    double t0 = now_seconds();
    if (st == VKLLM_OK) st = vkr_sequence_run(seq);
    if (st == VKLLM_OK) st = vkr_sequence_run(seq);
    double one = (now_seconds() - t0) / 2;
    uint32_t reps = one > 0 ? (uint32_t)(opt->min_seconds / one) + 1 : 1;
    if (reps > 1000) reps = 1000;
    if (reps < min_reps) reps = min_reps;
    if (st == VKLLM_OK) st = record_reps(ops, seq, fn, arg, reps);
    if (st == VKLLM_OK) st = vkr_sequence_run(seq); /* warm-up */
    double samples[64];
    uint32_t runs = opt->runs < 64 ? opt->runs : 64;
    for (uint32_t r = 0; r < runs && st == VKLLM_OK; r++) {
        double start = now_seconds();
        st = vkr_sequence_run(seq);
        samples[r] = (now_seconds() - start) / reps;
    }
    vkr_sequence_destroy(seq);
    if (st != VKLLM_OK) return st;
    qsort(samples, runs, sizeof samples[0], compare_double);
    *out = samples[runs / 2];
    return VKLLM_OK;
}

/* ---- output ---- */

/* s as a JSON string body (quotes, backslashes and control characters escaped). */
static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned)(unsigned char)*s);
        else putchar(*s);
    }
    putchar('"');
}

/* An error row: the measurement failed under this configuration; the run goes on. */
static void report_error(const bench_options *opt, const char *config, const char *what, uint32_t type, shape s)
{
    const char *name = quant_get_traits(type)->name;
    if (opt->json) {
        printf("{\"kind\": \"error\", \"config\": ");
        json_string(config);
        printf(", \"op\": \"%s\", \"type\": \"%s\", \"rows\": %u, \"cols\": %u, \"message\": ", what, name, s.rows,
               s.cols);
        json_string(vkllm_last_error());
        printf("}\n");
    } else {
        printf("| %s | %s | %u x %u | %s failed: %s |\n", config, name, s.rows, s.cols, what, vkllm_last_error());
    }
    fflush(stdout);
}

/* ---- the device's streaming bandwidth ---- */

typedef struct copy_arg {
    const vkr_pipeline *pipeline;
    vkr_range src, dst;
    uint32_t vec4s;
} copy_arg;

static vkllm_status record_copy(ops_context *ops, vkr_sequence *seq, void *arg)
{
    copy_arg *c = arg;
    vkr_range bind[2] = {c->src, c->dst};
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(c->vec4s, 256), groups);
    return vkr_sequence_dispatch(seq, c->pipeline, bind, &c->vec4s, groups, "copy_u4");
}

/* Bytes copied per second (each byte read once and written once) between two buffers of *bytes. */
static vkllm_status copy_bandwidth(ops_context *ops, const bench_options *opt, uint64_t *bytes, double *gbps)
{
    uint64_t size = opt->rotate_bytes > (64ull << 20) ? opt->rotate_bytes : 64ull << 20;
    uint64_t limit = ops->caps->max_storage_buffer_range;
    if (ops->caps->max_memory_allocation && ops->caps->max_memory_allocation < limit)
        limit = ops->caps->max_memory_allocation;
    if ((16ull << 32) - 16 < limit) limit = (16ull << 32) - 16; /* the uvec4 count is a uint */
    if (size > limit) size = limit;
    size &= ~15ull;
    *bytes = size;
    vkr_buffer src = {0}, dst = {0};
    copy_arg c = {.vec4s = (uint32_t)(size / 16)};
    uint32_t wg = 256;
    vkllm_status st = ops_pipeline(ops, "copy_u4", 2, 0x1, 4, &wg, 1, &c.pipeline);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(ops->dev, size, VKR_MEMORY_DEVICE, &src);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(ops->dev, size, VKR_MEMORY_DEVICE, &dst);
    if (st == VKLLM_OK) st = vkr_fill(ops->dev, &src, 0, size, 0x3f800000u);
    double seconds = 0;
    c.src = vkr_whole(&src);
    c.dst = vkr_whole(&dst);
    if (st == VKLLM_OK) st = time_op(ops, opt, record_copy, &c, 1, &seconds);
    vkr_buffer_free(ops->dev, &src);
    vkr_buffer_free(ops->dev, &dst);
    *gbps = seconds > 0 ? (double)size / seconds * 1e-9 : 0;
    return st;
}

/* ---- weights: distinct copies to rotate over ---- */

typedef struct weight_set {
    ops_weight *w[MAX_COPIES];
    uint32_t copies;
} weight_set;

static void weights_free(ops_context *ops, weight_set *ws)
{
    for (uint32_t i = 0; i < ws->copies; i++) ops_weight_free(ops, ws->w[i]);
    ws->copies = 0;
}

/* Copies of a rows x cols weight of `type` (SAMPLE_ROWS random rows repeated), enough that together they
 * hold rotate_bytes (at least one). */
static vkllm_status weights_make(ops_context *ops, const bench_options *opt, uint32_t type, shape s, weight_set *ws)
{
    ws->copies = 0;
    uint64_t row_bytes = quant_row_size(type, s.cols);
    uint8_t *data = malloc(row_bytes * s.rows);
    float *row = malloc(sizeof *row * s.cols);
    vkllm_status st = data && row ? VKLLM_OK : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "bench-ops: weights");
    uint64_t seed = 12345;
    for (uint32_t r = 0; r < SAMPLE_ROWS && r < s.rows && st == VKLLM_OK; r++) {
        for (uint32_t k = 0; k < s.cols; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            row[k] = (float)((double)(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        }
        st = quant_quantize_row(type, row, data + r * row_bytes, s.cols);
    }
    for (uint32_t r = SAMPLE_ROWS; r < s.rows && st == VKLLM_OK; r++)
        memcpy(data + r * row_bytes, data + (r % SAMPLE_ROWS) * row_bytes, row_bytes);
    uint32_t want = 1;
    while (st == VKLLM_OK && ws->copies < want) {
        st = ops_weight_create(ops, type, s.rows, s.cols, data, &ws->w[ws->copies]);
        if (st != VKLLM_OK) break;
        ws->copies++;
        if (ws->copies == 1) {
            uint64_t bytes = ops_weight_bytes(ws->w[0]);
            uint64_t n = bytes ? (opt->rotate_bytes + bytes - 1) / bytes : 1;
            want = n < 1 ? 1 : n > MAX_COPIES ? MAX_COPIES : (uint32_t)n;
        }
    }
    free(data);
    free(row);
    if (st != VKLLM_OK) weights_free(ops, ws);
    return st;
}

/* ---- weight products ---- */

typedef struct matmul_arg {
    const weight_set *ws;
    uint32_t next; /* the copy the next repetition reads */
    vkr_range x, y;
    uint32_t n;
} matmul_arg;

static vkllm_status record_matmul(ops_context *ops, vkr_sequence *seq, void *arg)
{
    matmul_arg *m = arg;
    const ops_weight *w = m->ws->w[m->next++ % m->ws->copies];
    return ops_matmul(ops, seq, w, m->x, m->y, m->n);
}

/* Activations for up to max_n columns of a `cols`-wide input and `rows`-long output. */
typedef struct io_buffers {
    vkr_buffer x, y;
} io_buffers;

static vkllm_status io_alloc(ops_context *ops, shape s, uint32_t max_n, io_buffers *io)
{
    *io = (io_buffers){0};
    vkllm_status st = vkr_buffer_alloc(ops->dev, 4ull * max_n * s.cols, VKR_MEMORY_DEVICE, &io->x);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(ops->dev, 4ull * max_n * s.rows, VKR_MEMORY_DEVICE, &io->y);
    if (st == VKLLM_OK) st = vkr_fill(ops->dev, &io->x, 0, io->x.size, 0x3c000000u); /* 2^-7 */
    return st;
}

static void io_free(ops_context *ops, io_buffers *io)
{
    vkr_buffer_free(ops->dev, &io->x);
    vkr_buffer_free(ops->dev, &io->y);
}

/* One configuration's mat-vec row: time at each n, GB/s of weight bytes at the first n. */
static vkllm_status bench_matvec(ops_context *ops, const bench_options *opt, const char *config, uint32_t type,
                                 shape s, const weight_set *ws, io_buffers *io, double copy_gbps)
{
    double t[MAX_NS] = {0};
    matmul_arg m = {ws, 0, vkr_whole(&io->x), vkr_whole(&io->y), 1};
    for (uint32_t i = 0; i < opt->n_ns; i++) {
        m.n = opt->ns[i];
        m.next = 0;
        VKLLM_TRY(time_op(ops, opt, record_matmul, &m, ws->copies, &t[i]));
    }
    double bytes = (double)ops_weight_bytes(ws->w[0]), gbps = bytes / t[0] * 1e-9;
    double pct = copy_gbps > 0 ? 100 * gbps / copy_gbps : 0, ratio = t[opt->n_ns - 1] / t[0];
    const char *name = quant_get_traits(type)->name;
    if (opt->json) {
        printf("{\"kind\": \"matvec\", \"config\": ");
        json_string(config);
        printf(", \"type\": \"%s\", \"rows\": %u, \"cols\": %u, \"weight_bytes\": %.0f, \"copies\": %u", name, s.rows,
               s.cols, bytes, ws->copies);
        for (uint32_t i = 0; i < opt->n_ns; i++) printf(", \"us_n%u\": %.3f", opt->ns[i], t[i] * 1e6);
        printf(", \"gbps\": %.2f, \"pct_copy\": %.1f, \"t_last_over_t_first\": %.3f}\n", gbps, pct, ratio);
    } else {
        printf("| %s | %-5s | %6u x %-5u | %7.1f x %-2u |", config, name, s.rows, s.cols, bytes / 1048576.0,
               ws->copies);
        printf(" %9.2f | %7.1f | %5.0f%% |", t[0] * 1e6, gbps, pct);
        for (uint32_t i = 1; i < opt->n_ns; i++) printf(" %9.2f |", t[i] * 1e6);
        printf(" %5.2f |\n", ratio);
    }
    fflush(stdout);
    return VKLLM_OK;
}

static vkllm_status bench_matmul(ops_context *ops, const bench_options *opt, const char *config, uint32_t type,
                                 shape s, const weight_set *ws, io_buffers *io, uint32_t n)
{
    double t = 0;
    matmul_arg m = {ws, 0, vkr_whole(&io->x), vkr_whole(&io->y), n};
    VKLLM_TRY(time_op(ops, opt, record_matmul, &m, ws->copies, &t));
    double gflops = 2.0 * s.rows * s.cols * n / t * 1e-9;
    const char *name = quant_get_traits(type)->name;
    if (opt->json) {
        printf("{\"kind\": \"matmul\", \"config\": ");
        json_string(config);
        printf(", \"type\": \"%s\", \"rows\": %u, \"cols\": %u, \"n\": %u, \"copies\": %u, \"ms\": %.4f, "
               "\"gflops\": %.1f}\n",
               name, s.rows, s.cols, n, ws->copies, t * 1e3, gflops);
    } else {
        printf("| %s | %-5s | %6u x %-5u | %5u | %9.3f | %9.1f |\n", config, name, s.rows, s.cols, n, t * 1e3,
               gflops);
    }
    fflush(stdout);
    return VKLLM_OK;
}

/* ---- configurations: the base tuning with --set, times the cartesian product of the sweeps ---- */

static uint32_t config_count(const bench_options *opt)
{
    uint32_t n = 1;
    for (uint32_t i = 0; i < opt->n_sweeps; i++) n *= opt->sweeps[i].n;
    return n;
}

/* Configuration c (the last sweep varies fastest) into *t, its label into label. */
static vkllm_status config_at(const bench_options *opt, const op_tuning *base, uint32_t c, op_tuning *t, char *label,
                              size_t size)
{
    *t = *base;
    size_t used = (size_t)snprintf(label, size, "%s", opt->set ? opt->set : "");
    uint32_t idx[MAX_SWEEPS];
    for (uint32_t i = opt->n_sweeps; i-- > 0;) {
        idx[i] = c % opt->sweeps[i].n;
        c /= opt->sweeps[i].n;
    }
    for (uint32_t i = 0; i < opt->n_sweeps; i++) {
        const sweep *sw = &opt->sweeps[i];
        VKLLM_TRY(tuning_set(t, sw->field, sw->values[idx[i]]));
        if (used < size)
            used += (size_t)snprintf(label + used, size - used, "%s%s=%u", used ? "," : "", sw->field,
                                     sw->values[idx[i]]);
    }
    if (!label[0]) snprintf(label, size, "%s", base->name);
    return VKLLM_OK;
}

/* ---- the run ---- */

static bool type_selected(const bench_options *opt, uint32_t type)
{
    const char *types = opt->types ? opt->types : default_types;
    if (strcasecmp(types, "all") == 0) return true;
    const char *name = quant_get_traits(type)->name;
    size_t len = strlen(name);
    for (const char *p = types; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncasecmp(p, name, n) == 0) return true;
        p += n + (end ? 1 : 0);
    }
    return false;
}

/* Every weight type and shape of one kind (mat-vec or mat-mul) under every configuration: the weights are
 * made once per type and shape, under the base tuning. */
static vkllm_status run_kind(ops_context *ops, const bench_options *opt, const op_tuning *base, bool matvec,
                             double copy_gbps, uint32_t *failures)
{
    const shape *shapes = matvec ? opt->mv : opt->mm;
    uint32_t n_shapes = matvec ? opt->n_mv : opt->n_mm, max_n = 0;
    for (uint32_t i = 0; i < (matvec ? opt->n_ns : opt->n_batches); i++)
        if ((matvec ? opt->ns[i] : opt->batches[i]) > max_n) max_n = matvec ? opt->ns[i] : opt->batches[i];
    uint32_t configs = config_count(opt);
    for (uint32_t si = 0; si < n_shapes; si++) {
        io_buffers io;
        vkllm_status st = io_alloc(ops, shapes[si], max_n, &io);
        if (st != VKLLM_OK) {
            io_free(ops, &io);
            return st; /* activations of a few MiB: the device is in trouble */
        }
        for (size_t ti = 0; ti < sizeof all_types / sizeof *all_types; ti++) {
            uint32_t type = all_types[ti];
            if (!type_selected(opt, type)) continue;
            ops->tuning = base;
            weight_set ws = {0};
            st = weights_make(ops, opt, type, shapes[si], &ws);
            if (st != VKLLM_OK) {
                report_error(opt, base->name, "weights", type, shapes[si]);
                (*failures)++;
                continue;
            }
            for (uint32_t c = 0; c < configs; c++) {
                op_tuning t;
                char label[256];
                st = config_at(opt, base, c, &t, label, sizeof label);
                ops->tuning = &t;
                if (matvec) {
                    if (st == VKLLM_OK) st = bench_matvec(ops, opt, label, type, shapes[si], &ws, &io, copy_gbps);
                    if (st != VKLLM_OK) report_error(opt, label, "matvec", type, shapes[si]), (*failures)++;
                } else {
                    for (uint32_t b = 0; b < opt->n_batches; b++) {
                        if (st == VKLLM_OK)
                            st = bench_matmul(ops, opt, label, type, shapes[si], &ws, &io, opt->batches[b]);
                        if (st != VKLLM_OK) {
                            report_error(opt, label, "matmul", type, shapes[si]);
                            (*failures)++;
                            break;
                        }
                    }
                }
                ops->tuning = base;
            }
            weights_free(ops, &ws);
        }
        io_free(ops, &io);
    }
    return VKLLM_OK;
}

static void print_tuning(const bench_options *opt, const op_tuning *t)
{
    if (opt->json) {
        printf(", \"tuning\": \"%s\", \"fields\": {", t->name);
    } else {
        printf("tuning row %s%s%s:", t->name, opt->set ? " with " : "", opt->set ? opt->set : "");
    }
    for (size_t i = 0; tuning_field_name(i); i++) {
        uint32_t v = 0;
        tuning_get(t, tuning_field_name(i), &v);
        printf(opt->json ? "%s\"%s\": %u" : "%s%s=%u", i ? (opt->json ? ", " : " ") : (opt->json ? "" : " "),
               tuning_field_name(i), v);
    }
    printf(opt->json ? "}" : "\n");
}

/* ---- options ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm bench-ops [--types F16,Q4_0,...|all] [--shapes small|large|RxC,...] [--mm-shapes RxC,...]\n"
            "                       [--ns 1,2,4,8] [--batches 128,512] [--rotate-mb MB] [--runs N] [--min-ms MS]\n"
            "                       [--set field=value,...] [--sweep field=v1,v2,...]... [--quick] [--json]\n"
            "                       [--cpu-time] [--fields]\n"
            "  --types      weight types (default %s)\n"
            "  --shapes     mat-vec weight shapes, rows x cols (GPU default: large = 4096x4096,32000x4096,\n"
            "               14336x4096,4096x14336; CPU devices and --quick: 4096x768; none: no mat-vecs)\n"
            "  --mm-shapes  mat-mul shapes (GPU default 4096x4096,11008x4096; CPU/--quick: 4096x768; none)\n"
            "  --ns         mat-vec columns timed, 1..8 (default 1,2,4,8); GB/s is of the first\n"
            "  --batches    mat-mul columns, > 8 (GPU default 128,512; CPU/--quick: 128; none: no mat-muls)\n"
            "  --rotate-mb  distinct weight copies per measurement, this many MiB in all, so that each dispatch\n"
            "               reads memory, not the last-level cache; also the copy shader's buffer size\n"
            "               (GPU default 256; CPU/--quick: 0, one copy and 64 MiB)\n"
            "  --runs       timed replays per measurement, median reported (default 5; CPU/--quick 3)\n"
            "  --min-ms     milliseconds per replay (default 50; CPU/--quick 30)\n"
            "  --set        tuning overrides for every measurement (as VKLLM_TUNE)\n"
            "  --sweep      one field's values (repeatable): a row per configuration, the cartesian product\n"
            "  --json       one JSON object per line instead of tables\n"
            "  --cpu-time   time in process CPU seconds (steadier on a shared machine; sums worker threads)\n"
            "  --fields     print the tuning's fields and values (after VKLLM_TUNING, VKLLM_TUNE, --set) and exit\n"
            "Environment: VKLLM_TUNING (a row by name), VKLLM_TUNE (overrides), as for every vkllm command.\n",
            default_types);
}

int cli_bench_ops(int argc, char **argv)
{
    cli_bench_ops_options po;
    char err[512];
    cli_parse_result parsed = cli_parse_bench_ops_options(argc, argv, &po, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("bench-ops", parsed, err, usage);
    bench_options opt = {.n_mv = po.n_mv, .n_mm = po.n_mm, .n_ns = po.n_ns, .n_batches = po.n_batches,
                         .types = po.types, .set = po.set, .n_sweeps = po.n_sweeps, .json = po.json};
    memcpy(opt.mv, po.mv, sizeof opt.mv);
    memcpy(opt.mm, po.mm, sizeof opt.mm);
    memcpy(opt.ns, po.ns, sizeof opt.ns);
    memcpy(opt.batches, po.batches, sizeof opt.batches);
    memcpy(opt.sweeps, po.sweeps, sizeof opt.sweeps);
    if (po.cpu_time) bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    bool no_mv = po.no_mv, no_mm = po.no_mm;

    vkr_device *dev = NULL;
    ops_context *ops = NULL;
    vkllm_status st = vkr_device_create(&dev);
    if (st == VKLLM_OK) st = ops_create(dev, &ops);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm bench-ops: %s\n", vkllm_last_error());
        vkr_device_destroy(dev);
        return 1;
    }
    /* The base tuning (the device's row, VKLLM_TUNING and VKLLM_TUNE applied by ops_create) with --set, and
     * every sweep value checked on it before anything is measured. */
    op_tuning base = *ops->tuning, scratch;
    st = tuning_apply(&base, opt.set);
    if (st != VKLLM_OK) fprintf(stderr, "vkllm bench-ops: --set %s: %s\n", opt.set, vkllm_last_error());
    for (uint32_t i = 0; i < opt.n_sweeps && st == VKLLM_OK; i++)
        for (uint32_t v = 0; v < opt.sweeps[i].n && st == VKLLM_OK; v++) {
            scratch = base;
            st = tuning_set(&scratch, opt.sweeps[i].field, opt.sweeps[i].values[v]);
            if (st != VKLLM_OK) fprintf(stderr, "vkllm bench-ops: --sweep: %s\n", vkllm_last_error());
        }
    if (st != VKLLM_OK) {
        ops_free(ops);
        vkr_device_destroy(dev);
        return 2;
    }
    if (po.fields) {
        for (size_t i = 0; tuning_field_name(i); i++) {
            uint32_t v = 0;
            tuning_get(&base, tuning_field_name(i), &v);
            printf("%s %u\n", tuning_field_name(i), v);
        }
        ops_free(ops);
        vkr_device_destroy(dev);
        return 0;
    }

    /* Defaults: big shapes and weights rotated beyond the cache on GPUs, a run of about a minute on CPUs. */
    bool small = po.quick || ops->caps->type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (!opt.n_mv && !no_mv) cli_parse_shapes(small ? "4096x768" : "large", opt.mv, &opt.n_mv);
    if (!opt.n_mm && !no_mm) cli_parse_shapes(small ? "4096x768" : "4096x4096,11008x4096", opt.mm, &opt.n_mm);
    if (!opt.n_ns) cli_parse_list("1,2,4,8", opt.ns, &opt.n_ns, MAX_NS, 1, 8);
    if (!opt.n_batches && !no_mm)
        cli_parse_list(small ? "128" : "128,512", opt.batches, &opt.n_batches, MAX_NS, 9, 1u << 16);
    if (no_mm) opt.n_mm = 0;
    opt.rotate_bytes = (uint64_t)(po.rotate_mb >= 0 ? po.rotate_mb : small ? 0 : 256) << 20;
    opt.runs = (uint32_t)(po.runs > 0 ? po.runs : small ? 3 : 5);
    opt.min_seconds = (po.min_ms > 0 ? (double)po.min_ms : small ? 30 : 50) * 1e-3;

    uint64_t copy_bytes = 0;
    double copy_gbps = 0;
    st = copy_bandwidth(ops, &opt, &copy_bytes, &copy_gbps);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm bench-ops: copy_u4: %s\n", vkllm_last_error());
        ops_free(ops);
        vkr_device_destroy(dev);
        return 1;
    }
    uint32_t configs = config_count(&opt);
    if (opt.json) {
        printf("{\"kind\": \"device\", \"name\": ");
        json_string(ops->caps->name);
        printf(", \"driver\": ");
        json_string(ops->caps->driver_info);
        print_tuning(&opt, &base);
        printf(", \"configs\": %u, \"rotate_bytes\": %llu}\n", configs, (unsigned long long)opt.rotate_bytes);
        printf("{\"kind\": \"copy\", \"bytes\": %llu, \"gbps\": %.2f, \"gbps_read_write\": %.2f}\n",
               (unsigned long long)copy_bytes, copy_gbps, 2 * copy_gbps);
    } else {
        printf("device: %s (%s)\n", ops->caps->name, ops->caps->driver_info);
        print_tuning(&opt, &base);
        printf("copy_u4 (%.0f MiB, bytes copied per second = bytes read per second): %.2f GB/s (%.2f GB/s read + "
               "written)\n",
               (double)copy_bytes / 1048576.0, copy_gbps, 2 * copy_gbps);
        if (opt.rotate_bytes)
            printf("weights: distinct copies of each matrix rotated, %.0f MiB in all (the MiB x copies column)\n\n",
                   (double)opt.rotate_bytes / 1048576.0);
        else
            printf("weights: one copy of each matrix (--rotate-mb 0)\n\n");
    }
    if (!opt.json && opt.n_mv) {
        printf("mat-vec: microseconds per product at n columns; GB/s of weight bytes at n=%u; %%copy of copy_u4's\n",
               opt.ns[0]);
        printf("| config | type  | rows x cols    | MiB x copies | n=%-2u us   | GB/s    | %%copy  |", opt.ns[0]);
        for (uint32_t i = 1; i < opt.n_ns; i++) printf(" n=%-2u us   |", opt.ns[i]);
        printf(" t%u/t%u |\n| --- | --- | --- | ---: | ---: | ---: | ---: |", opt.ns[opt.n_ns - 1], opt.ns[0]);
        for (uint32_t i = 1; i < opt.n_ns; i++) printf(" ---: |");
        printf(" ---: |\n");
    }
    fflush(stdout);
    uint32_t failures = 0;
    st = run_kind(ops, &opt, &base, true, copy_gbps, &failures);
    if (st == VKLLM_OK && opt.n_batches && opt.n_mm) {
        if (!opt.json) {
            printf("%smat-mul: milliseconds per product, GFLOP/s = 2 rows cols n / time\n", opt.n_mv ? "\n" : "");
            printf("| config | type  | rows x cols    | n     | ms        | GFLOP/s   |\n");
            printf("| --- | --- | --- | ---: | ---: | ---: |\n");
        }
        st = run_kind(ops, &opt, &base, false, copy_gbps, &failures);
    }
    if (st != VKLLM_OK) fprintf(stderr, "vkllm bench-ops: %s\n", vkllm_last_error());
    if (failures) fprintf(stderr, "vkllm bench-ops: %u measurements failed (rows above)\n", failures);
    ops->tuning = &ops->resolved;
    ops_free(ops);
    vkr_device_destroy(dev);
    return st == VKLLM_OK && failures == 0 ? 0 : 1;
}
