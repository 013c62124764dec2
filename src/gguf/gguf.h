/* GGUF files (v2 and v3): a memory-mapped reader and a writer.
 *
 * Reader: gguf_open() maps the file and validates every offset, size and count against the file size
 * before anything is exposed; a malformed or truncated file gets VKLLM_ERROR_BAD_FORMAT with a message
 * naming the file, the field and what was expected.  Strings point into the mapping (not NUL-terminated).
 * Writer: collects metadata and tensors in memory order and writes a v3 file. */
#ifndef VKLLM_GGUF_H
#define VKLLM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

typedef enum gguf_value_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_value_type;

typedef struct gguf_str {
    const char *data; /* not NUL-terminated; points into the mapping */
    uint64_t len;
} gguf_str;

typedef struct gguf_array {
    gguf_value_type type; /* element type; may itself be GGUF_TYPE_ARRAY (nested) */
    uint64_t count;
    const uint8_t *data;  /* first element in the file (raw, little-endian) */
    uint64_t size;        /* bytes the elements occupy */
} gguf_array;

typedef struct gguf_kv {
    gguf_str key;
    gguf_value_type type;
    union {
        uint64_t u64; /* UINT8..UINT64 widened */
        int64_t i64;  /* INT8..INT64 widened */
        double f64;   /* FLOAT32/FLOAT64 widened */
        bool b;
        gguf_str str;
        gguf_array arr;
    } value;
} gguf_kv;

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor_info {
    gguf_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint32_t type;              /* ggml type id (see quant/quant.h) */
    uint64_t offset;            /* from the start of the tensor data section */
    uint64_t size;              /* bytes, from the type's block layout */
    const void *data;           /* into the mapping */
} gguf_tensor_info;

typedef struct gguf_file {
    char *path;
    uint32_t version;
    uint64_t alignment;  /* general.alignment or 32 */
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor_info *tensors;
    uint64_t data_offset; /* start of tensor data in the file */
    const uint8_t *map;
    uint64_t map_size;
    bool owns_map; /* gguf_open mapped it (gguf_close unmaps); false for gguf_open_memory */
} gguf_file;

/* "uint32", "string", ... ("unknown" past the enum). */
const char *gguf_type_name(gguf_value_type type);
/* Bytes of one scalar value in the file; 0 for STRING, ARRAY and unknown types. */
uint64_t gguf_type_size(gguf_value_type type);

vkllm_status gguf_open(const char *path, gguf_file **out);
/* Same validation over a caller-owned buffer (tests, fuzzing); the buffer must outlive the result. */
vkllm_status gguf_open_memory(const void *data, uint64_t size, const char *name, gguf_file **out);
void gguf_close(gguf_file *file);

/* Lookups: NULL / -1 when absent. */
const gguf_kv *gguf_find_kv(const gguf_file *file, const char *key);
const gguf_tensor_info *gguf_find_tensor(const gguf_file *file, const char *name);

/* Typed getters: VKLLM_ERROR_BAD_FORMAT (message names key and types) if present with the wrong type,
 * VKLLM_ERROR_INVALID_ARGUMENT if absent and required; *_or variants return the fallback when absent. */
vkllm_status gguf_get_u32(const gguf_file *file, const char *key, uint32_t *out);    /* any integer type in range */
vkllm_status gguf_get_f32(const gguf_file *file, const char *key, float *out);       /* float or integer */
vkllm_status gguf_get_str(const gguf_file *file, const char *key, gguf_str *out);
vkllm_status gguf_get_array(const gguf_file *file, const char *key, gguf_array *out);
uint32_t gguf_u32_or(const gguf_file *file, const char *key, uint32_t fallback);
float gguf_f32_or(const gguf_file *file, const char *key, float fallback);
bool gguf_str_eq(gguf_str s, const char *cstr);

/* Element access into an array (bounds checked at open time; these only check the index). */
vkllm_status gguf_array_str(const gguf_array *arr, uint64_t index, gguf_str *out);  /* O(index) the first
                                                                                        time; use iterate */
/* Iterates the strings of a string array in order: *cursor starts at 0. */
bool gguf_array_next_str(const gguf_array *arr, uint64_t *cursor, gguf_str *out);
/* Iterates the inner arrays of an array of arrays (nested arrays), the same way. */
bool gguf_array_next_array(const gguf_array *arr, uint64_t *cursor, gguf_array *out);
/* Numeric (or bool) element widened; 0 for an index out of range or a non-numeric array.  The i64 form
 * saturates uint64 values above INT64_MAX and truncates floats toward zero. */
double gguf_array_f64(const gguf_array *arr, uint64_t index);
int64_t gguf_array_i64(const gguf_array *arr, uint64_t index);

/* Writer.  Setting a key that is already set replaces its value in place (insertion order is kept);
 * general.alignment must be a power-of-two uint32 and sets the alignment the writer uses. */
typedef struct gguf_writer gguf_writer;
vkllm_status gguf_writer_create(gguf_writer **out);
void gguf_writer_free(gguf_writer *w);
vkllm_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
vkllm_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
vkllm_status gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
vkllm_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
vkllm_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Any scalar type (not STRING or ARRAY); value points at one host value of that type (uint8_t, bool, double, ...). */
vkllm_status gguf_writer_set_scalar(gguf_writer *w, const char *key, gguf_value_type type, const void *value);
/* Arrays of scalars (type is the element type) or of strings (lens NULL: the strings are NUL-terminated). */
vkllm_status gguf_writer_set_array(gguf_writer *w, const char *key, gguf_value_type type, const void *data,
                                   uint64_t count);
vkllm_status gguf_writer_set_str_array(gguf_writer *w, const char *key, const char *const *strs,
                                       const uint64_t *lens, uint64_t count);
/* Copies a key/value verbatim from an open file (any type, nested arrays included). */
vkllm_status gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
/* Adds a tensor; data is copied at gguf_writer_write time, so it must stay valid until then.
 * ne has n_dims entries; size must match the type's layout. */
vkllm_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                    const uint64_t *ne, const void *data, uint64_t size);
/* Streaming tensors: the bytes are produced at gguf_writer_write time, in file order, so a file larger
 * than memory (a 7B model) can be written tensor by tensor.  The producer must hand exactly `size` bytes to
 * gguf_sink_write, in as many calls as it likes; more or fewer is an error that fails the write. */
typedef struct gguf_sink gguf_sink;
typedef vkllm_status (*gguf_tensor_producer)(void *ctx, gguf_sink *sink);
vkllm_status gguf_writer_add_tensor_stream(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                           const uint64_t *ne, uint64_t size, gguf_tensor_producer produce,
                                           void *ctx);
vkllm_status gguf_sink_write(gguf_sink *sink, const void *data, uint64_t n);
vkllm_status gguf_writer_write(gguf_writer *w, const char *path);

#endif
