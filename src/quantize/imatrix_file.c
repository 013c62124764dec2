/* Importance-matrix files: llama.cpp's GGUF layout (common/imatrix-loader.cpp reads it, tools/imatrix
 * writes it) and its legacy .dat layout, read into one in-memory form. */
#include "imatrix_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "quant/quant.h"

static char *copy_str(const char *data, uint64_t len)
{
    char *s = malloc((size_t)len + 1);
    if (s) {
        memcpy(s, data, (size_t)len);
        s[len] = '\0';
    }
    return s;
}

void imatrix_free(imatrix_data *d)
{
    if (!d) return;
    for (uint64_t i = 0; i < d->n_entries; i++) {
        free(d->entries[i].name);
        free(d->entries[i].sums);
        free(d->entries[i].counts);
        free(d->entries[i].values);
    }
    free(d->entries);
    free(d->dataset);
    free(d);
}

const imatrix_entry *imatrix_find(const imatrix_data *d, const char *tensor_name)
{
    for (uint64_t i = 0; d && i < d->n_entries; i++)
        if (strcmp(d->entries[i].name, tensor_name) == 0) return &d->entries[i];
    return NULL;
}

/* llama-quantize's load_imatrix: the GGUF format divides by each matrix's count (rounded to an integer,
 * as the loader's lround), 1 where it is zero; the legacy one divides by ncall when positive. */
static vkllm_status derive_values(const imatrix_data *d, imatrix_entry *e)
{
    e->values = malloc(e->n * sizeof *e->values);
    if (!e->values) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory for '%s'", e->name);
    const uint64_t per_mat = e->n / e->n_mat;
    for (uint32_t m = 0; m < e->n_mat; m++) {
        const float count = (float)lround(e->counts[m]);
        for (uint64_t i = m * per_mat; i < (m + 1) * per_mat; i++) {
            if (d->legacy) e->values[i] = count > 0 ? e->sums[i] / count : e->sums[i];
            else e->values[i] = count > 0.0f ? e->sums[i] / count : 1;
            if (!isfinite(e->values[i]))
                return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "imatrix: entry '%s' holds a non-finite value", e->name);
        }
    }
    return VKLLM_OK;
}

static vkllm_status grow(imatrix_data *d, uint64_t *cap)
{
    if (d->n_entries < *cap) return VKLLM_OK;
    uint64_t want = *cap ? *cap * 2 : 64;
    imatrix_entry *e = realloc(d->entries, want * sizeof *e);
    if (!e) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory for %llu entries",
                              (unsigned long long)want);
    memset(e + *cap, 0, (want - *cap) * sizeof *e);
    d->entries = e;
    *cap = want;
    return VKLLM_OK;
}

static bool has_suffix(gguf_str s, const char *suffix, uint64_t *stem)
{
    uint64_t n = strlen(suffix);
    if (s.len <= n || memcmp(s.data + s.len - n, suffix, n) != 0) return false;
    *stem = s.len - n;
    return true;
}

static vkllm_status copy_f32(const char *path, const gguf_tensor_info *t, float **out, uint64_t *count)
{
    if (t->type != QUANT_F32)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: imatrix tensor '%.*s' is not F32", path, (int)t->name.len,
                          t->name.data);
    *count = t->size / sizeof(float);
    *out = malloc((*count ? *count : 1) * sizeof(float));
    if (!*out) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
    memcpy(*out, t->data, (size_t)(*count * sizeof(float)));
    return VKLLM_OK;
}

static vkllm_status load_gguf(const char *path, imatrix_data *d)
{
    gguf_file *f = NULL;
    VKLLM_TRY(gguf_open(path, &f));
    vkllm_status st = VKLLM_OK;
    gguf_array datasets;
    /* llama-quantize refuses a GGUF imatrix without these (its "missing imatrix metadata"). */
    if (!gguf_find_kv(f, "imatrix.datasets") || !gguf_find_kv(f, "imatrix.chunk_count") ||
        !gguf_find_kv(f, "imatrix.chunk_size")) {
        st = vkllm_fail(VKLLM_ERROR_BAD_FORMAT,
                        "%s: not an importance matrix (no imatrix.datasets / chunk_count / chunk_size metadata)",
                        path);
        goto done;
    }
    if ((st = gguf_get_u32(f, "imatrix.chunk_count", &d->chunk_count)) != VKLLM_OK) goto done;
    if ((st = gguf_get_u32(f, "imatrix.chunk_size", &d->chunk_size)) != VKLLM_OK) goto done;
    gguf_str first = {"", 0};
    if (gguf_get_array(f, "imatrix.datasets", &datasets) == VKLLM_OK && datasets.type == GGUF_TYPE_STRING &&
        datasets.count > 0) {
        uint64_t cursor = 0;
        gguf_array_next_str(&datasets, &cursor, &first);
    }
    vkllm_clear_error();
    if (!(d->dataset = copy_str(first.data, first.len))) {
        st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
        goto done;
    }
    uint64_t cap = 0;
    for (uint64_t i = 0; i < f->n_tensors && st == VKLLM_OK; i++) {
        const gguf_tensor_info *sums = &f->tensors[i];
        uint64_t stem;
        if (!has_suffix(sums->name, ".in_sum2", &stem)) continue;
        char *name = copy_str(sums->name.data, stem);
        char counts_name[600];
        snprintf(counts_name, sizeof counts_name, "%s.counts", name ? name : "");
        const gguf_tensor_info *counts = name ? gguf_find_tensor(f, counts_name) : NULL;
        if (!name || !counts || (st = grow(d, &cap)) != VKLLM_OK) {
            if (st == VKLLM_OK)
                st = name ? vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: '%s.in_sum2' has no '%s'", path, name, counts_name)
                          : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
            free(name);
            break;
        }
        imatrix_entry *e = &d->entries[d->n_entries++];
        e->name = name;
        uint64_t n_counts = 0;
        if ((st = copy_f32(path, sums, &e->sums, &e->n)) != VKLLM_OK) break;
        if ((st = copy_f32(path, counts, &e->counts, &n_counts)) != VKLLM_OK) break;
        if (n_counts == 0 || n_counts > UINT32_MAX || e->n == 0 || e->n % n_counts != 0) {
            st = vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: '%s' has %llu sums for %llu counts", path, name,
                            (unsigned long long)e->n, (unsigned long long)n_counts);
            break;
        }
        e->n_mat = (uint32_t)n_counts;
        st = derive_values(d, e);
    }
    if (st == VKLLM_OK && d->n_entries == 0)
        st = vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: the importance matrix has no entries", path);
done:
    gguf_close(f);
    return st;
}

static bool read_i32(FILE *fp, int32_t *v) { return fread(v, sizeof *v, 1, fp) == 1; }

/* The .dat layout: int32 entry count; per entry int32 name length, the name, int32 ncall, int32 nval, nval
 * floats; then optionally int32 chunk count, int32 length and the dataset name. */
static vkllm_status load_legacy(const char *path, FILE *fp, imatrix_data *d)
{
    d->legacy = true;
    int32_t n_entries = 0;
    if (!read_i32(fp, &n_entries) || n_entries < 1)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: neither a GGUF nor a legacy .dat importance matrix", path);
    uint64_t cap = 0;
    for (int32_t i = 0; i < n_entries; i++) {
        VKLLM_TRY(grow(d, &cap));
        imatrix_entry *e = &d->entries[d->n_entries++];
        int32_t len = 0, ncall = 0, nval = 0;
        if (!read_i32(fp, &len) || len < 1 || len > 4096)
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: entry %d: bad name length", path, i);
        if (!(e->name = calloc((size_t)len + 1, 1))) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix");
        if (fread(e->name, 1, (size_t)len, fp) != (size_t)len || !read_i32(fp, &ncall) || !read_i32(fp, &nval) ||
            nval < 1)
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: entry %d ('%s') is truncated", path, i, e->name);
        e->n = (uint64_t)nval;
        e->n_mat = 1;
        e->sums = malloc(e->n * sizeof(float));
        e->counts = malloc(sizeof(float));
        if (!e->sums || !e->counts) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix");
        if (fread(e->sums, sizeof(float), e->n, fp) != e->n)
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: entry '%s' is truncated", path, e->name);
        e->counts[0] = (float)ncall;
        VKLLM_TRY(derive_values(d, e));
    }
    int32_t chunks = 0, len = 0;
    char name[512] = "";
    if (read_i32(fp, &chunks)) {
        d->chunk_count = chunks > 0 ? (uint32_t)chunks : 0;
        if (read_i32(fp, &len) && len > 0 && len < (int32_t)sizeof name &&
            fread(name, 1, (size_t)len, fp) == (size_t)len)
            name[len] = '\0';
        else
            name[0] = '\0';
    }
    if (!(d->dataset = copy_str(name, strlen(name)))) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix");
    return VKLLM_OK;
}

vkllm_status imatrix_load(const char *path, imatrix_data **out)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return vkllm_fail(VKLLM_ERROR_IO, "imatrix: cannot open %s", path);
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, fp);
    imatrix_data *d = calloc(1, sizeof *d);
    vkllm_status st = VKLLM_OK;
    if (!d) {
        st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
    } else if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        st = load_gguf(path, d);
    } else {
        rewind(fp);
        st = load_legacy(path, fp, d);
    }
    fclose(fp);
    if (st != VKLLM_OK) {
        imatrix_free(d);
        return st;
    }
    *out = d;
    return VKLLM_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const imatrix_entry *const *)a)->name, (*(const imatrix_entry *const *)b)->name);
}

vkllm_status imatrix_write(const imatrix_data *d, const char *path)
{
    const imatrix_entry **order = malloc((d->n_entries ? d->n_entries : 1) * sizeof *order);
    gguf_writer *w = NULL;
    if (!order) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "imatrix: no memory");
    for (uint64_t i = 0; i < d->n_entries; i++) order[i] = &d->entries[i];
    qsort(order, (size_t)d->n_entries, sizeof *order, by_name); /* llama-imatrix's deterministic order */
    vkllm_status st = gguf_writer_create(&w);
    const char *datasets[1] = {d->dataset ? d->dataset : ""};
    if (st == VKLLM_OK) st = gguf_writer_set_str(w, "general.type", "imatrix");
    if (st == VKLLM_OK) st = gguf_writer_set_str_array(w, "imatrix.datasets", datasets, NULL, d->dataset ? 1 : 0);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "imatrix.chunk_count", d->chunk_count);
    if (st == VKLLM_OK) st = gguf_writer_set_u32(w, "imatrix.chunk_size", d->chunk_size);
    for (uint64_t i = 0; st == VKLLM_OK && i < d->n_entries; i++) {
        const imatrix_entry *e = order[i];
        char name[600];
        uint64_t ne_sums[2] = {e->n / e->n_mat, e->n_mat}, ne_counts[2] = {1, e->n_mat};
        snprintf(name, sizeof name, "%s.in_sum2", e->name);
        st = gguf_writer_add_tensor(w, name, QUANT_F32, 2, ne_sums, e->sums, e->n * sizeof(float));
        snprintf(name, sizeof name, "%s.counts", e->name);
        if (st == VKLLM_OK)
            st = gguf_writer_add_tensor(w, name, QUANT_F32, 2, ne_counts, e->counts, e->n_mat * sizeof(float));
    }
    if (st == VKLLM_OK) st = gguf_writer_write(w, path);
    gguf_writer_free(w);
    free(order);
    return st;
}
