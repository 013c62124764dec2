/* Shared by the tokenizer tests: llama.cpp's vocabulary test cases (ggml-vocab-*.gguf.inp / .out, read
 * as its tests/test-tokenizer-0.cpp reads them) and a runner that compares vkllm's ids with them.
 * Header-only (static inline) so that each test program takes just what it uses. */
#ifndef VKLLM_TESTS_TOKENIZER_CASES_H
#define VKLLM_TESTS_TOKENIZER_CASES_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

typedef struct vocab_case {
    const char *text; /* into vocab_cases.inp, not NUL-terminated */
    size_t len;
    int32_t *ids;
    size_t n_ids;
} vocab_case;

typedef struct vocab_cases {
    char *inp;
    vocab_case *items;
    size_t n;
} vocab_cases;

static inline char *read_whole_file(const char *path, size_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *data = malloc(cap + 1);
    size_t got;
    while (data && (got = fread(data + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *grown = realloc(data, 2 * cap + 1);
            if (!grown) {
                free(data);
                data = NULL;
                break;
            }
            data = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (data) data[n] = '\0';
    *size = n;
    return data;
}

static inline void vocab_cases_free(vocab_cases *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->items[i].ids);
    free(c->items);
    free(c->inp);
    *c = (vocab_cases){0};
}

/* Parses one .out line: ids separated by spaces (leading/trailing blanks ignored). */
static inline bool parse_ids(const char *line, const char *end, vocab_case *c)
{
    size_t cap = 16;
    c->ids = malloc(cap * sizeof *c->ids);
    c->n_ids = 0;
    while (c->ids) {
        while (line < end && (*line == ' ' || *line == '\r')) line++;
        if (line >= end) return true;
        char *stop;
        const long id = strtol(line, &stop, 10);
        if (stop == line) return false;
        if (c->n_ids == cap) {
            int32_t *grown = realloc(c->ids, 2 * cap * sizeof *grown);
            if (!grown) return false;
            c->ids = grown;
            cap *= 2;
        }
        c->ids[c->n_ids++] = (int32_t)id;
        line = stop;
    }
    return false;
}

/* Inputs are separated by "\n__ggml_vocab_test__\n"; expected ids are one line per input. */
static inline bool vocab_cases_load(const char *inp_path, const char *out_path, vocab_cases *c)
{
    static const char sep[] = "\n__ggml_vocab_test__\n";
    *c = (vocab_cases){0};
    size_t inp_size = 0, out_size = 0;
    c->inp = read_whole_file(inp_path, &inp_size);
    char *out = read_whole_file(out_path, &out_size);
    if (!c->inp || !out) {
        free(out);
        vocab_cases_free(c);
        return false;
    }
    size_t lines = 0;
    for (size_t i = 0; i < out_size; i++) lines += out[i] == '\n';
    c->items = calloc(lines + 1, sizeof *c->items);
    bool ok = c->items != NULL;
    size_t pos = 0;
    while (ok && pos < inp_size) {
        const char *next = strstr(c->inp + pos, sep);
        const size_t len = next ? (size_t)(next - (c->inp + pos)) : inp_size - pos;
        if (c->n == lines + 1) {
            ok = false;
            break;
        }
        c->items[c->n].text = c->inp + pos;
        c->items[c->n++].len = len;
        pos += len + (next ? sizeof sep - 1 : 0);
    }
    const char *line = out;
    for (size_t i = 0; ok && i < c->n; i++) {
        const char *end = memchr(line, '\n', (size_t)(out + out_size - line));
        if (!end) end = out + out_size;
        ok = parse_ids(line, end, &c->items[i]);
        line = end < out + out_size ? end + 1 : end;
    }
    ok = ok && c->n == lines;
    free(out);
    if (!ok) vocab_cases_free(c);
    return ok;
}

/* Undoes the fixture's escapes (\\ \n \r \t) in place; returns the new length. */
static inline size_t unescape(char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' && i + 1 < len) {
            const char c = s[++i];
            s[n++] = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
        } else {
            s[n++] = s[i];
        }
    }
    return n;
}

/* Fixtures in tests/data/tokenizer: reads the "text:" / "ids:" line pairs into cases whose texts point
 * into data. */
static inline bool load_fixture(char *data, size_t size, vocab_cases *cases)
{
    size_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    *cases = (vocab_cases){.items = calloc(lines + 1, sizeof *cases->items)};
    if (!cases->items) return false;
    char *text = NULL;
    size_t text_len = 0;
    for (char *line = data; line < data + size;) {
        char *end = memchr(line, '\n', (size_t)(data + size - line));
        if (!end) end = data + size;
        if (strncmp(line, "text: ", 6) == 0) {
            text = line + 6;
            text_len = unescape(text, (size_t)(end - text));
        } else if (strncmp(line, "ids:", 4) == 0) {
            if (!text) return false;
            vocab_case *c = &cases->items[cases->n++];
            *c = (vocab_case){.text = text, .len = text_len};
            if (!parse_ids(line + 4, end, c)) return false;
            text = NULL;
        }
        line = end + 1;
    }
    return true;
}

static inline void print_ids(const char *label, const int32_t *ids, size_t n)
{
    printf("  %s:", label);
    for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
}

/* Encodes every case (add_special = false, parse_special = false, as test-tokenizer-0 does) and compares;
 * with round_trip, also decodes the expected ids and compares with the input.  Prints each failure and
 * returns how many cases failed. */
static inline size_t run_vocab_cases(const tokenizer *t, const vocab_cases *c, bool round_trip, const char *name)
{
    size_t failed = 0, round_trip_failed = 0;
    for (size_t i = 0; i < c->n; i++) {
        const vocab_case *vc = &c->items[i];
        size_t n = 0, cap = vc->len * 2 + 16;
        int32_t *ids = malloc(cap * sizeof *ids);
        const vkllm_status status = tokenizer_encode(t, vc->text, vc->len, false, false, ids, cap, &n);
        const bool same = status == VKLLM_OK && n == vc->n_ids && memcmp(ids, vc->ids, n * sizeof *ids) == 0;
        if (!same) {
            failed++;
            printf("%s case %zu failed (status %s): '%.*s'\n", name, i, vkllm_status_name(status), (int)vc->len,
                   vc->text);
            print_ids("expected", vc->ids, vc->n_ids);
            print_ids("got     ", ids, n);
        }
        free(ids);
        if (round_trip) {
            size_t n_bytes = 0;
            char *text = malloc(vc->len * 4 + 64);
            const vkllm_status decoded =
                tokenizer_decode(t, vc->ids, vc->n_ids, false, false, text, vc->len * 4 + 64, &n_bytes);
            if (decoded != VKLLM_OK || n_bytes != vc->len || memcmp(text, vc->text, n_bytes) != 0) {
                round_trip_failed++;
                printf("%s case %zu does not decode back: '%.*s' -> '%.*s'\n", name, i, (int)vc->len, vc->text,
                       (int)n_bytes, text);
            }
            free(text);
        }
    }
    printf("%s: %zu of %zu cases match llama.cpp", name, c->n - failed, c->n);
    if (round_trip) printf(", %zu of %zu decode back", c->n - round_trip_failed, c->n);
    printf("\n");
    return failed + round_trip_failed;
}

#endif
