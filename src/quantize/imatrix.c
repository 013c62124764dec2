/* vkllm imatrix (see imatrix.h). */
#include "imatrix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "calib_pass.h"
#include "runtime/error.h"
#include "vkllm.h"

/* One accumulator per captured input; the weights reading it share its sums (q/k/v, gate/up). */
typedef struct accumulator {
    uint32_t layer;
    capture_kind kind;
    uint32_t width;
    float *sums;
    double count;
    const char *names[3]; /* the GGUF weights reading it, NULL-terminated */
} accumulator;

typedef struct imatrix_run {
    const imatrix_options *o;
    const gguf_file *file;
    const vkllm_context *ctx; /* set by the first chunk */
    accumulator *acc;
    uint32_t n_acc;
    char (*names)[96]; /* storage of the names */
    uint32_t n_names;
} imatrix_run;

/* The weights present in the file that read each captured input, under their GGUF names. */
static vkllm_status plan(imatrix_run *r, const gguf_file *f)
{
    const model_config *c = &r->ctx->model->cfg;
    uint32_t max_acc = c->n_layer * CAPTURE_KINDS + 1;
    r->acc = calloc(max_acc, sizeof *r->acc);
    r->names = calloc(max_acc * 3, sizeof *r->names);
    if (!r->acc || !r->names) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
    static const char *const readers[CAPTURE_KINDS][3] = {
        {"attn_q", "attn_k", "attn_v"}, {"attn_output", NULL, NULL}, {"ffn_gate", "ffn_up", NULL},
        {"ffn_down", NULL, NULL}};
    for (uint32_t l = 0; l <= c->n_layer; l++) {
        for (int k = 0; k < CAPTURE_KINDS; k++) {
            if (l == c->n_layer && k > 0) break;
            accumulator *a = &r->acc[r->n_acc];
            *a = (accumulator){.layer = l, .kind = l == c->n_layer ? CAPTURE_OUTPUT : (capture_kind)k};
            a->width = context_capture_width(r->ctx, a->kind);
            uint32_t n = 0;
            for (int w = 0; w < 3; w++) {
                char *name = r->names[r->n_names];
                if (l == c->n_layer) {
                    if (w > 0 || !r->o->process_output) break;
                    snprintf(name, 96, "output.weight"); /* tied embeddings: none (llama-imatrix names none) */
                } else {
                    if (!readers[k][w]) break;
                    snprintf(name, 96, "blk.%u.%s.weight", l, readers[k][w]);
                }
                const gguf_tensor_info *t = gguf_find_tensor(f, name);
                if (!t || t->ne[0] != a->width) continue;
                a->names[n++] = name;
                r->n_names++;
            }
            if (l < c->n_layer && k == 0 && n == 0) { /* a stacked Q/K/V */
                char *name = r->names[r->n_names];
                snprintf(name, 96, "blk.%u.attn_qkv.weight", l);
                if (gguf_find_tensor(f, name)) a->names[n++] = name, r->n_names++;
            }
            if (n == 0) continue;
            if (!(a->sums = calloc(a->width, sizeof *a->sums)))
                return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
            r->n_acc++;
        }
    }
    return VKLLM_OK;
}

/* llama-imatrix's collect_imatrix: per token row, per column, sum += x * x (float). */
static void accumulate(imatrix_run *r, uint32_t rows)
{
    for (uint32_t i = 0; i < r->n_acc; i++) {
        accumulator *a = &r->acc[i];
        uint32_t width = 0;
        const float *x = context_capture_rows(r->ctx, a->layer, a->kind, &width);
        for (uint32_t row = 0; row < rows; row++, x += width)
            for (uint32_t j = 0; j < width; j++) a->sums[j] += x[j] * x[j];
        a->count += rows;
    }
}

/* Per chunk: the accumulators are planned at the first one (the context knows the widths). */
static vkllm_status on_chunk(void *user, const vkllm_context *ctx, const vkllm_context *reference, uint32_t rows)
{
    (void)reference; /* none asked for */
    imatrix_run *r = user;
    if (!r->ctx) {
        r->ctx = ctx;
        VKLLM_TRY(plan(r, r->file));
    }
    accumulate(r, rows);
    return VKLLM_OK;
}

static vkllm_status build(imatrix_run *r, uint32_t n_chunks, imatrix_data **out)
{
    imatrix_data *d = calloc(1, sizeof *d);
    if (!d) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
    *out = d;
    d->chunk_count = n_chunks;
    d->chunk_size = r->o->n_ctx;
    d->dataset = malloc(strlen(r->o->text_path) + 1);
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n_acc; i++)
        for (int w = 0; w < 3 && r->acc[i].names[w]; w++) n++;
    d->entries = calloc(n ? n : 1, sizeof *d->entries);
    if (!d->dataset || !d->entries) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
    strcpy(d->dataset, r->o->text_path);
    for (uint32_t i = 0; i < r->n_acc; i++) {
        const accumulator *a = &r->acc[i];
        for (int w = 0; w < 3 && a->names[w]; w++) {
            imatrix_entry *e = &d->entries[d->n_entries++];
            e->n = a->width;
            e->n_mat = 1;
            e->name = malloc(strlen(a->names[w]) + 1);
            e->sums = malloc(a->width * sizeof *e->sums);
            e->counts = malloc(sizeof *e->counts);
            e->values = malloc(a->width * sizeof *e->values);
            if (!e->name || !e->sums || !e->counts || !e->values)
                return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
            strcpy(e->name, a->names[w]);
            memcpy(e->sums, a->sums, a->width * sizeof *e->sums);
            e->counts[0] = (float)a->count;
            for (uint32_t j = 0; j < a->width; j++) e->values[j] = a->count > 0 ? e->sums[j] / e->counts[0] : 1;
        }
    }
    return VKLLM_OK;
}

vkllm_status imatrix_compute(const imatrix_options *o, vkllm_progress_fn progress, void *progress_ctx,
                             imatrix_data **out)
{
    *out = NULL;
    imatrix_run r = {.o = o};
    gguf_file *f = NULL;
    uint32_t n_chunks = 0;
    /* llama-imatrix asks for at least two chunks' worth of tokens. */
    calib_pass_options po = {.model = o->model, .text_path = o->text_path, .device = o->device, .n_ctx = o->n_ctx,
                             .chunks = o->chunks, .min_chunks = 2, .want_output = o->process_output};
    vkllm_status st = gguf_open(o->model, &f);
    r.file = f;
    if (st == VKLLM_OK) st = calib_pass_run(&po, on_chunk, &r, progress, progress_ctx, &n_chunks);
    if (st == VKLLM_OK) st = build(&r, n_chunks, out);
    if (st != VKLLM_OK) {
        imatrix_free(*out);
        *out = NULL;
    }
    for (uint32_t i = 0; r.acc && i < r.n_acc; i++) free(r.acc[i].sums);
    free(r.acc);
    free(r.names);
    gguf_close(f);
    return st;
}
