/* Fuzz target `gguf`: the fuzz input is a GGUF file.  gguf_open_memory validates it; whatever it accepts
 * must then be safe to walk: every key and value (strings, numeric arrays, string arrays, nested arrays),
 * every lookup, every tensor's bytes (the first and last are read, so AddressSanitizer sees any tensor that
 * would reach past the file), the model configuration a forward pass reads (model_config_read) and the
 * tokenizer the file describes (tokenizer_create_from_gguf, then a short text through it). */
#include <string.h>

#include "fuzz.h"
#include "gguf/gguf.h"
#include "model/model_config.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static volatile uint8_t sink; /* keeps the reads below */

static void touch(const void *p, uint64_t n)
{
    if (n == 0) return;
    sink ^= ((const uint8_t *)p)[0];
    sink ^= ((const uint8_t *)p)[n - 1];
}

static void walk_array(const gguf_array *arr, int depth)
{
    touch(arr->data, arr->size);
    if (arr->type == GGUF_TYPE_STRING) {
        uint64_t cursor = 0, count = 0;
        gguf_str s;
        while (gguf_array_next_str(arr, &cursor, &s)) touch(s.data, s.len), count++;
        FUZZ_CHECK(count == arr->count);
        if (arr->count) FUZZ_CHECK(gguf_array_str(arr, arr->count - 1, &s) == VKLLM_OK);
        FUZZ_CHECK(gguf_array_str(arr, arr->count, &s) != VKLLM_OK);
    } else if (arr->type == GGUF_TYPE_ARRAY) {
        uint64_t cursor = 0, count = 0;
        gguf_array inner;
        while (gguf_array_next_array(arr, &cursor, &inner)) {
            if (depth < 8) walk_array(&inner, depth + 1);
            count++;
        }
        FUZZ_CHECK(count == arr->count);
    } else {
        /* Numeric: the first, the last and one past the end (0 by contract). */
        double f = gguf_array_f64(arr, 0);
        uint64_t i = (uint64_t)gguf_array_i64(arr, 0); /* unsigned: the sum below may wrap */
        if (arr->count) f += gguf_array_f64(arr, arr->count - 1), i += (uint64_t)gguf_array_i64(arr, arr->count - 1);
        FUZZ_CHECK(gguf_array_f64(arr, arr->count) == 0 && gguf_array_i64(arr, arr->count) == 0);
        sink ^= (uint8_t)(i + (f == f));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = NULL;
    if (gguf_open_memory(data, size, "fuzz.gguf", &f) != VKLLM_OK) {
        FUZZ_CHECK(f == NULL);
        return 0;
    }
    char key[256];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        touch(kv->key.data, kv->key.len);
        (void)gguf_type_name(kv->type);
        if (kv->type == GGUF_TYPE_STRING) touch(kv->value.str.data, kv->value.str.len);
        if (kv->type == GGUF_TYPE_ARRAY) walk_array(&kv->value.arr, 0);
        /* Lookups by the key's own text (keys with a NUL inside cannot be named, skip them). */
        if (kv->key.len < sizeof key && !memchr(kv->key.data, 0, kv->key.len)) {
            memcpy(key, kv->key.data, kv->key.len);
            key[kv->key.len] = '\0';
            FUZZ_CHECK(gguf_find_kv(f, key) != NULL);
            uint32_t u;
            float x;
            gguf_str s;
            gguf_array a;
            (void)gguf_get_u32(f, key, &u);
            (void)gguf_get_f32(f, key, &x);
            (void)gguf_get_str(f, key, &s);
            (void)gguf_get_array(f, key, &a);
            (void)gguf_u32_or(f, key, 7);
            (void)gguf_f32_or(f, key, 7.0f);
        }
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        FUZZ_CHECK(t->n_dims <= GGUF_MAX_DIMS);
        touch(t->name.data, t->name.len);
        touch(t->data, t->size);
        if (t->name.len < sizeof key && !memchr(t->name.data, 0, t->name.len)) {
            memcpy(key, t->name.data, t->name.len);
            key[t->name.len] = '\0';
            FUZZ_CHECK(gguf_find_tensor(f, key) != NULL);
        }
    }
    model_config config;
    (void)model_config_read(f, &config);

    tokenizer *tok = NULL;
    if (tokenizer_create_from_gguf(f, &tok) == VKLLM_OK) {
        static const char text[] = "Hello world, <s> 123 \xe2\x96\x81 \xff";
        int32_t ids[128];
        size_t n = 0;
        if (tokenizer_encode(tok, text, sizeof text - 1, true, true, ids, 128, &n) == VKLLM_OK) {
            char out[1024];
            size_t got = 0;
            (void)tokenizer_decode(tok, ids, n, false, true, out, sizeof out, &got);
        }
        tokenizer_free(tok);
    }
    gguf_close(f);
    return 0;
}
