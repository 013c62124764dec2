/* vkllm quantize: one streamed output tensor per input tensor, converted a row at a time. */
#include "quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    float *row;         /* ne[0] floats, shared */
    uint8_t *packed;    /* one output row, shared */
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
static vkllm_status produce_calibrated(tensor_job *job, gguf_sink *sink)
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
    if (st == VKLLM_OK) st = quant_calib_quantize(job->calib, job->name, job->type, w, rows, n, job->importance, out);
    if (st == VKLLM_OK) st = gguf_sink_write(sink, out, rows * out_row);
    if (st == VKLLM_OK) report(job, rows * out_row);
    free(w);
    free(out);
    return st;
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
    const uint64_t n = in->ne[0], rows = rows_of(in);
    const uint64_t in_row = quant_row_size(in->type, n), out_row = quant_row_size(job->type, n);
    for (uint64_t r = 0; r < rows; r++) {
        const uint8_t *src = (const uint8_t *)in->data + r * in_row;
        VKLLM_TRY(quant_dequantize_row(in->type, src, job->row, n));
        const void *bytes = job->row;
        if (job->type != QUANT_F32) {
            VKLLM_TRY(quant_quantize_row_weighted(job->type, job->row, job->packed, n, job->importance));
            bytes = job->packed;
        }
        VKLLM_TRY(gguf_sink_write(sink, bytes, out_row));
        report(job, out_row);
    }
    return VKLLM_OK;
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
                              tensor_job *jobs, uint64_t *widest, uint64_t *total)
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
            if (t->ne[0] > *widest) *widest = t->ne[0];
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

static vkllm_status write_output(const gguf_file *in, const quant_recipe *recipe, const imatrix_data *imatrix,
                                 const char *imatrix_path, quant_calib *calib, tensor_job *jobs, const char *out_path,
                                 vkllm_progress_fn progress, void *progress_ctx)
{
    uint64_t widest = 0, total = 0, done = 0;
    VKLLM_TRY(plan_jobs(in, recipe, imatrix, jobs, &widest, &total));
    gguf_writer *w = NULL;
    VKLLM_TRY(gguf_writer_create(&w));
    float *row = malloc((widest ? widest : 1) * sizeof *row);
    uint8_t *packed = malloc((widest ? widest : 1) * sizeof *row); /* no type is wider than F32 */
    vkllm_status status = row && packed ? copy_metadata(in, recipe, imatrix, imatrix_path, w)
                                        : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "quantize: no memory for a row");
    for (uint64_t i = 0; status == VKLLM_OK && i < in->n_tensors; i++) {
        tensor_job *job = &jobs[i];
        job->row = row;
        job->packed = packed;
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
    free(row);
    free(packed);
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
    free(jobs);
    gguf_close(in);
    if (status != VKLLM_OK)
        return vkllm_fail_context(status, "quantize %s -> %s (%s)", in_path, out_path, recipe->name);
    return VKLLM_OK;
}
