/* Weight matrices on the device: shape checks, repacking (weight_repack.c) in slabs of rows, upload, and the
 * row chunks, each its own allocation, that keep every binding within maxStorageBufferRange (and
 * maxTexelBufferElements) and every allocation within maxMemoryAllocationSize. */
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "quant/quant.h"
#include "weight_format.h"

/* Host memory used at a time while repacking for a device buffer that is not host-visible. */
#define SLAB_BYTES (16u << 20)

uint64_t ops_weight_bytes(const ops_weight *w)
{
    return (uint64_t)w->rows * (w->quant_row_bytes + w->aux_row_bytes);
}

/* Rows per chunk: as many as fit, in quants and in aux (rounded up to whole words), maxStorageBufferRange and
 * maxMemoryAllocationSize and, where the mat-vec reads them as texels (matmul.c), maxTexelBufferElements texels
 * of 16 (quants) and 4 (aux) bytes.  Every chunk is an allocation of its own, so its offset is aligned for any
 * binding whatever its row count. */
static vkllm_status choose_chunk_rows(const ops_context *ops, ops_weight *w, const char *type_name)
{
    const vkr_caps *caps = ops->caps;
    uint64_t quant_range = caps->max_storage_buffer_range, aux_range = quant_range;
    /* The sub-allocator rounds every allocation up to VKR_ALLOC_ALIGNMENT: a chunk stays within the limit
     * after that rounding. */
    uint64_t allocation = caps->max_memory_allocation / VKR_ALLOC_ALIGNMENT * VKR_ALLOC_ALIGNMENT;
    if (allocation && allocation < quant_range) quant_range = allocation;
    if (allocation && allocation < aux_range) aux_range = allocation;
    bool texels = ops->tuning->texel_loads && caps->texel_rgba32;
    if (texels) {
        uint64_t n = caps->max_texel_buffer_elements;
        if (16 * n < quant_range) quant_range = 16 * n;
        if (4 * n < aux_range) aux_range = 4 * n;
    }
    uint64_t rows = quant_range / w->quant_row_bytes;
    if (w->aux_row_bytes && aux_range / w->aux_row_bytes < rows) rows = aux_range / w->aux_row_bytes;
    if (rows == 0)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED,
                          "weight %s %ux%u: one row of %llu + %llu bytes exceeds the binding and allocation limits "
                          "(%llu / %llu bytes: maxStorageBufferRange, maxMemoryAllocationSize%s)",
                          type_name, w->rows, w->cols, (unsigned long long)w->quant_row_bytes,
                          (unsigned long long)w->aux_row_bytes, (unsigned long long)quant_range,
                          (unsigned long long)aux_range, texels ? ", maxTexelBufferElements" : "");
    w->chunk_rows = rows < w->rows ? (uint32_t)rows : w->rows;
    w->n_chunks = (w->rows + w->chunk_rows - 1) / w->chunk_rows;
    return VKLLM_OK;
}

static uint32_t rows_of_chunk(const ops_weight *w, uint32_t c)
{
    uint32_t first = c * w->chunk_rows;
    return w->rows - first < w->chunk_rows ? w->rows - first : w->chunk_rows;
}

static vkllm_status check_shape(uint32_t type, uint32_t rows, uint32_t cols, const void *data,
                                const struct weight_format **format)
{
    const quant_traits *traits = quant_get_traits(type);
    *format = weight_format_of(type);
    if (!traits || !*format)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "weight: tensor type %s (id %u) has no GPU mat-mul",
                          traits ? traits->name : "unknown", type);
    if (rows == 0 || cols == 0 || !data)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "weight %s: empty %ux%u matrix or no data", traits->name,
                          rows, cols);
    if (cols % traits->block_elems)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "weight %s %ux%u: cols must be a multiple of the block size %u", traits->name, rows, cols,
                          traits->block_elems);
    return VKLLM_OK;
}

/* Where the GGUF bytes of each row are: one contiguous matrix, or a pointer per row. */
typedef struct row_source {
    const uint8_t *matrix;
    const void *const *rows;
} row_source;

/* Repacks rows [first, first + count) into quants/aux (zeroed first: padding stays zero). */
static void repack_rows(const ops_weight *w, row_source src, uint32_t first, uint32_t count, uint8_t *quants,
                        uint8_t *aux)
{
    uint64_t src_row = quant_row_size(w->type, w->cols);
    memset(quants, 0, count * w->quant_row_bytes);
    if (aux) memset(aux, 0, count * w->aux_row_bytes);
    for (uint32_t r = 0; r < count; r++) {
        const uint8_t *row = src.rows ? src.rows[first + r] : src.matrix + (first + r) * src_row;
        w->format->repack_row(row, w->cols, quants + r * w->quant_row_bytes, aux ? aux + r * w->aux_row_bytes : NULL);
    }
}

/* Writes rows [first, first + count) of chunk c (counted within it) into both of its arrays: straight into
 * mapped memory, else through a slab. */
static vkllm_status upload_rows(ops_context *ops, ops_weight *w, row_source src, uint32_t c, uint32_t first,
                                uint32_t count, uint8_t *slab)
{
    uint64_t q_off = first * w->quant_row_bytes, a_off = first * w->aux_row_bytes;
    uint64_t q_bytes = count * w->quant_row_bytes, a_bytes = count * w->aux_row_bytes;
    uint32_t row0 = c * w->chunk_rows + first; /* of the whole matrix */
    vkr_buffer *quants = &w->quants[c], *aux = w->aux ? &w->aux[c] : NULL;
    if (quants->mapped && (!aux || aux->mapped)) {
        repack_rows(w, src, row0, count, quants->mapped + q_off, aux ? aux->mapped + a_off : NULL);
        return VKLLM_OK;
    }
    repack_rows(w, src, row0, count, slab, aux ? slab + q_bytes : NULL);
    VKLLM_TRY(vkr_upload(ops->dev, quants, q_off, slab, q_bytes));
    if (aux) VKLLM_TRY(vkr_upload(ops->dev, aux, a_off, slab + q_bytes, a_bytes));
    return VKLLM_OK;
}

/* Each chunk in slabs of SLAB_BYTES: one upload per slab and array, never one per row. */
static vkllm_status upload(ops_context *ops, ops_weight *w, row_source src)
{
    uint64_t row_bytes = w->quant_row_bytes + w->aux_row_bytes;
    uint32_t slab_rows = (uint32_t)(SLAB_BYTES / row_bytes ? SLAB_BYTES / row_bytes : 1);
    if (slab_rows > w->chunk_rows) slab_rows = w->chunk_rows;
    uint8_t *slab = NULL;
    bool mapped = true;
    for (uint32_t c = 0; c < w->n_chunks; c++) mapped = mapped && w->quants[c].mapped && (!w->aux || w->aux[c].mapped);
    if (!mapped) {
        slab = malloc(slab_rows * row_bytes);
        if (!slab) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "weight: repacking slab");
    }
    vkllm_status st = VKLLM_OK;
    for (uint32_t c = 0; c < w->n_chunks && st == VKLLM_OK; c++) {
        uint32_t rows = rows_of_chunk(w, c);
        for (uint32_t r = 0; r < rows && st == VKLLM_OK; r += slab_rows)
            st = upload_rows(ops, w, src, c, r, rows - r < slab_rows ? rows - r : slab_rows, slab);
    }
    free(slab);
    return st;
}

/* One quants (and aux) allocation per chunk. */
static vkllm_status allocate_chunks(ops_context *ops, ops_weight *w)
{
    w->quants = calloc(w->n_chunks, sizeof *w->quants);
    if (w->aux_row_bytes) w->aux = calloc(w->n_chunks, sizeof *w->aux);
    if (!w->quants || (w->aux_row_bytes && !w->aux))
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "weight: %u chunk records", w->n_chunks);
    for (uint32_t c = 0; c < w->n_chunks; c++) {
        uint64_t rows = rows_of_chunk(w, c);
        VKLLM_TRY(vkr_buffer_alloc(ops->dev, rows * w->quant_row_bytes, VKR_MEMORY_DEVICE, &w->quants[c]));
        /* aux is read as 32-bit words: round its size up. */
        if (w->aux)
            VKLLM_TRY(vkr_buffer_alloc(ops->dev, (rows * w->aux_row_bytes + 3) / 4 * 4, VKR_MEMORY_DEVICE, &w->aux[c]));
    }
    return VKLLM_OK;
}

static vkllm_status create(ops_context *ops, uint32_t type, uint32_t rows, uint32_t cols, row_source src,
                           ops_weight **out)
{
    const struct weight_format *format;
    *out = NULL;
    VKLLM_TRY(check_shape(type, rows, cols, src.rows ? (const void *)src.rows : src.matrix, &format));
    ops_weight *w = calloc(1, sizeof *w);
    if (!w) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "weight: allocating");
    w->type = type;
    w->rows = rows;
    w->cols = cols;
    w->format = format;
    w->groups = (cols + format->group - 1) / format->group;
    w->quant_row_bytes = (uint64_t)w->groups * format->group_bytes;
    w->aux_row_bytes = (uint64_t)w->groups * format->group / format->aux_span * format->aux_bytes;
    const char *name = quant_get_traits(type)->name;
    vkllm_status st = choose_chunk_rows(ops, w, name);
    if (st == VKLLM_OK) st = allocate_chunks(ops, w);
    if (st == VKLLM_OK) st = upload(ops, w, src);
    if (st != VKLLM_OK) {
        vkllm_fail_context(st, "weight %s %ux%u", name, rows, cols);
        ops_weight_free(ops, w);
        return st;
    }
    *out = w;
    return VKLLM_OK;
}

vkllm_status ops_weight_create(ops_context *ops, uint32_t type, uint32_t rows, uint32_t cols,
                               const void *ggml_data, ops_weight **out)
{
    return create(ops, type, rows, cols, (row_source){.matrix = ggml_data}, out);
}

vkllm_status ops_weight_create_rows(ops_context *ops, uint32_t type, uint32_t rows, uint32_t cols,
                                    const void *const *row_data, ops_weight **out)
{
    if (row_data)
        for (uint32_t r = 0; r < rows; r++)
            if (!row_data[r]) {
                *out = NULL;
                return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "weight: row %u of %u has no data", r, rows);
            }
    return create(ops, type, rows, cols, (row_source){.rows = row_data}, out);
}

void ops_weight_free(ops_context *ops, ops_weight *w)
{
    if (!w) return;
    for (uint32_t c = 0; c < w->n_chunks; c++) {
        if (w->quants) vkr_buffer_free(ops->dev, &w->quants[c]);
        if (w->aux) vkr_buffer_free(ops->dev, &w->aux[c]);
    }
    free(w->quants);
    free(w->aux);
    free(w);
}
