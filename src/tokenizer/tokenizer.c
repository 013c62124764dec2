/* Encoding entry point (special-token partition, BOS/EOS, SPM or BPE per text fragment), pieces and
 * decoding, following llama.cpp's llama_vocab::impl::tokenize / token_to_piece / detokenize. */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "tokenizer_internal.h"
#include "utf8.h"
#include "vocab.h"

void tokenizer_free(tokenizer *t) { vocab_free(t); }

/* ---- special-token partition ---- */

/* A piece of the input: raw text [offset, offset + len), or a special token matched in it. */
typedef struct fragment {
    int32_t token; /* TOKEN_NONE for text */
    size_t offset, len;
} fragment;

typedef struct fragment_list {
    fragment *items;
    size_t n, cap;
} fragment_list;

static vkllm_status fragment_push(fragment_list *list, fragment f)
{
    if (list->n == list->cap) {
        const size_t cap = list->cap ? list->cap * 2 : 16;
        fragment *grown = realloc(list->items, cap * sizeof *grown);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: no memory for %zu fragments", cap);
        list->items = grown;
        list->cap = cap;
    }
    list->items[list->n++] = f;
    return VKLLM_OK;
}

static const char *find_bytes(const char *hay, size_t hay_len, const char *needle, size_t needle_len)
{
    if (needle_len > hay_len) return NULL;
    const char *last = hay + (hay_len - needle_len);
    for (const char *p = hay; p <= last; p++) {
        p = memchr(p, needle[0], (size_t)(last - p) + 1);
        if (!p) return NULL;
        if (memcmp(p, needle, needle_len) == 0) return p;
    }
    return NULL;
}

/* Splits every text fragment of `in` around the occurrences of one special token. */
static vkllm_status split_on_token(const vocab *v, const char *text, int32_t id, const fragment_list *in,
                                   fragment_list *out)
{
    const char *needle = vocab_token_text(v, id);
    const size_t needle_len = v->tokens[id].len;
    for (size_t i = 0; i < in->n; i++) {
        fragment f = in->items[i];
        if (f.token != TOKEN_NONE) {
            VKLLM_TRY(fragment_push(out, f));
            continue;
        }
        const char *match;
        while (f.len > 0 && (match = find_bytes(text + f.offset, f.len, needle, needle_len)) != NULL) {
            const size_t before = (size_t)(match - (text + f.offset));
            if (before > 0) VKLLM_TRY(fragment_push(out, (fragment){TOKEN_NONE, f.offset, before}));
            VKLLM_TRY(fragment_push(out, (fragment){id, 0, 0}));
            f.offset += before + needle_len;
            f.len -= before + needle_len;
        }
        if (f.len > 0) VKLLM_TRY(fragment_push(out, f));
    }
    return VKLLM_OK;
}

/* llama.cpp's tokenizer_st_partition: special tokens, longest first, are cut out of the text; control
 * and unknown tokens only when parse_special. */
static vkllm_status partition(const vocab *v, const char *text, size_t len, bool parse_special, fragment_list *out)
{
    fragment_list current = {0};
    if (len > 0) VKLLM_TRY(fragment_push(&current, (fragment){TOKEN_NONE, 0, len}));
    vkllm_status status = VKLLM_OK;
    for (uint32_t i = 0; i < v->n_special && status == VKLLM_OK; i++) {
        const int32_t id = v->special[i];
        if (!parse_special && (v->tokens[id].attr & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN))) continue;
        fragment_list next = {0};
        status = split_on_token(v, text, id, &current, &next);
        free(current.items);
        current = next;
    }
    if (status != VKLLM_OK) {
        free(current.items);
        return status;
    }
    *out = current;
    return VKLLM_OK;
}

/* ---- encode ---- */

/* SentencePiece sees spaces as U+2581, with one more in front when add_space_prefix asks for it. */
static vkllm_status spm_fragment(const vocab *v, const char *text, size_t len, bool prefix_space, token_buffer *out)
{
    size_t spaces = prefix_space;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    char *escaped = malloc(len + 2 * spaces + 1);
    if (!escaped) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: no memory for %zu bytes", len);
    size_t n = 0;
    if (prefix_space) {
        memcpy(escaped, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(escaped + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            escaped[n++] = text[i];
        }
    }
    const vkllm_status status = spm_tokenize(v, escaped, n, out);
    free(escaped);
    return status;
}

static vkllm_status encode_fragments(const vocab *v, const char *text, const fragment_list *fragments,
                                     bool add_special, token_buffer *out)
{
    if (add_special && v->add_bos) {
        if (v->bos == TOKEN_NONE)
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "tokenizer: the vocabulary asks for BOS but has no BOS id");
        VKLLM_TRY(token_buffer_push(out, v->bos));
    }
    bool prev_special = true; /* the start of the input counts as following a special token */
    for (size_t i = 0; i < fragments->n; i++) {
        const fragment *f = &fragments->items[i];
        if (f->token != TOKEN_NONE) {
            VKLLM_TRY(token_buffer_push(out, f->token));
            prev_special = true;
            continue;
        }
        if (v->kind == VOCAB_SPM)
            VKLLM_TRY(spm_fragment(v, text + f->offset, f->len, v->add_space_prefix && prev_special, out));
        else
            VKLLM_TRY(bpe_tokenize(v, text + f->offset, f->len, out));
        prev_special = false;
    }
    if (add_special && v->add_eos) {
        if (v->eos == TOKEN_NONE)
            return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "tokenizer: the vocabulary asks for EOS but has no EOS id");
        VKLLM_TRY(token_buffer_push(out, v->eos));
    }
    return VKLLM_OK;
}

vkllm_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t *ids, size_t capacity, size_t *n_ids)
{
    *n_ids = 0;
    if (!text && len > 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tokenizer_encode: text is NULL");
    if (!ids && capacity > 0) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tokenizer_encode: ids is NULL");
    fragment_list fragments = {0};
    token_buffer out = {0};
    vkllm_status status = partition(t, text, len, parse_special, &fragments);
    if (status == VKLLM_OK) status = encode_fragments(t, text, &fragments, add_special, &out);
    if (status == VKLLM_OK) {
        *n_ids = out.n;
        if (out.n > capacity)
            status = vkllm_fail(VKLLM_ERROR_BUFFER_TOO_SMALL, "tokenizer_encode: %zu ids do not fit in %zu", out.n,
                                capacity);
        else if (out.n > 0)
            memcpy(ids, out.ids, out.n * sizeof *ids);
    }
    free(fragments.items);
    free(out.ids);
    return status;
}

/* ---- pieces and decoding ---- */

/* Bytes written to buf (up to capacity) and counted in total, so callers learn the size they need. */
typedef struct byte_sink {
    char *buf;
    size_t capacity, total;
    bool lstrip; /* drop a space if it is the next byte put (llama.cpp's lstrip of the first piece) */
} byte_sink;

static void sink_put(byte_sink *s, const char *bytes, size_t n)
{
    if (n == 0) return;
    if (s->lstrip) {
        s->lstrip = false;
        if (bytes[0] == ' ') {
            bytes++;
            n--;
        }
    }
    if (s->total < s->capacity) {
        const size_t room = s->capacity - s->total;
        memcpy(s->buf + s->total, bytes, n < room ? n : room);
    }
    s->total += n;
}

/* U+2581 -> space. */
static void put_unescaped(byte_sink *s, const char *text, size_t len)
{
    for (size_t i = 0; i < len;) {
        if (len - i >= 3 && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
            sink_put(s, " ", 1);
            i += 3;
        } else {
            sink_put(s, text + i, 1);
            i++;
        }
    }
}

/* GPT-2 code points -> bytes; a code point outside the map is written as llama.cpp does. */
static void put_gpt2_decoded(byte_sink *s, const char *text, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t offset = 0; offset < len;) {
        const size_t start = offset;
        const int byte = gpt2_cpt_to_byte(utf8_decode(text, len, &offset));
        if (byte >= 0) {
            const char b = (char)byte;
            sink_put(s, &b, 1);
            continue;
        }
        sink_put(s, "[UNK_BYTE_0x", 12);
        for (size_t i = start; i < offset; i++) {
            const char pair[2] = {hex[(uint8_t)text[i] >> 4], hex[(uint8_t)text[i] & 15]};
            sink_put(s, pair, 2);
        }
        sink_put(s, text, len);
        sink_put(s, "]", 1);
    }
}

static uint8_t byte_token_value(const char *text)
{
    return (uint8_t)strtol((const char[]){text[3], text[4], '\0'}, NULL, 16);
}

/* One token's bytes into the sink. */
static void put_piece(const vocab *v, int32_t id, bool special, byte_sink *s)
{
    const vocab_token *tok = &v->tokens[id];
    const char *text = vocab_token_text(v, id);
    const uint32_t attr = tok->attr;
    if (attr & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_USER_DEFINED)) {
        if (special || !(attr & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN))) sink_put(s, text, tok->len);
    } else if (attr & TOKEN_ATTR_NORMAL) {
        if (v->kind == VOCAB_SPM) put_unescaped(s, text, tok->len);
        else put_gpt2_decoded(s, text, tok->len);
    } else if ((attr & TOKEN_ATTR_BYTE) && tok->len == 6) {
        const char b = (char)byte_token_value(text);
        sink_put(s, &b, 1);
    }
    s->lstrip = false; /* only the first piece is stripped, even when it is empty */
}

static vkllm_status check_id(const vocab *v, int32_t id, const char *where)
{
    if (id < 0 || (uint32_t)id >= v->n_tokens)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: token id %d outside the vocabulary of %u", where, id,
                          v->n_tokens);
    return VKLLM_OK;
}

static vkllm_status finish_sink(const byte_sink *s, size_t *n_bytes, const char *where)
{
    *n_bytes = s->total;
    if (s->total > s->capacity)
        return vkllm_fail(VKLLM_ERROR_BUFFER_TOO_SMALL, "%s: %zu bytes do not fit in %zu", where, s->total,
                          s->capacity);
    return VKLLM_OK;
}

vkllm_status tokenizer_token_piece(const tokenizer *t, int32_t id, bool special, char *buf, size_t capacity,
                                   size_t *n_bytes)
{
    *n_bytes = 0;
    VKLLM_TRY(check_id(t, id, "tokenizer_token_piece"));
    byte_sink s = {.buf = buf, .capacity = buf ? capacity : 0};
    put_piece(t, id, special, &s);
    return finish_sink(&s, n_bytes, "tokenizer_token_piece");
}

/* llama.cpp's clean_up_tokenization_spaces, in place over n bytes; returns the new length. */
static size_t clean_spaces(char *text, size_t n)
{
    size_t total = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) { /* " ?", " !", " .", " ," */
        const char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) total--;
        text[total++] = x;
    }
    n = total;
    total = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) { /* " ' " -> "'" */
        const char x = text[i];
        if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ') {
            total--;
            text[++i] = '\0';
        }
        text[total++] = x;
    }
    n = total;
    total = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) { /* " 's", " 'm", " 're", " 've" lose the space */
        const char x = text[i];
        if (text[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            const char x1 = text[i + 1];
            if (x1 == 's' || x1 == 'm') total--;
            else if (i + 2 < n && ((x1 == 'r' && text[i + 2] == 'e') || (x1 == 'v' && text[i + 2] == 'e'))) total--;
        }
        text[total++] = x;
    }
    return total;
}

vkllm_status tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n_ids, bool remove_special,
                              bool unparse_special, char *buf, size_t capacity, size_t *n_bytes)
{
    *n_bytes = 0;
    for (size_t i = 0; i < n_ids; i++) VKLLM_TRY(check_id(t, ids[i], "tokenizer_decode"));
    /* The encoder's prefix space goes, unless a BOS comes first: llama.cpp keeps it then. */
    bool remove_space = t->add_space_prefix;
    if (remove_special && t->add_bos && n_ids > 0 && ids[0] == t->bos) {
        remove_space = false;
        ids++;
        n_ids--;
    }
    if (remove_special && t->add_eos && n_ids > 0 && ids[n_ids - 1] == t->eos) n_ids--;

    byte_sink s = {.buf = buf, .capacity = buf ? capacity : 0};
    s.lstrip = remove_space;
    for (size_t i = 0; i < n_ids; i++) put_piece(t, ids[i], unparse_special, &s);
    if (t->clean_spaces && s.total <= s.capacity) s.total = clean_spaces(buf, s.total);
    /* Cleaning only shortens text, so a size reported as too small stays a safe upper bound. */
    return finish_sink(&s, n_bytes, "tokenizer_decode");
}

uint32_t tokenizer_n_vocab(const tokenizer *t) { return t->n_tokens; }
int32_t tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer *t) { return t->eos; }
bool tokenizer_is_eog(const tokenizer *t, int32_t id) { return vocab_is_eog(t, id); }
