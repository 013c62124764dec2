/* GGUF reader: parses and validates the header, metadata and tensor table of a mapped file.
 *
 * Every read goes through a bounds-checked cursor, and every count is compared with the bytes left
 * before anything is allocated or multiplied, so a truncated or hostile file gets a message, never a
 * crash or a huge allocation. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "mapped_file.h"
#include "quant/quant.h"
#include "runtime/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
/* Arrays of arrays are legal; the limit only bounds the recursion a hostile file can cause. */
#define GGUF_MAX_ARRAY_NESTING 16
/* The fewest bytes one entry can occupy, to bound counts before allocating. */
#define GGUF_MIN_KV_BYTES (8 + 4 + 1)              /* key length, value type, 1-byte value */
#define GGUF_MIN_TENSOR_INFO_BYTES (8 + 4 + 8 + 4 + 8) /* name length, n_dims, one ne, type, offset */
#define GGUF_MIN_ARRAY_BYTES (4 + 8)               /* element type, count */
/* Names quoted in messages are clipped so a garbage length cannot flood the message. */
#define GGUF_QUOTE_MAX 64

/* Bounds-checked cursor over the file; `where` names the item being parsed, for messages. */
typedef struct reader {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *file;
    char where[160];
} reader;

static vkllm_status reader_fail(const reader *r, const char *fmt, ...) VKLLM_PRINTF(2, 3);
static vkllm_status reader_fail(const reader *r, const char *fmt, ...)
{
    char detail[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, sizeof detail, fmt, args);
    va_end(args);
    return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "gguf: %s: %s: %s", r->file, r->where, detail);
}

static void reader_where(reader *r, const char *fmt, ...) VKLLM_PRINTF(2, 3);
static void reader_where(reader *r, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(r->where, sizeof r->where, fmt, args);
    va_end(args);
}

static uint64_t reader_left(const reader *r) { return r->size - r->pos; }

static vkllm_status reader_take(reader *r, uint64_t n, const char *what, const uint8_t **out)
{
    if (n > reader_left(r))
        return reader_fail(r, "%s at offset %" PRIu64 " needs %" PRIu64 " bytes but the file ends at %" PRIu64
                              " (truncated?)",
                           what, r->pos, n, r->size);
    *out = r->base + r->pos;
    r->pos += n;
    return VKLLM_OK;
}

static vkllm_status reader_u32(reader *r, const char *what, uint32_t *out)
{
    const uint8_t *p = NULL;
    VKLLM_TRY(reader_take(r, sizeof *out, what, &p));
    memcpy(out, p, sizeof *out);
    return VKLLM_OK;
}

static vkllm_status reader_u64(reader *r, const char *what, uint64_t *out)
{
    const uint8_t *p = NULL;
    VKLLM_TRY(reader_take(r, sizeof *out, what, &p));
    memcpy(out, p, sizeof *out);
    return VKLLM_OK;
}

static vkllm_status reader_str(reader *r, const char *what, gguf_str *out)
{
    uint64_t len;
    const uint8_t *p = NULL;
    VKLLM_TRY(reader_u64(r, what, &len));
    if (len > reader_left(r))
        return reader_fail(r, "%s length %" PRIu64 " at offset %" PRIu64 " runs past the end of the file (%" PRIu64
                              " bytes left)",
                           what, len, r->pos - 8, reader_left(r));
    VKLLM_TRY(reader_take(r, len, what, &p));
    *out = (gguf_str){(const char *)p, len};
    return VKLLM_OK;
}

static vkllm_status read_array(reader *r, uint32_t depth, gguf_array *out);

/* Walks `count` elements of `type` starting at the cursor, checking each against the file. */
static vkllm_status skip_elements(reader *r, gguf_value_type type, uint64_t count, uint32_t depth)
{
    uint64_t esize = gguf_type_size(type);
    uint64_t min_bytes = esize ? esize : type == GGUF_TYPE_STRING ? 8 : GGUF_MIN_ARRAY_BYTES;
    if (count > reader_left(r) / min_bytes)
        return reader_fail(r, "array of %" PRIu64 " %s elements (at least %" PRIu64 " bytes each) at offset %" PRIu64
                              " does not fit in the %" PRIu64 " bytes left in the file",
                           count, gguf_type_name(type), min_bytes, r->pos, reader_left(r));
    if (esize) {
        r->pos += count * esize; /* cannot overflow: checked against the bytes left above */
        return VKLLM_OK;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (type == GGUF_TYPE_STRING) {
            gguf_str s;
            VKLLM_TRY(reader_str(r, "string array element", &s));
        } else {
            gguf_array inner;
            VKLLM_TRY(read_array(r, depth + 1, &inner));
        }
    }
    return VKLLM_OK;
}

/* depth is 1 for an array that is a kv's value, 2 for its elements if they are arrays, ... */
static vkllm_status read_array(reader *r, uint32_t depth, gguf_array *out)
{
    uint32_t type;
    VKLLM_TRY(reader_u32(r, "array element type", &type));
    if (type >= GGUF_TYPE_COUNT)
        return reader_fail(r, "array element type %" PRIu32 " at offset %" PRIu64 " is unknown (expected 0..%d)",
                           type, r->pos - 4, GGUF_TYPE_COUNT - 1);
    if (type == GGUF_TYPE_ARRAY && depth >= GGUF_MAX_ARRAY_NESTING)
        return reader_fail(r, "arrays nested more than %d deep at offset %" PRIu64, GGUF_MAX_ARRAY_NESTING,
                           r->pos - 4);
    uint64_t count;
    VKLLM_TRY(reader_u64(r, "array element count", &count));
    uint64_t start = r->pos;
    VKLLM_TRY(skip_elements(r, (gguf_value_type)type, count, depth));
    *out = (gguf_array){(gguf_value_type)type, count, r->base + start, r->pos - start};
    return VKLLM_OK;
}

static vkllm_status read_value(reader *r, gguf_kv *kv)
{
    if (kv->type == GGUF_TYPE_STRING) return reader_str(r, "string value", &kv->value.str);
    if (kv->type == GGUF_TYPE_ARRAY) return read_array(r, 1, &kv->value.arr);
    const uint8_t *p = NULL;
    VKLLM_TRY(reader_take(r, gguf_type_size(kv->type), "value", &p));
    switch (kv->type) {
    case GGUF_TYPE_UINT8: { uint8_t v; memcpy(&v, p, 1); kv->value.u64 = v; break; }
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); kv->value.u64 = v; break; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, p, 4); kv->value.u64 = v; break; }
    case GGUF_TYPE_UINT64: memcpy(&kv->value.u64, p, 8); break;
    case GGUF_TYPE_INT8: { int8_t v; memcpy(&v, p, 1); kv->value.i64 = v; break; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); kv->value.i64 = v; break; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); kv->value.i64 = v; break; }
    case GGUF_TYPE_INT64: memcpy(&kv->value.i64, p, 8); break;
    case GGUF_TYPE_FLOAT32: { float v; memcpy(&v, p, 4); kv->value.f64 = v; break; }
    case GGUF_TYPE_FLOAT64: memcpy(&kv->value.f64, p, 8); break;
    case GGUF_TYPE_BOOL: kv->value.b = p[0] != 0; break;
    default: break; /* unreachable: the type was checked by the caller */
    }
    return VKLLM_OK;
}

static int quote_len(gguf_str s) { return s.len > GGUF_QUOTE_MAX ? GGUF_QUOTE_MAX : (int)s.len; }

static vkllm_status read_kv(reader *r, uint64_t index, gguf_kv *kv)
{
    reader_where(r, "metadata %" PRIu64, index);
    VKLLM_TRY(reader_str(r, "key", &kv->key));
    reader_where(r, "metadata %" PRIu64 " '%.*s'", index, quote_len(kv->key), kv->key.data);
    uint32_t type;
    VKLLM_TRY(reader_u32(r, "value type", &type));
    if (type >= GGUF_TYPE_COUNT)
        return reader_fail(r, "value type %" PRIu32 " at offset %" PRIu64 " is unknown (expected 0..%d)", type,
                           r->pos - 4, GGUF_TYPE_COUNT - 1);
    kv->type = (gguf_value_type)type;
    return read_value(r, kv);
}

static vkllm_status read_tensor_info(reader *r, uint64_t index, gguf_tensor_info *t)
{
    reader_where(r, "tensor %" PRIu64, index);
    VKLLM_TRY(reader_str(r, "name", &t->name));
    reader_where(r, "tensor %" PRIu64 " '%.*s'", index, quote_len(t->name), t->name.data);
    VKLLM_TRY(reader_u32(r, "n_dims", &t->n_dims));
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return reader_fail(r, "n_dims %" PRIu32 " (expected 1..%d)", t->n_dims, GGUF_MAX_DIMS);
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) VKLLM_TRY(reader_u64(r, "dimension", &t->ne[d]));
    VKLLM_TRY(reader_u32(r, "type", &t->type));
    return reader_u64(r, "data offset", &t->offset);
}

/* ne must be positive (as ggml's signed int64), the element count must fit int64, the type must be known
 * and ne[0] a whole number of its blocks; then size is the byte count. */
static vkllm_status compute_tensor_size(reader *r, gguf_tensor_info *t)
{
    uint64_t elements = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return reader_fail(r, "dimension ne[%" PRIu32 "] = %" PRIu64 " (expected 1..%" PRId64 ")", d, t->ne[d],
                               INT64_MAX);
        if (elements > (uint64_t)INT64_MAX / t->ne[d])
            return reader_fail(r, "element count overflows int64 (ne = %" PRIu64 " x %" PRIu64 " x %" PRIu64
                                  " x %" PRIu64 ")",
                               t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
        elements *= t->ne[d];
    }
    const quant_traits *traits = quant_get_traits(t->type);
    if (!traits) return reader_fail(r, "unknown tensor type %" PRIu32 " (not a ggml type vkllm knows)", t->type);
    uint64_t row = quant_row_size(t->type, t->ne[0]);
    if (row == 0 && t->ne[0] % traits->block_elems != 0)
        return reader_fail(r, "ne[0] = %" PRIu64 " is not a multiple of the %s block size %" PRIu32, t->ne[0],
                           traits->name, traits->block_elems);
    if (row == 0) return reader_fail(r, "row of %" PRIu64 " %s elements overflows 64 bits", t->ne[0], traits->name);
    uint64_t rows = elements / t->ne[0];
    if (row > UINT64_MAX / rows) return reader_fail(r, "data size overflows 64 bits");
    t->size = row * rows;
    return VKLLM_OK;
}

static vkllm_status place_tensor(reader *r, gguf_file *f, gguf_tensor_info *t)
{
    if (t->offset % f->alignment != 0)
        return reader_fail(r, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu64, t->offset,
                           f->alignment);
    uint64_t room = f->map_size - f->data_offset; /* data_offset <= map_size was checked by the caller */
    if (t->offset > room)
        return reader_fail(r, "data offset %" PRIu64 " (file offset %" PRIu64 ") past end of file (size %" PRIu64 ")",
                           t->offset, f->data_offset + t->offset, f->map_size);
    if (t->size > room - t->offset)
        return reader_fail(r, "data of %" PRIu64 " bytes at file offset %" PRIu64
                              " runs past end of file (size %" PRIu64 ")",
                           t->size, f->data_offset + t->offset, f->map_size);
    t->data = f->map + f->data_offset + t->offset;
    return VKLLM_OK;
}

/* Duplicate detection sorts (name, index) pairs so a file with many entries stays O(n log n). */
typedef struct named_index {
    gguf_str name;
    uint64_t index;
} named_index;

static int compare_named(const void *a, const void *b)
{
    const named_index *x = a, *y = b;
    uint64_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = n ? memcmp(x->name.data, y->name.data, (size_t)n) : 0;
    if (c) return c;
    if (x->name.len != y->name.len) return x->name.len < y->name.len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* stride is the size of the struct holding each name; the name is at offset name_offset. */
static vkllm_status check_unique(reader *r, const void *items, uint64_t count, size_t stride, size_t name_offset,
                                 const char *kind)
{
    if (count < 2) return VKLLM_OK;
    named_index *sorted = malloc((size_t)count * sizeof *sorted);
    if (!sorted)
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf: %s: no memory to check %s names", r->file, kind);
    for (uint64_t i = 0; i < count; i++) {
        memcpy(&sorted[i].name, (const uint8_t *)items + i * stride + name_offset, sizeof(gguf_str));
        sorted[i].index = i;
    }
    qsort(sorted, (size_t)count, sizeof *sorted, compare_named);
    vkllm_status status = VKLLM_OK;
    for (uint64_t i = 1; i < count && status == VKLLM_OK; i++) {
        const named_index *a = &sorted[i - 1], *b = &sorted[i];
        if (a->name.len == b->name.len && memcmp(a->name.data, b->name.data, (size_t)a->name.len) == 0) {
            reader_where(r, "%s %" PRIu64 " '%.*s'", kind, b->index, quote_len(b->name), b->name.data);
            status = reader_fail(r, "duplicate name (also %s %" PRIu64 "); names must be unique", kind, a->index);
        }
    }
    free(sorted);
    return status;
}

static vkllm_status read_header(reader *r, gguf_file *f)
{
    reader_where(r, "header");
    const uint8_t *magic = NULL;
    VKLLM_TRY(reader_take(r, 4, "magic", &magic));
    if (memcmp(magic, GGUF_MAGIC, 4) != 0)
        return reader_fail(r, "bad magic %02x %02x %02x %02x (expected \"GGUF\"); not a GGUF file", magic[0],
                           magic[1], magic[2], magic[3]);
    VKLLM_TRY(reader_u32(r, "version", &f->version));
    if (f->version == 1)
        return reader_fail(r, "version 1 is not supported (it predates 64-bit counts; expected version 2 or 3, "
                              "re-convert the model)");
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0 && f->version != 0)
            return reader_fail(r, "version field 0x%08" PRIx32 " looks byte-swapped: big-endian GGUF is not "
                                  "supported (expected a little-endian version 2 or 3)",
                               f->version);
        return reader_fail(r, "unsupported version %" PRIu32 " (expected 2 or 3)", f->version);
    }
    VKLLM_TRY(reader_u64(r, "tensor count", &f->n_tensors));
    VKLLM_TRY(reader_u64(r, "metadata count", &f->n_kv));
    /* Bound the counts by what the rest of the file could hold before allocating for them. */
    if (f->n_kv > reader_left(r) / GGUF_MIN_KV_BYTES)
        return reader_fail(r, "metadata count %" PRIu64 " cannot fit in the %" PRIu64 " bytes left", f->n_kv,
                           reader_left(r));
    if (f->n_tensors > reader_left(r) / GGUF_MIN_TENSOR_INFO_BYTES)
        return reader_fail(r, "tensor count %" PRIu64 " cannot fit in the %" PRIu64 " bytes left", f->n_tensors,
                           reader_left(r));
    return VKLLM_OK;
}

static vkllm_status read_alignment(reader *r, gguf_file *f)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find_kv(f, "general.alignment");
    if (!kv) return VKLLM_OK;
    reader_where(r, "metadata 'general.alignment'");
    if (kv->type != GGUF_TYPE_UINT32)
        return reader_fail(r, "type %s (expected uint32)", gguf_type_name(kv->type));
    uint64_t a = kv->value.u64;
    if (a == 0 || (a & (a - 1)) != 0) return reader_fail(r, "%" PRIu64 " is not a power of two", a);
    f->alignment = a;
    return VKLLM_OK;
}

static vkllm_status parse(reader *r, gguf_file *f)
{
    VKLLM_TRY(read_header(r, f));
    if (f->n_kv && !(f->kv = calloc((size_t)f->n_kv, sizeof *f->kv)))
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf: %s: no memory for %" PRIu64 " metadata entries",
                          r->file, f->n_kv);
    for (uint64_t i = 0; i < f->n_kv; i++) VKLLM_TRY(read_kv(r, i, &f->kv[i]));
    VKLLM_TRY(check_unique(r, f->kv, f->n_kv, sizeof(gguf_kv), offsetof(gguf_kv, key), "metadata"));
    VKLLM_TRY(read_alignment(r, f));

    if (f->n_tensors && !(f->tensors = calloc((size_t)f->n_tensors, sizeof *f->tensors)))
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf: %s: no memory for %" PRIu64 " tensors", r->file,
                          f->n_tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        VKLLM_TRY(read_tensor_info(r, i, &f->tensors[i]));
        VKLLM_TRY(compute_tensor_size(r, &f->tensors[i]));
    }
    VKLLM_TRY(check_unique(r, f->tensors, f->n_tensors, sizeof(gguf_tensor_info), offsetof(gguf_tensor_info, name),
                           "tensor"));

    /* The data section starts at the next multiple of the alignment after the tensor table. */
    uint64_t pad = (f->alignment - r->pos % f->alignment) % f->alignment;
    f->data_offset = r->pos + pad;
    if (f->n_tensors == 0) return VKLLM_OK;
    if (pad > reader_left(r)) {
        reader_where(r, "data section");
        return reader_fail(r, "starts at offset %" PRIu64 " (after padding to %" PRIu64
                              ") past end of file (size %" PRIu64 ")",
                           f->data_offset, f->alignment, f->map_size);
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor_info *t = &f->tensors[i];
        reader_where(r, "tensor %" PRIu64 " '%.*s'", i, quote_len(t->name), t->name.data);
        VKLLM_TRY(place_tensor(r, f, t));
    }
    return VKLLM_OK;
}

static vkllm_status open_mapped(const uint8_t *data, uint64_t size, const char *name, bool owns_map, gguf_file **out)
{
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    char *path = strdup(name ? name : "(memory)");
    if (!f || !path) {
        free(f);
        free(path);
        if (owns_map) {
            mapped_file map = {data, size};
            mapped_file_close(&map);
        }
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf: no memory to open %s", name ? name : "(memory)");
    }
    f->path = path;
    f->map = data;
    f->map_size = size;
    f->owns_map = owns_map;
    reader r = {.base = data, .size = size, .file = path};
    vkllm_status status = parse(&r, f);
    if (status != VKLLM_OK) {
        gguf_close(f);
        return status;
    }
    *out = f;
    return VKLLM_OK;
}

vkllm_status gguf_open(const char *path, gguf_file **out)
{
    *out = NULL;
    mapped_file map;
    vkllm_status status = mapped_file_open(path, &map);
    if (status != VKLLM_OK) return vkllm_fail_context(status, "gguf");
    status = open_mapped(map.data, map.size, path, true, out);
    /* On failure gguf_close has already unmapped it. */
    return status;
}

vkllm_status gguf_open_memory(const void *data, uint64_t size, const char *name, gguf_file **out)
{
    if (!data && size) {
        *out = NULL;
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_open_memory: NULL data with size %" PRIu64, size);
    }
    return open_mapped(data, size, name, false, out);
}

void gguf_close(gguf_file *file)
{
    if (!file) return;
    if (file->owns_map) {
        mapped_file map = {file->map, file->map_size};
        mapped_file_close(&map);
    }
    free(file->kv);
    free(file->tensors);
    free(file->path);
    free(file);
}
