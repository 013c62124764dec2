/* GGUF writer: collects metadata (each value pre-encoded as its on-disk bytes) and tensor references,
 * then writes a v3 file: header, metadata in insertion order, tensor table, padding, tensor data with
 * every tensor starting at a multiple of the alignment. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant/quant.h"
#include "runtime/error.h"

#define GGUF_WRITE_VERSION 3
#define GGUF_WRITE_DEFAULT_ALIGNMENT 32

typedef struct writer_kv {
    char *key;
    uint64_t key_len;
    uint8_t *value;      /* value type (uint32) followed by the encoded value, exactly as in the file */
    uint64_t value_size; /* bytes */
} writer_kv;

typedef struct writer_tensor {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    const void *data; /* caller-owned until gguf_writer_write; NULL for a streamed tensor */
    uint64_t size;    /* bytes */
    gguf_tensor_producer produce; /* streamed tensors: called at write time */
    void *produce_ctx;
} writer_tensor;

/* Where a producer's bytes go: the open file and how many bytes the tensor still expects. */
struct gguf_sink {
    FILE *fp;
    const char *path;
    const char *tensor;
    uint64_t remaining;
};

struct gguf_writer {
    writer_kv *kv;
    uint64_t n_kv, kv_capacity;
    writer_tensor *tensors;
    uint64_t n_tensors, tensor_capacity;
    uint64_t alignment;
};

/* A growable byte buffer for encoding one value. */
typedef struct byte_buf {
    uint8_t *data;
    uint64_t size, capacity;
    bool failed;
} byte_buf;

static void buf_put(byte_buf *b, const void *src, uint64_t n)
{
    if (b->failed || n == 0) return;
    if (n > UINT64_MAX - b->size || b->size + n > SIZE_MAX) {
        b->failed = true;
        return;
    }
    if (b->size + n > b->capacity) {
        uint64_t cap = b->capacity ? b->capacity : 64;
        while (cap < b->size + n) cap = cap > UINT64_MAX / 2 ? b->size + n : cap * 2;
        uint8_t *grown = cap <= SIZE_MAX ? realloc(b->data, (size_t)cap) : NULL;
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->capacity = cap;
    }
    memcpy(b->data + b->size, src, (size_t)n);
    b->size += n;
}

static void buf_u32(byte_buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void buf_u64(byte_buf *b, uint64_t v) { buf_put(b, &v, 8); }

vkllm_status gguf_writer_create(gguf_writer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf writer: no memory");
    (*out)->alignment = GGUF_WRITE_DEFAULT_ALIGNMENT;
    return VKLLM_OK;
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].value);
    }
    for (uint64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kv);
    free(w->tensors);
    free(w);
}

static bool grow(void **items, uint64_t *capacity, uint64_t needed, size_t item_size)
{
    if (needed <= *capacity) return true;
    uint64_t cap = *capacity ? *capacity * 2 : 16;
    if (cap > SIZE_MAX / item_size) return false;
    void *grown = realloc(*items, (size_t)cap * item_size);
    if (!grown) return false;
    *items = grown;
    *capacity = cap;
    return true;
}

/* general.alignment steers the layout, so it is validated as it is set. */
static vkllm_status apply_alignment(gguf_writer *w, const byte_buf *value)
{
    uint32_t type, a;
    memcpy(&type, value->data, 4);
    if (type != GGUF_TYPE_UINT32)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf writer: general.alignment must be uint32, not %s",
                          gguf_type_name((gguf_value_type)type));
    memcpy(&a, value->data + 4, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf writer: general.alignment %" PRIu32
                                                        " is not a power of two",
                          a);
    w->alignment = a;
    return VKLLM_OK;
}

/* Takes ownership of value->data in every case. */
static vkllm_status store_kv(gguf_writer *w, const char *key, uint64_t key_len, byte_buf *value)
{
    vkllm_status status = VKLLM_OK;
    if (value->failed) status = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf writer: no memory for key '%.*s'",
                                           (int)(key_len > 64 ? 64 : key_len), key);
    else if (key_len == strlen("general.alignment") && memcmp(key, "general.alignment", (size_t)key_len) == 0)
        status = apply_alignment(w, value);
    if (status != VKLLM_OK) {
        free(value->data);
        return status;
    }
    for (uint64_t i = 0; i < w->n_kv; i++) {
        writer_kv *kv = &w->kv[i];
        if (kv->key_len == key_len && memcmp(kv->key, key, (size_t)key_len) == 0) {
            free(kv->value);
            kv->value = value->data;
            kv->value_size = value->size;
            return VKLLM_OK;
        }
    }
    char *copy = malloc((size_t)key_len + 1);
    if (!copy || !grow((void **)&w->kv, &w->kv_capacity, w->n_kv + 1, sizeof *w->kv)) {
        free(copy);
        free(value->data);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf writer: no memory for key '%.*s'",
                          (int)(key_len > 64 ? 64 : key_len), key);
    }
    memcpy(copy, key, (size_t)key_len);
    copy[key_len] = '\0';
    w->kv[w->n_kv++] = (writer_kv){copy, key_len, value->data, value->size};
    return VKLLM_OK;
}

static vkllm_status check_key(const char *key, const char *who)
{
    if (!key) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: NULL key", who);
    return VKLLM_OK;
}

vkllm_status gguf_writer_set_scalar(gguf_writer *w, const char *key, gguf_value_type type, const void *value)
{
    VKLLM_TRY(check_key(key, "gguf_writer_set_scalar"));
    uint64_t n = gguf_type_size(type);
    if (!n)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_set_scalar '%s': type %s is not a scalar type",
                          key, gguf_type_name(type));
    byte_buf b = {0};
    buf_u32(&b, type);
    if (type == GGUF_TYPE_BOOL) {
        uint8_t byte = *(const bool *)value ? 1 : 0;
        buf_put(&b, &byte, 1);
    } else {
        buf_put(&b, value, n);
    }
    return store_kv(w, key, strlen(key), &b);
}

vkllm_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return gguf_writer_set_scalar(w, key, GGUF_TYPE_UINT32, &v);
}

vkllm_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v)
{
    return gguf_writer_set_scalar(w, key, GGUF_TYPE_INT32, &v);
}

vkllm_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v)
{
    return gguf_writer_set_scalar(w, key, GGUF_TYPE_FLOAT32, &v);
}

vkllm_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v)
{
    return gguf_writer_set_scalar(w, key, GGUF_TYPE_BOOL, &v);
}

vkllm_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v)
{
    VKLLM_TRY(check_key(key, "gguf_writer_set_str"));
    if (!v) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_set_str '%s': NULL value", key);
    byte_buf b = {0};
    uint64_t len = strlen(v);
    buf_u32(&b, GGUF_TYPE_STRING);
    buf_u64(&b, len);
    buf_put(&b, v, len);
    return store_kv(w, key, strlen(key), &b);
}

vkllm_status gguf_writer_set_array(gguf_writer *w, const char *key, gguf_value_type type, const void *data,
                                   uint64_t count)
{
    VKLLM_TRY(check_key(key, "gguf_writer_set_array"));
    uint64_t esize = gguf_type_size(type);
    if (!esize)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_set_array '%s': element type %s is not a scalar "
                                                        "type (use gguf_writer_set_str_array for strings)",
                          key, gguf_type_name(type));
    if (count > UINT64_MAX / esize || (count && !data))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_set_array '%s': %" PRIu64 " elements %s", key,
                          count, count && !data ? "with NULL data" : "overflow the byte count");
    byte_buf b = {0};
    buf_u32(&b, GGUF_TYPE_ARRAY);
    buf_u32(&b, type);
    buf_u64(&b, count);
    buf_put(&b, data, count * esize);
    return store_kv(w, key, strlen(key), &b);
}

vkllm_status gguf_writer_set_str_array(gguf_writer *w, const char *key, const char *const *strs,
                                       const uint64_t *lens, uint64_t count)
{
    VKLLM_TRY(check_key(key, "gguf_writer_set_str_array"));
    if (count && !strs)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_set_str_array '%s': NULL strings", key);
    byte_buf b = {0};
    buf_u32(&b, GGUF_TYPE_ARRAY);
    buf_u32(&b, GGUF_TYPE_STRING);
    buf_u64(&b, count);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t len = lens ? lens[i] : strlen(strs[i]);
        buf_u64(&b, len);
        buf_put(&b, strs[i], len);
    }
    return store_kv(w, key, strlen(key), &b);
}

vkllm_status gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv)
{
    if (!kv || !kv->key.data)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_copy_kv: NULL key/value");
    byte_buf b = {0};
    buf_u32(&b, kv->type);
    switch (kv->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        /* Widened values keep their low bytes on a little-endian host, two's complement included. */
        buf_put(&b, &kv->value.u64, gguf_type_size(kv->type));
        break;
    case GGUF_TYPE_FLOAT32: {
        float f = (float)kv->value.f64; /* exact: it was widened from a float */
        buf_put(&b, &f, 4);
        break;
    }
    case GGUF_TYPE_FLOAT64: buf_put(&b, &kv->value.f64, 8); break;
    case GGUF_TYPE_BOOL: {
        uint8_t byte = kv->value.b ? 1 : 0;
        buf_put(&b, &byte, 1);
        break;
    }
    case GGUF_TYPE_STRING:
        buf_u64(&b, kv->value.str.len);
        buf_put(&b, kv->value.str.data, kv->value.str.len);
        break;
    case GGUF_TYPE_ARRAY:
        /* The element bytes are copied verbatim, so nested arrays need no re-encoding. */
        buf_u32(&b, kv->value.arr.type);
        buf_u64(&b, kv->value.arr.count);
        buf_put(&b, kv->value.arr.data, kv->value.arr.size);
        break;
    default:
        free(b.data);
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_copy_kv '%.*s': unknown value type %d",
                          (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.data, (int)kv->type);
    }
    return store_kv(w, kv->key.data, kv->key.len, &b);
}

static vkllm_status check_tensor(const gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                 const uint64_t *ne, bool has_data, uint64_t size)
{
    if (!name) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_add_tensor: NULL name");
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_add_tensor '%s': duplicate tensor name", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_add_tensor '%s': n_dims %" PRIu32
                                                        " (expected 1..%d)",
                          name, n_dims, GGUF_MAX_DIMS);
    const quant_traits *traits = quant_get_traits(type);
    if (!traits)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_add_tensor '%s': unknown type %" PRIu32, name,
                          type);
    uint64_t rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX || (d > 0 && rows > (uint64_t)INT64_MAX / ne[d]))
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_add_tensor '%s': bad dimension ne[%" PRIu32
                                                            "] = %" PRIu64,
                              name, d, ne[d]);
        if (d > 0) rows *= ne[d];
    }
    uint64_t row = quant_row_size(type, ne[0]);
    if (row == 0 || row > UINT64_MAX / rows || row * rows != size)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_add_tensor '%s': %" PRIu64
                                                        " bytes given, but %s with ne[0] = %" PRIu64 " and %" PRIu64
                                                        " rows needs %" PRIu64 " (block of %" PRIu32 ")",
                          name, size, traits->name, ne[0], rows, row * rows, traits->block_elems);
    if (size && !has_data)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_add_tensor '%s': NULL data", name);
    return VKLLM_OK;
}

static vkllm_status append_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                  const uint64_t *ne, uint64_t size, writer_tensor **out)
{
    char *copy = strdup(name);
    if (!copy || !grow((void **)&w->tensors, &w->tensor_capacity, w->n_tensors + 1, sizeof *w->tensors)) {
        free(copy);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf_writer_add_tensor '%s': no memory", name);
    }
    writer_tensor *t = &w->tensors[w->n_tensors++];
    *t = (writer_tensor){.name = copy, .type = type, .n_dims = n_dims, .size = size};
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    *out = t;
    return VKLLM_OK;
}

vkllm_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                    const uint64_t *ne, const void *data, uint64_t size)
{
    VKLLM_TRY(check_tensor(w, name, type, n_dims, ne, data != NULL, size));
    writer_tensor *t = NULL;
    VKLLM_TRY(append_tensor(w, name, type, n_dims, ne, size, &t));
    t->data = data;
    return VKLLM_OK;
}

vkllm_status gguf_writer_add_tensor_stream(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                           const uint64_t *ne, uint64_t size, gguf_tensor_producer produce,
                                           void *ctx)
{
    if (!produce)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_writer_add_tensor_stream '%s': NULL producer",
                          name ? name : "(null)");
    VKLLM_TRY(check_tensor(w, name, type, n_dims, ne, true, size));
    writer_tensor *t = NULL;
    VKLLM_TRY(append_tensor(w, name, type, n_dims, ne, size, &t));
    t->produce = produce;
    t->produce_ctx = ctx;
    return VKLLM_OK;
}

static uint64_t padding(uint64_t offset, uint64_t alignment) { return (alignment - offset % alignment) % alignment; }

/* Header, metadata and tensor table, padded so the data section starts aligned. */
static void encode_header(const gguf_writer *w, byte_buf *b)
{
    buf_put(b, "GGUF", 4);
    buf_u32(b, GGUF_WRITE_VERSION);
    buf_u64(b, w->n_tensors);
    buf_u64(b, w->n_kv);
    for (uint64_t i = 0; i < w->n_kv; i++) {
        buf_u64(b, w->kv[i].key_len);
        buf_put(b, w->kv[i].key, w->kv[i].key_len);
        buf_put(b, w->kv[i].value, w->kv[i].value_size);
    }
    uint64_t offset = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        uint64_t len = strlen(t->name);
        buf_u64(b, len);
        buf_put(b, t->name, len);
        buf_u32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) buf_u64(b, t->ne[d]);
        buf_u32(b, t->type);
        buf_u64(b, offset);
        offset += t->size + padding(t->size, w->alignment);
    }
    static const uint8_t zeros[256];
    for (uint64_t pad = padding(b->size, w->alignment); pad > 0;) {
        uint64_t n = pad < sizeof zeros ? pad : sizeof zeros;
        buf_put(b, zeros, n);
        pad -= n;
    }
}

static bool write_all(FILE *fp, const void *data, uint64_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        if (fwrite(p, 1, chunk, fp) != chunk) return false;
        p += chunk;
        n -= chunk;
    }
    return true;
}

static bool write_zeros(FILE *fp, uint64_t n)
{
    static const uint8_t zeros[256];
    while (n > 0) {
        uint64_t chunk = n < sizeof zeros ? n : sizeof zeros;
        if (!write_all(fp, zeros, chunk)) return false;
        n -= chunk;
    }
    return true;
}

vkllm_status gguf_sink_write(gguf_sink *sink, const void *data, uint64_t n)
{
    if (n > sink->remaining)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf writer: the producer of tensor '%s' gave %" PRIu64
                                                        " bytes more than its size",
                          sink->tensor, n - sink->remaining);
    if (n && !data) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_sink_write '%s': NULL data", sink->tensor);
    if (!write_all(sink->fp, data, n))
        return vkllm_fail(VKLLM_ERROR_IO, "gguf writer: writing %s failed: %s", sink->path, strerror(errno));
    sink->remaining -= n;
    return VKLLM_OK;
}

static vkllm_status write_tensor_data(const gguf_writer *w, const writer_tensor *t, FILE *fp, const char *path)
{
    if (t->produce) {
        gguf_sink sink = {fp, path, t->name, t->size};
        VKLLM_TRY(t->produce(t->produce_ctx, &sink));
        if (sink.remaining)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf writer: the producer of tensor '%s' gave %" PRIu64
                                                            " of its %" PRIu64 " bytes",
                              t->name, t->size - sink.remaining, t->size);
    } else if (!write_all(fp, t->data, t->size)) {
        return vkllm_fail(VKLLM_ERROR_IO, "gguf writer: writing %s failed: %s", path, strerror(errno));
    }
    /* Every tensor is padded, the last one too, as ggml's writer does. */
    if (!write_zeros(fp, padding(t->size, w->alignment)))
        return vkllm_fail(VKLLM_ERROR_IO, "gguf writer: writing %s failed: %s", path, strerror(errno));
    return VKLLM_OK;
}

vkllm_status gguf_writer_write(gguf_writer *w, const char *path)
{
    byte_buf header = {0};
    encode_header(w, &header);
    if (header.failed) {
        free(header.data);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "gguf writer: no memory to encode the header of %s", path);
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(header.data);
        return vkllm_fail(VKLLM_ERROR_IO, "gguf writer: cannot create %s: %s", path, strerror(errno));
    }
    vkllm_status status = VKLLM_OK;
    if (!write_all(fp, header.data, header.size))
        status = vkllm_fail(VKLLM_ERROR_IO, "gguf writer: writing %s failed: %s", path, strerror(errno));
    free(header.data);
    for (uint64_t i = 0; status == VKLLM_OK && i < w->n_tensors; i++)
        status = write_tensor_data(w, &w->tensors[i], fp, path);
    if (fclose(fp) != 0 && status == VKLLM_OK)
        status = vkllm_fail(VKLLM_ERROR_IO, "gguf writer: closing %s failed: %s", path, strerror(errno));
    if (status != VKLLM_OK) remove(path);
    return status;
}
