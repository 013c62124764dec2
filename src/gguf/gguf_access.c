/* GGUF lookups: finding keys and tensors, typed getters, and element access into validated arrays. */
#include <inttypes.h>
#include <string.h>

#include "gguf.h"
#include "runtime/error.h"

const char *gguf_type_name(gguf_value_type type)
{
    static const char *const names[GGUF_TYPE_COUNT] = {
        [GGUF_TYPE_UINT8] = "uint8",     [GGUF_TYPE_INT8] = "int8",     [GGUF_TYPE_UINT16] = "uint16",
        [GGUF_TYPE_INT16] = "int16",     [GGUF_TYPE_UINT32] = "uint32", [GGUF_TYPE_INT32] = "int32",
        [GGUF_TYPE_FLOAT32] = "float32", [GGUF_TYPE_BOOL] = "bool",     [GGUF_TYPE_STRING] = "string",
        [GGUF_TYPE_ARRAY] = "array",     [GGUF_TYPE_UINT64] = "uint64", [GGUF_TYPE_INT64] = "int64",
        [GGUF_TYPE_FLOAT64] = "float64",
    };
    return (unsigned)type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

uint64_t gguf_type_size(gguf_value_type type)
{
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

bool gguf_str_eq(gguf_str s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.data, cstr, n) == 0;
}

const gguf_kv *gguf_find_kv(const gguf_file *file, const char *key)
{
    for (uint64_t i = 0; i < file->n_kv; i++)
        if (gguf_str_eq(file->kv[i].key, key)) return &file->kv[i];
    return NULL;
}

const gguf_tensor_info *gguf_find_tensor(const gguf_file *file, const char *name)
{
    for (uint64_t i = 0; i < file->n_tensors; i++)
        if (gguf_str_eq(file->tensors[i].name, name)) return &file->tensors[i];
    return NULL;
}

static bool is_unsigned(gguf_value_type t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}

static bool is_signed(gguf_value_type t)
{
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

static bool is_float(gguf_value_type t) { return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64; }

static vkllm_status require(const gguf_file *file, const char *key, const gguf_kv **out)
{
    *out = gguf_find_kv(file, key);
    if (!*out)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf: %s: required key '%s' is missing", file->path, key);
    return VKLLM_OK;
}

static vkllm_status wrong_type(const gguf_file *file, const gguf_kv *kv, const char *expected)
{
    return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "gguf: %s: key '%.*s' has type %s (expected %s)", file->path,
                      (int)(kv->key.len > 64 ? 64 : kv->key.len), kv->key.data, gguf_type_name(kv->type), expected);
}

vkllm_status gguf_get_u32(const gguf_file *file, const char *key, uint32_t *out)
{
    const gguf_kv *kv;
    VKLLM_TRY(require(file, key, &kv));
    if (is_unsigned(kv->type) && kv->value.u64 <= UINT32_MAX) {
        *out = (uint32_t)kv->value.u64;
        return VKLLM_OK;
    }
    if (is_signed(kv->type) && kv->value.i64 >= 0 && kv->value.i64 <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)kv->value.i64;
        return VKLLM_OK;
    }
    if (is_unsigned(kv->type))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "gguf: %s: key '%s' = %" PRIu64 " does not fit uint32", file->path,
                          key, kv->value.u64);
    if (is_signed(kv->type))
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "gguf: %s: key '%s' = %" PRId64 " does not fit uint32", file->path,
                          key, kv->value.i64);
    return wrong_type(file, kv, "an integer");
}

vkllm_status gguf_get_f32(const gguf_file *file, const char *key, float *out)
{
    const gguf_kv *kv;
    VKLLM_TRY(require(file, key, &kv));
    if (is_float(kv->type)) *out = (float)kv->value.f64;
    else if (is_unsigned(kv->type)) *out = (float)kv->value.u64;
    else if (is_signed(kv->type)) *out = (float)kv->value.i64;
    else return wrong_type(file, kv, "a float or integer");
    return VKLLM_OK;
}

vkllm_status gguf_get_str(const gguf_file *file, const char *key, gguf_str *out)
{
    const gguf_kv *kv;
    VKLLM_TRY(require(file, key, &kv));
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(file, kv, "string");
    *out = kv->value.str;
    return VKLLM_OK;
}

vkllm_status gguf_get_array(const gguf_file *file, const char *key, gguf_array *out)
{
    const gguf_kv *kv;
    VKLLM_TRY(require(file, key, &kv));
    if (kv->type != GGUF_TYPE_ARRAY) return wrong_type(file, kv, "array");
    *out = kv->value.arr;
    return VKLLM_OK;
}

uint32_t gguf_u32_or(const gguf_file *file, const char *key, uint32_t fallback)
{
    uint32_t v;
    if (!gguf_find_kv(file, key)) return fallback;
    return gguf_get_u32(file, key, &v) == VKLLM_OK ? v : fallback;
}

float gguf_f32_or(const gguf_file *file, const char *key, float fallback)
{
    float v;
    if (!gguf_find_kv(file, key)) return fallback;
    return gguf_get_f32(file, key, &v) == VKLLM_OK ? v : fallback;
}

/* Parses the array header at p (at most `left` bytes) and the span of its elements.  The reader has
 * validated the whole array at open time; the bounds are rechecked so a hand-built gguf_array cannot
 * lead outside its bytes. */
static bool parse_inner_array(const uint8_t *p, uint64_t left, gguf_array *out, uint64_t *consumed);

static bool element_span(const uint8_t *p, uint64_t left, gguf_value_type type, uint64_t *span)
{
    if (type == GGUF_TYPE_STRING) {
        uint64_t len;
        if (left < 8) return false;
        memcpy(&len, p, 8);
        if (len > left - 8) return false;
        *span = 8 + len;
        return true;
    }
    if (type == GGUF_TYPE_ARRAY) {
        gguf_array inner;
        return parse_inner_array(p, left, &inner, span);
    }
    *span = gguf_type_size(type);
    return *span != 0 && *span <= left;
}

static bool parse_inner_array(const uint8_t *p, uint64_t left, gguf_array *out, uint64_t *consumed)
{
    uint32_t type;
    uint64_t count, used = 12;
    if (left < 12) return false;
    memcpy(&type, p, 4);
    memcpy(&count, p + 4, 8);
    if (type >= GGUF_TYPE_COUNT) return false;
    uint64_t esize = gguf_type_size((gguf_value_type)type);
    if (esize) {
        if (count > (left - used) / esize) return false;
        used += count * esize;
    } else {
        for (uint64_t i = 0; i < count; i++) {
            uint64_t span;
            if (!element_span(p + used, left - used, (gguf_value_type)type, &span)) return false;
            used += span;
        }
    }
    *out = (gguf_array){(gguf_value_type)type, count, p + 12, used - 12};
    *consumed = used;
    return true;
}

bool gguf_array_next_str(const gguf_array *arr, uint64_t *cursor, gguf_str *out)
{
    uint64_t span;
    if (arr->type != GGUF_TYPE_STRING || *cursor >= arr->size) return false;
    if (!element_span(arr->data + *cursor, arr->size - *cursor, GGUF_TYPE_STRING, &span)) return false;
    uint64_t len = span - 8;
    *out = (gguf_str){(const char *)arr->data + *cursor + 8, len};
    *cursor += span;
    return true;
}

bool gguf_array_next_array(const gguf_array *arr, uint64_t *cursor, gguf_array *out)
{
    uint64_t span;
    if (arr->type != GGUF_TYPE_ARRAY || *cursor >= arr->size) return false;
    if (!parse_inner_array(arr->data + *cursor, arr->size - *cursor, out, &span)) return false;
    *cursor += span;
    return true;
}

vkllm_status gguf_array_str(const gguf_array *arr, uint64_t index, gguf_str *out)
{
    if (arr->type != GGUF_TYPE_STRING)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_array_str: array holds %s, not strings",
                          gguf_type_name(arr->type));
    if (index >= arr->count)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "gguf_array_str: index %" PRIu64 " out of range (count %" PRIu64
                                                        ")",
                          index, arr->count);
    uint64_t cursor = 0;
    for (uint64_t i = 0; i <= index; i++)
        if (!gguf_array_next_str(arr, &cursor, out))
            return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "gguf_array_str: string %" PRIu64 " runs past the array", i);
    return VKLLM_OK;
}

/* Saturating, so a float element out of int64's range (or NaN) cannot cause undefined behaviour. */
static int64_t float_to_i64(double x)
{
    if (x != x) return 0;
    if (x >= 9223372036854775808.0) return INT64_MAX;
    if (x < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

/* Reads scalar element `index` widened; false for a non-numeric array or an index out of range. */
static bool scalar_at(const gguf_array *arr, uint64_t index, double *as_f64, int64_t *as_i64)
{
    uint64_t esize = gguf_type_size(arr->type);
    if (!esize || index >= arr->count || index >= arr->size / esize) return false;
    const uint8_t *p = arr->data + index * esize;
    union {
        uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
        uint64_t u64; int64_t i64; float f32; double f64;
    } v;
    memcpy(&v, p, (size_t)esize);
    switch (arr->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: *as_i64 = v.u8; *as_f64 = v.u8; break;
    case GGUF_TYPE_INT8: *as_i64 = v.i8; *as_f64 = v.i8; break;
    case GGUF_TYPE_UINT16: *as_i64 = v.u16; *as_f64 = v.u16; break;
    case GGUF_TYPE_INT16: *as_i64 = v.i16; *as_f64 = v.i16; break;
    case GGUF_TYPE_UINT32: *as_i64 = v.u32; *as_f64 = v.u32; break;
    case GGUF_TYPE_INT32: *as_i64 = v.i32; *as_f64 = v.i32; break;
    case GGUF_TYPE_UINT64:
        *as_i64 = v.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v.u64;
        *as_f64 = (double)v.u64;
        break;
    case GGUF_TYPE_INT64: *as_i64 = v.i64; *as_f64 = (double)v.i64; break;
    case GGUF_TYPE_FLOAT32: *as_f64 = v.f32; *as_i64 = float_to_i64(v.f32); break;
    case GGUF_TYPE_FLOAT64: *as_f64 = v.f64; *as_i64 = float_to_i64(v.f64); break;
    default: return false;
    }
    return true;
}

double gguf_array_f64(const gguf_array *arr, uint64_t index)
{
    double f;
    int64_t i;
    return scalar_at(arr, index, &f, &i) ? f : 0.0;
}

int64_t gguf_array_i64(const gguf_array *arr, uint64_t index)
{
    double f;
    int64_t i;
    return scalar_at(arr, index, &f, &i) ? i : 0;
}
