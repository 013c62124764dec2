#include "vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

/* ---- building ---- */

vkllm_status vocab_create(vocab_kind kind, uint32_t n_tokens, vocab **out)
{
    *out = NULL;
    if (n_tokens == 0 || n_tokens > (uint32_t)INT32_MAX)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vocab: %u tokens, expected 1..%d", n_tokens, INT32_MAX);
    vocab *v = calloc(1, sizeof *v);
    if (!v) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vocab: no memory for the vocabulary");
    v->kind = kind;
    v->pre = VOCAB_PRE_DEFAULT;
    v->n_tokens = n_tokens;
    v->tokens = calloc(n_tokens, sizeof *v->tokens);
    if (!v->tokens) {
        free(v);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vocab: no memory for %u tokens", n_tokens);
    }
    v->eot = v->eom = v->pad = TOKEN_NONE;
    if (kind == VOCAB_SPM) {
        v->bos = 1;
        v->eos = 2;
        v->unk = 0;
        v->add_bos = true;
        v->add_space_prefix = true;
    } else {
        v->bos = v->eos = 11;
        v->unk = TOKEN_NONE;
        v->clean_spaces = true;
    }
    if (v->bos >= (int32_t)n_tokens) v->bos = TOKEN_NONE;
    if (v->eos >= (int32_t)n_tokens) v->eos = TOKEN_NONE;
    if (v->unk >= (int32_t)n_tokens) v->unk = TOKEN_NONE;
    *out = v;
    return VKLLM_OK;
}

void vocab_free(vocab *v)
{
    if (!v) return;
    free(v->tokens);
    free(v->text);
    free(v->merges);
    free(v->merge_text);
    free(v->by_text.slots);
    free(v->by_merge.slots);
    free(v->special);
    free(v->eog);
    free(v);
}

/* Appends bytes to a growing arena; *offset receives where they start. */
static vkllm_status arena_append(char **arena, uint64_t *size, uint64_t *cap, const char *bytes, size_t len,
                                 uint64_t *offset)
{
    if (*size + len > *cap) {
        uint64_t new_cap = *cap ? *cap : 4096;
        while (new_cap < *size + len) new_cap *= 2;
        char *grown = realloc(*arena, new_cap);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vocab: no memory for %llu bytes of text",
                                      (unsigned long long)new_cap);
        *arena = grown;
        *cap = new_cap;
    }
    /* An empty merge line appends nothing to an arena that may not exist yet: NULL + 0 is undefined. */
    if (len) memcpy(*arena + *size, bytes, len);
    *offset = *size;
    *size += len;
    return VKLLM_OK;
}

vkllm_status vocab_set_token(vocab *v, uint32_t id, const char *text, size_t len, float score, uint32_t attr)
{
    if (id >= v->n_tokens)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vocab: token id %u beyond %u tokens", id, v->n_tokens);
    if (len > UINT32_MAX)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "vocab: token %u is %zu bytes long", id, len);
    char placeholder[32];
    if (len == 0) {
        len = (size_t)snprintf(placeholder, sizeof placeholder, "[EMPTY_%u]", id);
        text = placeholder;
    }
    vocab_token *t = &v->tokens[id];
    VKLLM_TRY(arena_append(&v->text, &v->text_size, &v->text_cap, text, len, &t->text));
    t->len = (uint32_t)len;
    t->score = score;
    t->attr = attr;
    return VKLLM_OK;
}

vkllm_status vocab_add_merge(vocab *v, const char *line, size_t len)
{
    if (len > UINT32_MAX) return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "vocab: merge %u is %zu bytes", v->n_merges, len);
    if (v->n_merges == v->merges_cap) {
        const uint32_t cap = v->merges_cap ? v->merges_cap * 2 : 1024;
        vocab_merge *grown = realloc(v->merges, (size_t)cap * sizeof *grown);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vocab: no memory for %u merges", cap);
        v->merges = grown;
        v->merges_cap = cap;
    }
    vocab_merge *m = &v->merges[v->n_merges];
    VKLLM_TRY(arena_append(&v->merge_text, &v->merge_text_size, &v->merge_text_cap, line, len, &m->text));
    m->len = (uint32_t)len;
    /* llama.cpp splits at find(' ', 1): a leading space belongs to the left part. */
    const char *space = len > 1 ? memchr(line + 1, ' ', len - 1) : NULL;
    m->left_len = space ? (uint32_t)(space - line) : UINT32_MAX;
    v->n_merges++;
    return VKLLM_OK;
}

uint32_t vocab_attr_from_gguf_type(int64_t type)
{
    switch (type) {
    case GGUF_TOKEN_NORMAL: return TOKEN_ATTR_NORMAL;
    case GGUF_TOKEN_UNKNOWN: return TOKEN_ATTR_UNKNOWN;
    case GGUF_TOKEN_CONTROL: return TOKEN_ATTR_CONTROL;
    case GGUF_TOKEN_USER_DEFINED: return TOKEN_ATTR_USER_DEFINED;
    case GGUF_TOKEN_UNUSED: return TOKEN_ATTR_UNUSED;
    case GGUF_TOKEN_BYTE: return TOKEN_ATTR_BYTE;
    default: return TOKEN_ATTR_UNDEFINED;
    }
}

/* ---- hash indexes ---- */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

static uint32_t fnv1a(uint32_t h, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * FNV_PRIME;
    return h;
}

static vkllm_status index_alloc(vocab_index *index, uint32_t n_keys, const char *what)
{
    uint32_t size = 16;
    while (size < (uint64_t)n_keys * 2) size *= 2;
    index->slots = calloc(size, sizeof *index->slots);
    if (!index->slots) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vocab: no memory for the %s index", what);
    index->mask = size - 1;
    return VKLLM_OK;
}

static vkllm_status build_token_index(vocab *v)
{
    VKLLM_TRY(index_alloc(&v->by_text, v->n_tokens, "token"));
    for (uint32_t id = 0; id < v->n_tokens; id++) {
        const vocab_token *t = &v->tokens[id];
        const char *text = v->text + t->text;
        uint32_t slot = fnv1a(FNV_OFFSET, text, t->len) & v->by_text.mask;
        for (;; slot = (slot + 1) & v->by_text.mask) {
            const uint32_t held = v->by_text.slots[slot];
            if (held == 0) break;
            const vocab_token *other = &v->tokens[held - 1];
            if (other->len == t->len && memcmp(v->text + other->text, text, t->len) == 0) break;
        }
        v->by_text.slots[slot] = id + 1; /* a duplicate text takes the later id, as llama.cpp's map does */
    }
    return VKLLM_OK;
}

static uint32_t merge_hash(const char *left, size_t left_len, const char *right, size_t right_len)
{
    return fnv1a(fnv1a(fnv1a(FNV_OFFSET, left, left_len), " ", 1), right, right_len);
}

static vkllm_status build_merge_index(vocab *v)
{
    if (v->n_merges == 0) return VKLLM_OK;
    VKLLM_TRY(index_alloc(&v->by_merge, v->n_merges, "merge"));
    for (uint32_t rank = 0; rank < v->n_merges; rank++) {
        const vocab_merge *m = &v->merges[rank];
        if (m->left_len == UINT32_MAX) continue;
        const char *line = v->merge_text + m->text;
        uint32_t slot = fnv1a(FNV_OFFSET, line, m->len) & v->by_merge.mask;
        for (;; slot = (slot + 1) & v->by_merge.mask) {
            const uint32_t held = v->by_merge.slots[slot];
            if (held == 0) break;
            const vocab_merge *other = &v->merges[held - 1];
            if (other->len == m->len && memcmp(v->merge_text + other->text, line, m->len) == 0) break;
        }
        if (v->by_merge.slots[slot] == 0) v->by_merge.slots[slot] = rank + 1; /* the first rank wins */
    }
    return VKLLM_OK;
}

int32_t vocab_find_token(const vocab *v, const char *text, size_t len)
{
    for (uint32_t slot = fnv1a(FNV_OFFSET, text, len) & v->by_text.mask;; slot = (slot + 1) & v->by_text.mask) {
        const uint32_t held = v->by_text.slots[slot];
        if (held == 0) return TOKEN_NONE;
        const vocab_token *t = &v->tokens[held - 1];
        if (t->len == len && memcmp(v->text + t->text, text, len) == 0) return (int32_t)(held - 1);
    }
}

int32_t vocab_find_merge(const vocab *v, const char *left, size_t left_len, const char *right, size_t right_len)
{
    if (!v->by_merge.slots) return -1;
    const size_t len = left_len + 1 + right_len;
    for (uint32_t slot = merge_hash(left, left_len, right, right_len) & v->by_merge.mask;;
         slot = (slot + 1) & v->by_merge.mask) {
        const uint32_t held = v->by_merge.slots[slot];
        if (held == 0) return -1;
        const vocab_merge *m = &v->merges[held - 1];
        const char *line = v->merge_text + m->text;
        if (m->len == len && m->left_len == left_len && memcmp(line, left, left_len) == 0 &&
            memcmp(line + left_len + 1, right, right_len) == 0)
            return (int32_t)(held - 1);
    }
}

/* ---- special tokens ---- */

/* Texts that end generation; llama.cpp recognises them by text because converters rarely say so, and
 * marks them control so that they print only when asked. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of"
    "\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[",
};
/* Fill-in-the-middle pad/repo/separator tokens also end generation. */
static const char *const fim_eog_texts[] = {
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
    "<REPO>", "<reponame>", "<|file_sep|>",
};
/* Fill-in-the-middle prefix/suffix/middle tokens: control, not end of generation. */
static const char *const fim_control_texts[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>",
    "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xe2\x96\x81<SUF>",
    "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>",
    "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
};

static int32_t find_cstr(const vocab *v, const char *text) { return vocab_find_token(v, text, strlen(text)); }

static bool eog_contains(const vocab *v, int32_t id)
{
    for (uint32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return true;
    return false;
}

static void eog_add(vocab *v, int32_t id)
{
    if (id == TOKEN_NONE || eog_contains(v, id)) return;
    v->eog[v->n_eog++] = id;
}

static int compare_ids(const void *a, const void *b)
{
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Marks the tokens found by text as control; adds them to the end-of-generation set if eog. */
static void mark_by_text(vocab *v, const char *const *texts, size_t n, bool eog)
{
    for (size_t i = 0; i < n; i++) {
        const int32_t id = find_cstr(v, texts[i]);
        if (id == TOKEN_NONE) continue;
        v->tokens[id].attr |= TOKEN_ATTR_CONTROL;
        if (eog) eog_add(v, id);
    }
}

static vkllm_status build_eog(vocab *v)
{
    const size_t most = sizeof eog_texts / sizeof *eog_texts + sizeof fim_eog_texts / sizeof *fim_eog_texts + 3;
    v->eog = calloc(most, sizeof *v->eog);
    if (!v->eog) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vocab: no memory for the end-of-generation set");
    if (v->eot == TOKEN_NONE) {
        static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                                "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                                "<end_of_utterance>"};
        for (size_t i = 0; i < sizeof eot_texts / sizeof *eot_texts && v->eot == TOKEN_NONE; i++)
            v->eot = find_cstr(v, eot_texts[i]);
    }
    if (v->eom == TOKEN_NONE) v->eom = find_cstr(v, "<|eom_id|>");
    mark_by_text(v, fim_eog_texts, sizeof fim_eog_texts / sizeof *fim_eog_texts, true);
    mark_by_text(v, fim_control_texts, sizeof fim_control_texts / sizeof *fim_control_texts, false);
    mark_by_text(v, eog_texts, sizeof eog_texts / sizeof *eog_texts, true);
    eog_add(v, v->eos);
    eog_add(v, v->eot);
    eog_add(v, v->eom);
    qsort(v->eog, v->n_eog, sizeof *v->eog, compare_ids);
    return VKLLM_OK;
}

bool vocab_is_eog(const vocab *v, int32_t id)
{
    if (id == TOKEN_NONE) return false;
    return bsearch(&id, v->eog, v->n_eog, sizeof *v->eog, compare_ids) != NULL;
}

/* qsort has no context argument; the special list is sorted through this per-thread pointer. */
static _Thread_local const vocab *sorting_vocab;

static int compare_special(const void *a, const void *b)
{
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    const uint32_t lx = sorting_vocab->tokens[x].len, ly = sorting_vocab->tokens[y].len;
    if (lx != ly) return lx > ly ? -1 : 1; /* longest first, so "<|im_end|>" wins over "<|im" */
    return (x > y) - (x < y);
}

static vkllm_status build_special_list(vocab *v)
{
    const uint32_t special_attrs = TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED | TOKEN_ATTR_UNKNOWN;
    uint32_t n = 0;
    for (uint32_t id = 0; id < v->n_tokens; id++) n += (v->tokens[id].attr & special_attrs) != 0;
    v->special = malloc((n ? n : 1) * sizeof *v->special);
    if (!v->special) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "vocab: no memory for %u special tokens", n);
    for (uint32_t id = 0; id < v->n_tokens; id++)
        if (v->tokens[id].attr & special_attrs) v->special[v->n_special++] = (int32_t)id;
    sorting_vocab = v;
    qsort(v->special, v->n_special, sizeof *v->special, compare_special);
    sorting_vocab = NULL;
    return VKLLM_OK;
}

vkllm_status vocab_finish(vocab *v)
{
    for (uint32_t id = 0; id < v->n_tokens; id++)
        if (v->tokens[id].len == 0) /* never set: give it a text so lookups stay well defined */
            VKLLM_TRY(vocab_set_token(v, id, "", 0, 0.0f, TOKEN_ATTR_UNDEFINED));
    VKLLM_TRY(build_token_index(v));
    VKLLM_TRY(build_merge_index(v));
    VKLLM_TRY(build_eog(v)); /* before the special list: it marks tokens control */
    VKLLM_TRY(build_special_list(v));
    return VKLLM_OK;
}
