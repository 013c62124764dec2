/* vkllm quantize: one streamed output tensor per input tensor, converted a row at a time. */
#include "quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "quant/parallel.h"
#include "runtime/error.h"

static vkllm_status arch_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t fallback,
                             uint32_t *out)
{
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!gguf_find_kv(f, key)) {
        if (fallback) {
            *out = fallback;
            return VKLLM_OK;
        }
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: metadata key '%s' is missing", f->path, key);
    }
    return gguf_get_u32(f, key, out);
}

vkllm_status quantize_model_shape(const gguf_file *f, quant_model_shape *m)
{
    memset(m, 0, sizeof *m);
    gguf_str arch;
    VKLLM_TRY(gguf_get_str(f, "general.architecture", &arch));
    if (arch.len >= sizeof m->arch)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: general.architecture is %llu bytes long", f->path,
                          (unsigned long long)arch.len);
    memcpy(m->arch, arch.data, (size_t)arch.len);
    VKLLM_TRY(arch_u32(f, m->arch, "block_count", 0, &m->n_layer));
    VKLLM_TRY(arch_u32(f, m->arch, "attention.head_count", 0, &m->n_head));
    VKLLM_TRY(arch_u32(f, m->arch, "attention.head_count_kv", m->n_head, &m->n_head_kv));
    uint32_t n_expert = 0;
    VKLLM_TRY(arch_u32(f, m->arch, "expert_count", 1, &n_expert));
    if (n_expert > 1)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: mixture-of-experts models (%u experts) are not supported",
                          f->path, n_expert);
    m->tied_embeddings = true;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_str name = f->tensors[i].name;
        if (gguf_str_eq(name, "output.weight")) m->tied_embeddings = false;
        static const char *const v_like[] = {"attn_v.weight", "attn_qkv.weight", "attn_kv_b.weight"};
        for (size_t k = 0; k < 3; k++) {
            size_t n = strlen(v_like[k]);
            if (name.len >= n && memcmp(name.data + name.len - n, v_like[k], n) == 0) m->n_attn_v++;
        }
    }
    return VKLLM_OK;
}

typedef struct tensor_job {
    const gguf_tensor_info *in;
    char name[256];
    quant_type type;
    const float *importance; /* ne[0] floats from the imatrix, or NULL */
    quant_calib *calib;      /* quantized whole by the calibrated method, or NULL */
    uint8_t *stored;         /* its bytes, quantized ahead of the writer (sequential calibration), or NULL */
    uint64_t *done;
    uint64_t total;
    vkllm_progress_fn progress;
    void *progress_ctx;
} tensor_job;

static uint64_t rows_of(const gguf_tensor_info *t)
{
    uint64_t rows = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) rows *= t->ne[d];
    return rows;
}

static void report(tensor_job *job, uint64_t bytes)
{
    *job->done += bytes;
    if (job->progress) job->progress(job->progress_ctx, job->name, *job->done, job->total);
}

/* The calibrated method quantizes a weight whole (GPTQ's updates cross rows' columns, not rows: the whole
 * matrix at once shares the Hessian's factor). */
static vkllm_status quantize_calibrated(tensor_job *job, quant_calib *calib, uint8_t **out_bytes)
{
    const gguf_tensor_info *in = job->in;
    const uint64_t n = in->ne[0], rows = rows_of(in);
    const uint64_t in_row = quant_row_size(in->type, n), out_row = quant_row_size(job->type, n);
    float *w = malloc(rows * n * sizeof *w);
    uint8_t *out = malloc(rows * out_row);
    vkllm_status st = w && out ? VKLLM_OK
                               : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "quantize: no memory for '%s'", job->name);
    for (uint64_t r = 0; r < rows && st == VKLLM_OK; r++)
        st = quant_dequantize_row(in->type, (const uint8_t *)in->data + r * in_row, w + r * n, n);
    if (st == VKLLM_OK) st = quant_calib_quantize(calib, job->name, job->type, w, rows, n, job->importance, out);
    free(w);
    if (st != VKLLM_OK) {
        free(out);
        return st;
    }
    *out_bytes = out;
    return VKLLM_OK;
}

static vkllm_status produce_calibrated(tensor_job *job, gguf_sink *sink)
{
    const uint64_t size = quant_row_size(job->type, job->in->ne[0]) * rows_of(job->in);
    if (job->stored) { /* quantized by a sequential stage already */
        VKLLM_TRY(gguf_sink_write(sink, job->stored, size));
        report(job, size);
        return VKLLM_OK;
    }
    uint8_t *out = NULL;
    VKLLM_TRY(quantize_calibrated(job, job->calib, &out));
    vkllm_status st = gguf_sink_write(sink, out, size);
    if (st == VKLLM_OK) report(job, size);
    free(out);
    return st;
}

/* A batch of rows converted on threads, each row on its own (the same bytes for any count of threads): thread t
 * takes rows [nr t / n, nr (t + 1) / n) of the batch. */
typedef struct convert_batch {
    const tensor_job *job;
    uint64_t r0, nr;
    uint8_t *out;  /* nr rows of the output type */
    float *rows;   /* a row of floats per thread */
    vkllm_status st[QUANT_MAX_THREADS];
} convert_batch;

static void convert_rows(void *p, uint32_t thread, uint32_t n_threads)
{
    convert_batch *c = p;
    const tensor_job *job = c->job;
    const uint64_t n = job->in->ne[0];
    const uint64_t in_row = quant_row_size(job->in->type, n), out_row = quant_row_size(job->type, n);
    float *row = c->rows + (uint64_t)thread * n;
    vkllm_status st = VKLLM_OK;
    for (uint64_t r = c->nr * thread / n_threads; r < c->nr * (thread + 1) / n_threads && st == VKLLM_OK; r++) {
        st = quant_dequantize_row(job->in->type, (const uint8_t *)job->in->data + (c->r0 + r) * in_row, row, n);
        if (st != VKLLM_OK) break;
        if (job->type == QUANT_F32) memcpy(c->out + r * out_row, row, out_row);
        else st = quant_quantize_row_weighted(job->type, row, c->out + r * out_row, n, job->importance);
    }
    c->st[thread] = st;
}

static vkllm_status produce_tensor(void *ctx, gguf_sink *sink)
{
    tensor_job *job = ctx;
    const gguf_tensor_info *in = job->in;
    if (job->calib) return produce_calibrated(job, sink);
    if (job->type == in->type) { /* same type: the bytes as they are */
        VKLLM_TRY(gguf_sink_write(sink, in->data, in->size));
        report(job, in->size);
        return VKLLM_OK;
    }
    const uint64_t n = in->ne[0], rows = rows_of(in), out_row = quant_row_size(job->type, n);
    const uint32_t threads = rows * n >= (1u << 16) ? quant_threads() : 1;
    /* batches of at least 16 rows a thread, within 16 MiB of output */
    uint64_t batch = (16u << 20) / (out_row ? out_row : 1);
    if (batch < 16ull * threads) batch = 16ull * threads;
    if (batch > rows) batch = rows;
    convert_batch c = {.job = job, .out = malloc(batch * out_row), .rows = malloc((uint64_t)threads * n * sizeof(float))};
    vkllm_status st = c.out && c.rows ? VKLLM_OK
                                      : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "quantize: no memory for '%s'",
                                                   job->name);
    for (c.r0 = 0; c.r0 < rows && st == VKLLM_OK; c.r0 += c.nr) {
        c.nr = rows - c.r0 < batch ? rows - c.r0 : batch;
        quant_parallel_run(convert_rows, &c, threads);
        for (uint32_t t = 0; t < threads && st == VKLLM_OK; t++)
            if (c.st[t] != VKLLM_OK) { /* again here, for the message (messages are per thread) */
                convert_rows(&c, 0, 1);
                st = c.st[0] != VKLLM_OK ? c.st[0] : c.st[t];
            }
        if (st == VKLLM_OK) st = gguf_sink_write(sink, c.out, c.nr * out_row);
        if (st == VKLLM_OK) report(job, c.nr * out_row);
    }
    free(c.out), free(c.rows);
    return st;
}

/* llama.cpp's check (llama_model_quantize_impl): an entry must hold one value per column (times the experts);
 * token_embd is looked up by a get_rows, never a matmul, so a stray entry for it is ignored. */
static vkllm_status find_importance(const gguf_file *in, const imatrix_data *imatrix, tensor_job *job,
                                    uint64_t *matched)
{
    const imatrix_entry *e = imatrix_find(imatrix, job->name);
    if (!e) return VKLLM_OK; /* llama-quantize: "did not find weights", quantized without */
    const uint64_t want = job->in->ne[0] * (job->in->n_dims > 2 ? job->in->ne[2] : 1);
    if (e->n != want) {
        if (strcmp(job->name, "token_embd.weight") == 0) return VKLLM_OK;
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "%s: the importance matrix has %llu values for tensor '%s', which has %llu columns: "
                          "the imatrix was made for another model",
                          in->path, (unsigned long long)e->n, job->name, (unsigned long long)want);
    }
    job->importance = e->values;
    (*matched)++;
    return VKLLM_OK;
}

/* Chooses every tensor's type and checks up front that each conversion is possible. */
static vkllm_status plan_jobs(const gguf_file *in, const quant_recipe *recipe, const imatrix_data *imatrix,
                              tensor_job *jobs, uint64_t *total)
{
    uint64_t matched = 0;
    quant_model_shape shape;
    VKLLM_TRY(quantize_model_shape(in, &shape));
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor_info *t = &in->tensors[i];
        tensor_job *job = &jobs[i];
        job->in = t;
        snprintf(job->name, sizeof job->name, "%.*s", (int)(t->name.len < 255 ? t->name.len : 255), t->name.data);
        if (t->name.len != strlen(job->name))
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: tensor name '%s...' is too long", in->path, job->name);
        job->type = quant_recipe_tensor_type(recipe, &shape, job->name, t->n_dims, t->ne, (quant_type)t->type);
        if (job->type != t->type) {
            const quant_traits *traits = quant_get_traits(t->type);
            if (!traits || !traits->supported)
                return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: tensor '%s' has type %s, which vkllm cannot decode",
                                  in->path, job->name, traits ? traits->name : "unknown");
            if (imatrix) VKLLM_TRY(find_importance(in, imatrix, job, &matched));
        }
        *total += job->type == t->type ? t->size : quant_row_size(job->type, t->ne[0]) * rows_of(t);
    }
    if (imatrix && matched == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "%s: the importance matrix has no entry for any tensor quantized here (its %llu entries "
                          "name e.g. '%s'): it was made for another model",
                          in->path, (unsigned long long)imatrix->n_entries,
                          imatrix->n_entries ? imatrix->entries[0].name : "");
    return VKLLM_OK;
}

/* llama-quantize's kv overrides for an imatrix (strings cut at 127 bytes, as its override buffers). */
static vkllm_status imatrix_metadata(const imatrix_data *imatrix, const char *path, gguf_writer *w)
{
    char text[128];
    snprintf(text, sizeof text, "%s", path ? path : "");
    VKLLM_TRY(gguf_writer_set_str(w, "quantize.imatrix.file", text));
    if (imatrix->dataset && imatrix->dataset[0]) {
        snprintf(text, sizeof text, "%s", imatrix->dataset);
        VKLLM_TRY(gguf_writer_set_str(w, "quantize.imatrix.dataset", text));
    }
    VKLLM_TRY(gguf_writer_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)imatrix->n_entries));
    if (imatrix->chunk_count > 0)
        VKLLM_TRY(gguf_writer_set_u32(w, "quantize.imatrix.chunks_count", imatrix->chunk_count));
    return VKLLM_OK;
}

static vkllm_status copy_metadata(const gguf_file *in, const quant_recipe *recipe, const imatrix_data *imatrix,
                                  const char *imatrix_path, gguf_writer *w)
{
    for (uint64_t i = 0; i < in->n_kv; i++) VKLLM_TRY(gguf_writer_copy_kv(w, &in->kv[i]));
    if (imatrix) VKLLM_TRY(imatrix_metadata(imatrix, imatrix_path, w));
    VKLLM_TRY(gguf_writer_set_u32(w, "general.quantization_version", 2));
    return gguf_writer_set_u32(w, "general.file_type", recipe->ftype);
}

/* A tensor of a layer at or after keep (blk.N. with N >= keep). */
static bool beyond_layers(const char *name, uint32_t keep)
{
    unsigned l = 0;
    int used = 0;
    return sscanf(name, "blk.%u.%n", &l, &used) == 1 && used > 0 && l >= keep;
}

/* The model as quantized so far, cut after `keep` layers, for a sequential stage's calibration pass: the weights
 * a stage quantized already in their bytes, the calibrated weights not reached yet as the input has them, every
 * other tensor as the output will have it (round to nearest, or unchanged). */
static vkllm_status write_stage_model(const gguf_file *in, quant_calib *calib, tensor_job *jobs,
                                      const char *block_count_key, uint32_t keep, const char *path)
{
    gguf_writer *w = NULL;
    VKLLM_TRY(gguf_writer_create(&w));
    vkllm_status st = VKLLM_OK;
    for (uint64_t i = 0; st == VKLLM_OK && i < in->n_kv; i++) st = gguf_writer_copy_kv(w, &in->kv[i]);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, block_count_key, keep);
    for (uint64_t i = 0; st == VKLLM_OK && i < in->n_tensors; i++) {
        tensor_job *job = &jobs[i];
        const gguf_tensor_info *t = job->in;
        if (beyond_layers(job->name, keep)) continue;
        const uint64_t size = quant_row_size(job->type, t->ne[0]) * rows_of(t);
        if (job->stored)
            st = gguf_writer_add_tensor(w, job->name, job->type, t->n_dims, t->ne, job->stored, size);
        else if (quant_calib_applies(calib, job->name, job->type))
            st = gguf_writer_add_tensor(w, job->name, t->type, t->n_dims, t->ne, t->data, t->size);
        else
            st = gguf_writer_add_tensor_stream(w, job->name, job->type, t->n_dims, t->ne,
                                               job->type == t->type ? t->size : size, produce_tensor, job);
    }
    if (st == VKLLM_OK) st = gguf_writer_write(w, path);
    gguf_writer_free(w);
    return st;
}

/* Sequential calibration: stage by stage in the forward pass's order, the weights each stage measures quantized
 * from statistics of the model as quantized before them; their bytes are kept for the writer. */
static bool in_stage(quant_calib *calib, const tensor_job *job, uint32_t stage)
{
    return quant_calib_applies(calib, job->name, job->type) && quant_calib_stage_of(calib, job->name) == stage;
}

static vkllm_status run_sequential(const gguf_file *in, quant_calib *calib, tensor_job *jobs, const char *out_path,
                                   vkllm_progress_fn progress, void *progress_ctx)
{
    quant_model_shape shape;
    VKLLM_TRY(quantize_model_shape(in, &shape));
    char key[96];
    snprintf(key, sizeof key, "%s.block_count", shape.arch);
    const size_t len = strlen(out_path) + 16;
    char *scratch = malloc(len);
    if (!scratch) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "quantize: a path");
    snprintf(scratch, len, "%s.stage.gguf", out_path);
    vkllm_status st = VKLLM_OK;
    const uint32_t n_stages = quant_calib_stage_count(calib);
    for (uint32_t s = 0; s < n_stages && st == VKLLM_OK; s++) {
        bool any = false;
        for (uint64_t i = 0; i < in->n_tensors; i++) any |= in_stage(calib, &jobs[i], s);
        if (any) st = write_stage_model(in, calib, jobs, key, quant_calib_stage_layers(calib, s), scratch);
        if (any && st == VKLLM_OK) st = quant_calib_begin_stage(calib, s, scratch);
        for (uint64_t i = 0; any && st == VKLLM_OK && i < in->n_tensors; i++)
            if (in_stage(calib, &jobs[i], s)) st = quantize_calibrated(&jobs[i], calib, &jobs[i].stored);
        if (progress) progress(progress_ctx, "calibration stage", s + 1, n_stages);
    }
    remove(scratch);
    free(scratch);
    return st;
}

static vkllm_status write_output(const gguf_file *in, const quant_recipe *recipe, const imatrix_data *imatrix,
                                 const char *imatrix_path, quant_calib *calib, tensor_job *jobs, const char *out_path,
                                 vkllm_progress_fn progress, void *progress_ctx)
{
    uint64_t total = 0, done = 0;
    VKLLM_TRY(plan_jobs(in, recipe, imatrix, jobs, &total));
    gguf_writer *w = NULL;
    VKLLM_TRY(gguf_writer_create(&w));
    vkllm_status status = copy_metadata(in, recipe, imatrix, imatrix_path, w);
    uint64_t stage_done = 0; /* the stage models' bytes, reported nowhere */
    for (uint64_t i = 0; i < in->n_tensors; i++) jobs[i].done = &stage_done;
    if (status == VKLLM_OK && quant_calib_is_sequential(calib))
        status = run_sequential(in, calib, jobs, out_path, progress, progress_ctx);
    for (uint64_t i = 0; status == VKLLM_OK && i < in->n_tensors; i++) {
        tensor_job *job = &jobs[i];
        job->done = &done;
        job->total = total;
        job->progress = progress;
        job->progress_ctx = progress_ctx;
        if (quant_calib_applies(calib, job->name, job->type)) job->calib = calib;
        uint64_t size = job->type == job->in->type ? job->in->size
                                                   : quant_row_size(job->type, job->in->ne[0]) * rows_of(job->in);
        status = gguf_writer_add_tensor_stream(w, job->name, job->type, job->in->n_dims, job->in->ne, size,
                                               produce_tensor, job);
    }
    if (status == VKLLM_OK) status = gguf_writer_write(w, out_path);
    gguf_writer_free(w);
    return status;
}

vkllm_status quantize_file(const char *in_path, const char *out_path, const quant_recipe *recipe,
                           vkllm_progress_fn progress, void *progress_ctx)
{
    return quantize_file_imatrix(in_path, out_path, recipe, NULL, NULL, progress, progress_ctx);
}

vkllm_status quantize_file_imatrix(const char *in_path, const char *out_path, const quant_recipe *recipe,
                                   const imatrix_data *imatrix, const char *imatrix_path,
                                   vkllm_progress_fn progress, void *progress_ctx)
{
    quantize_options o = {.imatrix = imatrix, .imatrix_path = imatrix_path, .progress = progress,
                          .progress_ctx = progress_ctx};
    return quantize_file_ex(in_path, out_path, recipe, &o);
}

vkllm_status quantize_file_ex(const char *in_path, const char *out_path, const quant_recipe *recipe,
                              const quantize_options *o)
{
    const imatrix_data *imatrix = o->imatrix;
    quant_recipe with = *recipe;
    with.has_imatrix = imatrix != NULL;
    recipe = &with;
    /* Writing over the mapped input would pull the data out from under the reader. */
    struct stat a, b;
    if (stat(in_path, &a) == 0 && stat(out_path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "quantize: %s is both input and output", in_path);
    gguf_file *in = NULL;
    VKLLM_TRY(gguf_open(in_path, &in));
    tensor_job *jobs = calloc(in->n_tensors ? in->n_tensors : 1, sizeof *jobs);
    quant_calib *calib = NULL;
    vkllm_status status = jobs ? VKLLM_OK
                               : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "quantize: no memory for %llu tensors",
                                            (unsigned long long)in->n_tensors);
    if (status == VKLLM_OK && o->calib) {
        quant_calib_options co = *o->calib;
        co.model = in_path;
        quant_model_shape shape;
        status = quantize_model_shape(in, &shape);
        if (status == VKLLM_OK) status = quant_calib_create(&co, in, recipe, &shape, &calib);
    }
    if (status == VKLLM_OK)
        status = write_output(in, recipe, imatrix, o->imatrix_path, calib, jobs, out_path, o->progress,
                              o->progress_ctx);
    quant_calib_free(calib);
    for (uint64_t i = 0; jobs && i < in->n_tensors; i++) free(jobs[i].stored);
    free(jobs);
    gguf_close(in);
    if (status != VKLLM_OK)
        return vkllm_fail_context(status, "quantize %s -> %s (%s)", in_path, out_path, recipe->name);
    return VKLLM_OK;
}
