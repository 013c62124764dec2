/* Reading and tokenizing a whole text file (text_file.h). */
#include "text_file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

vkllm_status eval_read_text(const char *path, char **text, size_t *len)
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

vkllm_status eval_tokenize_all(vkllm_model *m, const char *text, size_t len, int add_special, vkllm_token **out,
                               size_t *n)
{
    *out = NULL;
    vkllm_status st = vkllm_tokenize(m, text, len, add_special, 0, NULL, 0, n);
    if (st != VKLLM_OK && st != VKLLM_ERROR_BUFFER_TOO_SMALL) return st;
    if (!(*out = malloc((*n ? *n : 1) * sizeof **out)))
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "%zu tokens", *n);
    return vkllm_tokenize(m, text, len, add_special, 0, *out, *n, n);
}
