/* vkllm bench-ops: mat-vec bandwidth and mat-mul throughput per weight type (quantized types on the float
 * and the integer mat-vec path), beside the device's own streaming bandwidth (the copy_u4 shader) measured
 * in the same run.
 *
 * Each measurement records one sequence of many repeated dispatches (amortizing the submit and, on
 * lavapipe, the ~40 us per dispatch), runs it once to warm up, then times `runs` replays with the wall
 * clock around vkr_sequence_run and reports the median per dispatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"
#include "ops/matmul.h"
#include "quant/quant.h"
#include "runtime/commands.h"

#define MAX_SHAPES 8
#define SAMPLE_ROWS 16 /* distinct rows quantized; the matrix repeats them (timing does not need more) */

typedef struct bench_options {
    uint32_t shapes[MAX_SHAPES][2]; /* rows, cols */
    uint32_t n_shapes;
    uint32_t batch;                  /* n of the mat-mul */
    uint32_t runs;
    double min_seconds;              /* per timed replay */
    const char *types;               /* comma-separated names, or NULL for all */
} bench_options;

static const uint32_t bench_types[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0,
                                       QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q2_K, QUANT_Q3_K,
                                       QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};

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

/* Records `reps` copies of a command (one dispatch or one ops_matmul). */
typedef vkllm_status (*record_fn)(ops_context *ops, vkr_sequence *seq, void *arg);

static vkllm_status record_reps(ops_context *ops, vkr_sequence *seq, record_fn fn, void *arg, uint32_t reps)
{
    VKLLM_TRY(vkr_sequence_begin(seq));
    for (uint32_t i = 0; i < reps; i++) VKLLM_TRY(fn(ops, seq, arg));
    return vkr_sequence_end(seq);
}

/* Median seconds per repetition. */
static vkllm_status time_op(ops_context *ops, const bench_options *opt, record_fn fn, void *arg, double *out)
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

/* Bytes copied per second (each byte read once and written once) over a 64 MiB buffer. */
static vkllm_status copy_bandwidth(ops_context *ops, const bench_options *opt, double *gbps)
{
    const uint64_t bytes = 64ull << 20;
    vkr_buffer src = {0}, dst = {0};
    copy_arg c = {.vec4s = (uint32_t)(bytes / 16)};
    uint32_t wg = 256;
    vkllm_status st = ops_pipeline(ops, "copy_u4", 2, 0x1, 4, &wg, 1, &c.pipeline);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(ops->dev, bytes, VKR_MEMORY_DEVICE, &src);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(ops->dev, bytes, VKR_MEMORY_DEVICE, &dst);
    if (st == VKLLM_OK) st = vkr_fill(ops->dev, &src, 0, bytes, 0x3f800000u);
    double seconds = 0;
    c.src = vkr_whole(&src);
    c.dst = vkr_whole(&dst);
    if (st == VKLLM_OK) st = time_op(ops, opt, record_copy, &c, &seconds);
    vkr_buffer_free(ops->dev, &src);
    vkr_buffer_free(ops->dev, &dst);
    *gbps = seconds > 0 ? (double)bytes / seconds * 1e-9 : 0;
    return st;
}

/* ---- weight products ---- */

typedef struct matmul_arg {
    const ops_weight *w;
    vkr_range x, y;
    uint32_t n;
} matmul_arg;

static vkllm_status record_matmul(ops_context *ops, vkr_sequence *seq, void *arg)
{
    matmul_arg *m = arg;
    return ops_matmul(ops, seq, m->w, m->x, m->y, m->n);
}

/* A rows x cols weight of `type` made of SAMPLE_ROWS random rows repeated. */
static vkllm_status make_weight(ops_context *ops, uint32_t type, uint32_t rows, uint32_t cols, ops_weight **out)
{
    uint64_t row_bytes = quant_row_size(type, cols);
    uint8_t *data = malloc(row_bytes * rows);
    float *row = malloc(sizeof *row * cols);
    vkllm_status st = data && row ? VKLLM_OK : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "bench-ops: weights");
    uint64_t seed = 12345;
    for (uint32_t r = 0; r < SAMPLE_ROWS && r < rows && st == VKLLM_OK; r++) {
        for (uint32_t k = 0; k < cols; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            row[k] = (float)((double)(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
        }
        st = quant_quantize_row(type, row, data + r * row_bytes, cols);
    }
    for (uint32_t r = SAMPLE_ROWS; r < rows && st == VKLLM_OK; r++)
        memcpy(data + r * row_bytes, data + (r % SAMPLE_ROWS) * row_bytes, row_bytes);
    if (st == VKLLM_OK) st = ops_weight_create(ops, type, rows, cols, data, out);
    free(data);
    free(row);
    return st;
}

static vkllm_status bench_one(ops_context *ops, const bench_options *opt, uint32_t type, uint32_t rows,
                              uint32_t cols, double copy_gbps)
{
    ops_weight *w = NULL;
    vkr_buffer x = {0}, y = {0};
    uint32_t n = opt->batch;
    vkllm_status st = make_weight(ops, type, rows, cols, &w);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(ops->dev, 4ull * n * cols, VKR_MEMORY_DEVICE, &x);
    if (st == VKLLM_OK) st = vkr_buffer_alloc(ops->dev, 4ull * n * rows, VKR_MEMORY_DEVICE, &y);
    if (st == VKLLM_OK) st = vkr_fill(ops->dev, &x, 0, x.size, 0x3c000000u); /* 2^-7 */
    /* Quantized types on both mat-vec paths (the tuning's matvec_int_dot off, then on); the path column
     * names the mat-vec's. */
    const op_tuning *own = ops->tuning;
    op_tuning path_row = *own;
    ops->tuning = &path_row;
    for (uint32_t int_dot = 0; int_dot < 2 && st == VKLLM_OK; int_dot++) {
        path_row.matvec_int_dot = 0;
        ops_matmul_path float_path = ops_matmul_path_of(ops, w, 1);
        path_row.matvec_int_dot = int_dot;
        ops_matmul_path path = ops_matmul_path_of(ops, w, 1);
        if (int_dot && path == float_path) break; /* no integer path for this type */
        double t_vec = 0, t_vec8 = 0, t_mat = 0;
        matmul_arg m = {w, vkr_whole(&x), vkr_whole(&y), 1};
        st = time_op(ops, opt, record_matmul, &m, &t_vec);
        m.n = 8;
        if (st == VKLLM_OK) st = time_op(ops, opt, record_matmul, &m, &t_vec8);
        m.n = n;
        if (st == VKLLM_OK) st = time_op(ops, opt, record_matmul, &m, &t_mat);
        if (st == VKLLM_OK) {
            double gb = (double)ops_weight_bytes(w) * 1e-9;
            double flops = 2.0 * rows * cols * n;
            printf("| %-5s | %-5s | %6u x %-5u | %9.1f | %6.2f | %5.0f%% | %9.1f | %6.2f | %9.2f | %7.1f |\n",
                   quant_get_traits(type)->name, ops_matmul_path_name(path), rows, cols, t_vec * 1e6, gb / t_vec,
                   100 * gb / t_vec / copy_gbps, t_vec8 * 1e6, gb / t_vec8, t_mat * 1e3, flops / t_mat * 1e-9);
            fflush(stdout);
        }
    }
    ops->tuning = own;
    vkr_buffer_free(ops->dev, &x);
    vkr_buffer_free(ops->dev, &y);
    ops_weight_free(ops, w);
    return st;
}

static bool type_selected(const bench_options *opt, uint32_t type)
{
    if (!opt->types) return true;
    const char *name = quant_get_traits(type)->name;
    size_t len = strlen(name);
    for (const char *p = opt->types; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncasecmp(p, name, n) == 0) return true;
        p += n + (end ? 1 : 0);
    }
    return false;
}

static bool parse_shapes(const char *text, bench_options *opt)
{
    if (strcmp(text, "small") == 0) text = "4096x768,32000x768";
    else if (strcmp(text, "large") == 0) text = "4096x4096,11008x4096,32000x4096";
    opt->n_shapes = 0;
    while (*text && opt->n_shapes < MAX_SHAPES) {
        unsigned rows, cols;
        int used = 0;
        if (sscanf(text, "%ux%u%n", &rows, &cols, &used) != 2 || rows == 0 || cols == 0) return false;
        opt->shapes[opt->n_shapes][0] = rows;
        opt->shapes[opt->n_shapes][1] = cols;
        opt->n_shapes++;
        text += used;
        if (*text == ',') text++;
        else if (*text) return false;
    }
    return opt->n_shapes > 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: vkllm bench-ops [--shapes small|large|RxC,...] [--types F16,Q4_0,...] [--batch N]\n"
                 "                       [--runs N] [--cpu-time]\n"
                 "  --shapes  weight shapes, rows x cols (default: small on CPU devices, large on GPUs)\n"
                 "  --batch   columns of the mat-mul (default 128)\n"
                 "  --runs    timed replays per measurement, median reported (default 5)\n"
                 "  --cpu-time  time in process CPU seconds (steadier on a shared machine; sums worker threads)\n");
}

int cli_bench_ops(int argc, char **argv)
{
    bench_options opt = {.batch = 128, .runs = 5, .min_seconds = 0.05};
    const char *shapes = NULL;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--shapes") == 0 && value) shapes = argv[++i];
        else if (strcmp(argv[i], "--types") == 0 && value) opt.types = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && value) opt.batch = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && value) opt.runs = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--cpu-time") == 0) bench_clock = CLOCK_PROCESS_CPUTIME_ID;
        else {
            usage(strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 ? stdout : stderr);
            return strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (opt.batch <= OPS_MATVEC_MAX_N || opt.runs == 0) {
        fprintf(stderr, "vkllm bench-ops: --batch must exceed %u (the mat-mul) and --runs be positive\n",
                OPS_MATVEC_MAX_N);
        return 2;
    }
    vkr_device *dev = NULL;
    ops_context *ops = NULL;
    vkllm_status st = vkr_device_create(&dev);
    if (st == VKLLM_OK) st = ops_create(dev, &ops);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm bench-ops: %s\n", vkllm_last_error());
        vkr_device_destroy(dev);
        return 1;
    }
    bool cpu = ops->caps->type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    if (!parse_shapes(shapes ? shapes : cpu ? "small" : "large", &opt)) {
        fprintf(stderr, "vkllm bench-ops: bad --shapes '%s' (want small, large or RxC,RxC...)\n", shapes);
        ops_free(ops);
        vkr_device_destroy(dev);
        return 2;
    }
    double copy_gbps = 0;
    st = copy_bandwidth(ops, &opt, &copy_gbps);
    if (st == VKLLM_OK) {
        printf("device: %s (%s), tuning row %s\n", ops->caps->name, ops->caps->driver_info, ops->tuning->name);
        printf("copy_u4 (64 MiB, bytes copied per second): %.2f GB/s\n\n", copy_gbps);
        printf("| type  | path  | rows x cols    | n=1 us    | GB/s   | %%copy  | n=8 us    | GB/s   | n=%-4u ms | GFLOP/s |\n",
               opt.batch);
        printf("| ----- | ----- | -------------- | --------- | ------ | ------ | --------- | ------ | --------- | ------- |\n");
    }
    for (uint32_t s = 0; s < opt.n_shapes && st == VKLLM_OK; s++)
        for (size_t t = 0; t < sizeof bench_types / sizeof *bench_types && st == VKLLM_OK; t++)
            if (type_selected(&opt, bench_types[t]))
                st = bench_one(ops, &opt, bench_types[t], opt.shapes[s][0], opt.shapes[s][1], copy_gbps);
    if (st != VKLLM_OK) fprintf(stderr, "vkllm bench-ops: %s\n", vkllm_last_error());
    ops_free(ops);
    vkr_device_destroy(dev);
    return st == VKLLM_OK ? 0 : 1;
}
