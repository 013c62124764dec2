/* vkllm imatrix (see imatrix.h). */
#include "imatrix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/context.h"
#include "runtime/error.h"
#include "vkllm.h"

static vkllm_status read_text(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return vkllm_fail(VKLLM_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
    }
    bool failed = ferror(f);
    fclose(f);
    if (!buf) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "%s: reading", path);
    if (failed) {
        free(buf);
        return vkllm_fail(VKLLM_ERROR_IO, "%s: read error", path);
    }
    *text = buf;
    *len = n;
    return VKLLM_OK;
}

static vkllm_status tokenize_all(vkllm_model *m, const char *text, size_t len, int add_special, vkllm_token **out,
                                 size_t *n)
{
    *out = NULL;
    vkllm_status st = vkllm_tokenize(m, text, len, add_special, 0, NULL, 0, n);
    if (st != VKLLM_OK && st != VKLLM_ERROR_BUFFER_TOO_SMALL) return st;
    if (!(*out = malloc((*n ? *n : 1) * sizeof **out)))
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "%zu tokens", *n);
    return vkllm_tokenize(m, text, len, add_special, 0, *out, *n, n);
}

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
    vkllm_model *model;
    vkllm_context *ctx;
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
        {"attn_q", "attn_k", "attn_v"}, {"attn_output", NULL, NULL}, {"ffn_gate", "ffn_up", NULL}, {"ffn_down", NULL, NULL}};
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

static vkllm_status evaluate(imatrix_run *r, const vkllm_token *chunks, uint32_t n_chunks, vkllm_progress_fn progress,
                             void *progress_ctx)
{
    const uint32_t n_ctx = r->o->n_ctx, nb = n_ctx;
    int32_t *pos = malloc(nb * sizeof *pos), *seq = malloc(nb * sizeof *seq);
    int8_t *want = malloc(nb);
    vkllm_status st = pos && seq && want ? VKLLM_OK : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "batch of %u", nb);
    for (uint32_t c = 0; c < n_chunks && st == VKLLM_OK; c++) {
        st = vkllm_seq_truncate(r->ctx, 0, 0);
        for (uint32_t k = 0; k < n_ctx; k++) {
            pos[k] = (int32_t)k, seq[k] = 0;
            want[k] = r->o->process_output; /* the LM head's input of every row, or of none */
        }
        vkllm_batch b = {n_ctx, chunks + (size_t)c * n_ctx, pos, seq, want};
        if (st == VKLLM_OK) st = vkllm_decode(r->ctx, &b);
        if (st == VKLLM_OK) accumulate(r, n_ctx);
        if (progress) progress(progress_ctx, "chunk", c + 1, n_chunks);
    }
    free(pos), free(seq), free(want);
    return st;
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
    char *text = NULL;
    size_t len = 0, n_tokens = 0, n_plain = 0;
    vkllm_token *tokens = NULL, *plain = NULL;
    gguf_file *f = NULL;
    vkllm_status st = read_text(o->text_path, &text, &len);
    vkllm_model_params mp = vkllm_model_default_params();
    mp.device = o->device;
    if (st == VKLLM_OK) st = vkllm_model_load_params(o->model, &mp, &r.model);
    /* BOS "as the vocabulary asks": the tokenizer adds it with add_special when the vocabulary says so. */
    if (st == VKLLM_OK) st = tokenize_all(r.model, text, len, 1, &tokens, &n_tokens);
    if (st == VKLLM_OK) st = tokenize_all(r.model, text, len, 0, &plain, &n_plain);
    if (st == VKLLM_OK && n_tokens < 2ull * o->n_ctx)
        st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                        "%s: the calibration text is too short: %zu tokens, at least %u (2 chunks of -c %u) needed",
                        o->text_path, n_tokens, 2 * o->n_ctx, o->n_ctx);
    size_t max_chunks = n_tokens / (o->n_ctx ? o->n_ctx : 1);
    uint32_t n_chunks = (uint32_t)(o->chunks >= 0 && (size_t)o->chunks < max_chunks ? (size_t)o->chunks : max_chunks);
    if (st == VKLLM_OK && n_chunks == 0)
        st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "imatrix: --chunks 0 leaves nothing to measure");
    if (st == VKLLM_OK && n_tokens > n_plain) /* llama-imatrix puts BOS in front of every chunk */
        for (uint32_t c = 0; c < n_chunks; c++) tokens[(size_t)c * o->n_ctx] = vkllm_token_bos(r.model);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_batch = o->n_ctx;
    cp.n_outputs_max = o->n_ctx;
    if (st == VKLLM_OK) st = vkllm_context_create(r.model, &cp, &r.ctx);
    if (st == VKLLM_OK) st = context_capture_enable(r.ctx);
    if (st == VKLLM_OK) st = gguf_open(o->model, &f);
    if (st == VKLLM_OK) st = plan(&r, f);
    if (st == VKLLM_OK) st = evaluate(&r, tokens, n_chunks, progress, progress_ctx);
    if (st == VKLLM_OK) st = build(&r, n_chunks, out);
    if (st != VKLLM_OK) {
        imatrix_free(*out);
        *out = NULL;
    }
    for (uint32_t i = 0; r.acc && i < r.n_acc; i++) free(r.acc[i].sums);
    free(r.acc);
    free(r.names);
    gguf_close(f);
    vkllm_context_free(r.ctx);
    vkllm_model_free(r.model);
    free(text), free(tokens), free(plain);
    return st;
}
