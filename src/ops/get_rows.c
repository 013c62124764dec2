/* Embedding gather out[i] = table[ids[i]] from an F32 or F16 table of any size (shaders/get_rows.comp).
 *
 * A binding may span at most maxStorageBufferRange (128 MiB on lavapipe; a 32000 x 4096 F32 table is 500
 * MiB), so the table is bound a chunk of whole rows at a time, one dispatch per chunk, each writing the ids
 * that fall in it.  A chunk's binding starts at its first row rounded down to minStorageBufferOffsetAlignment
 * and the shader is told where that row lies inside the binding. */
#include "check.h"
#include "ops.h"
#include "quant/quant.h"

typedef struct get_rows_push {
    uint32_t n_out, row_len, n_rows;
    uint32_t chunk_first, chunk_rows, chunk_elem;
    uint32_t write_invalid;
} get_rows_push;

/* One table chunk: rows [first, first + rows) bound as range, row first at element elem of it. */
typedef struct table_chunk {
    uint32_t first, rows, elem;
    vkr_range range;
} table_chunk;

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Rows per chunk so that a chunk, with the slack of aligning its start down and its end up to a word, fits
 * one binding. */
static vkllm_status rows_per_chunk(const vkr_caps *caps, uint64_t row_bytes, uint64_t align, uint32_t *out)
{
    uint64_t usable = caps->max_storage_buffer_range > align + 4 ? caps->max_storage_buffer_range - align - 4 : 0;
    uint64_t rows = usable / row_bytes;
    if (rows == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "get_rows: a row of %llu bytes exceeds the storage buffer "
                          "range %llu", (unsigned long long)row_bytes,
                          (unsigned long long)caps->max_storage_buffer_range);
    *out = rows > UINT32_MAX ? UINT32_MAX : (uint32_t)rows;
    return VKLLM_OK;
}

static table_chunk chunk_at(vkr_range table, uint32_t first, uint32_t rows, uint64_t row_bytes, uint32_t elem_bytes,
                            uint64_t align)
{
    /* Offsets relative to the buffer; its own offset in the VkBuffer is a multiple of VKR_ALLOC_ALIGNMENT. */
    uint64_t start = table.offset + first * row_bytes;
    uint64_t bind_start = start / align * align;
    uint64_t end = (table.offset + (first + (uint64_t)rows) * row_bytes + 3) / 4 * 4;
    table_chunk c = {first, rows, (uint32_t)((start - bind_start) / elem_bytes),
                     {table.buffer, bind_start, end - bind_start}};
    return c;
}

static vkllm_status check_get_rows(const ops_context *ops, uint32_t table_type, vkr_range table, vkr_range ids,
                                   vkr_range out, uint32_t n_rows, uint32_t row_len, uint32_t n_ids)
{
    const char *name = "get_rows";
    if (table_type != QUANT_F32 && table_type != QUANT_F16)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: table type %u is neither F32 nor F16", name, table_type);
    if (n_rows == 0 || row_len == 0 || n_ids == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: empty shape, table %u x %u, %u ids", name, n_rows,
                          row_len, n_ids);
    if ((uint64_t)n_ids * row_len > UINT32_MAX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u ids x %u is too many elements", name, n_ids, row_len);
    if (table.offset % 4)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: table offset %llu is not a multiple of 4", name,
                          (unsigned long long)table.offset);
    uint64_t elems = (uint64_t)n_rows * row_len;
    /* F16: whole words, so the last half is readable as part of its word. */
    VKLLM_TRY(ops_check_bytes(name, "table", table, table_type == QUANT_F32 ? 4 * elems : (elems + 1) / 2 * 4));
    VKLLM_TRY(ops_check_bytes(name, "ids", ids, 4ull * n_ids));
    VKLLM_TRY(ops_check_bytes(name, "out", out, 4ull * n_ids * row_len));
    if (4ull * n_ids * row_len > ops->caps->max_storage_buffer_range)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: out of %u x %u floats exceeds the storage buffer range "
                          "%llu", name, n_ids, row_len, (unsigned long long)ops->caps->max_storage_buffer_range);
    return VKLLM_OK;
}

vkllm_status ops_get_rows(ops_context *ops, vkr_sequence *seq, uint32_t table_type, vkr_range table, vkr_range ids,
                          vkr_range out, uint32_t n_rows, uint32_t row_len, uint32_t n_ids)
{
    VKLLM_TRY(check_get_rows(ops, table_type, table, ids, out, n_rows, row_len, n_ids));
    const char *shader = table_type == QUANT_F32 ? SHADER(get_rows_f32) : SHADER(get_rows_f16);
    uint32_t elem_bytes = table_type == QUANT_F32 ? 4 : 2;
    uint64_t row_bytes = (uint64_t)row_len * elem_bytes;
    uint64_t align = max_u64(ops->caps->min_storage_offset_alignment, 4);
    uint32_t chunk_rows = 0;
    VKLLM_TRY(rows_per_chunk(ops->caps, row_bytes, align, &chunk_rows));

    uint32_t wg = ops->tuning->elementwise_wg;
    const vkr_pipeline *p;
    VKLLM_TRY(ops_pipeline(ops, shader, 3, 0x3, sizeof(get_rows_push), &wg, 1, &p));
    uint32_t n_out = n_ids * row_len;
    uint32_t groups[3];
    vkr_groups_1d(ops->dev, vkr_div_up(n_out, wg), groups);
    vkr_range ids_range = ops_head(ids, 4ull * n_ids), out_range = ops_head(out, 4ull * n_out);
    for (uint32_t first = 0, rows; first < n_rows; first += rows) {
        rows = n_rows - first < chunk_rows ? n_rows - first : chunk_rows;
        table_chunk c = chunk_at(table, first, rows, row_bytes, elem_bytes, align);
        get_rows_push push = {n_out, row_len, n_rows, c.first, c.rows, c.elem, first == 0};
        vkr_range bind[3] = {c.range, ids_range, out_range};
        VKLLM_TRY(vkr_sequence_dispatch(seq, p, bind, &push, groups, "get_rows"));
    }
    return VKLLM_OK;
}
