/* BPE pre-tokenizers: the regexes of llama.cpp's llama-vocab.cpp, matched by hand over code points as
 * llama.cpp's unicode.cpp does (its custom splitters, including their exact treatment of edge cases),
 * so that words break at the same places without a regex engine.
 *
 *   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *           \s*[\r\n]+|\s+(?!\S)|\s+
 *   qwen2:  llama3 with \p{N} instead of \p{N}{1,3}
 *   default: four passes, each splitting the words of the previous one into matches and the text
 *           between them: [\p{P}\$\+<=>\^~\|]+, then gpt2, then \p{N}+, then [0-9][0-9][0-9]. */
#include <stdbool.h>
#include <stdlib.h>

#include "runtime/error.h"
#include "tokenizer_internal.h"
#include "unicode.h"

void word_lengths_free(word_lengths *w)
{
    free(w->len);
    *w = (word_lengths){0};
}

static vkllm_status word_push(word_lengths *w, size_t len)
{
    if (w->n == w->cap) {
        const size_t cap = w->cap ? w->cap * 2 : 64;
        size_t *grown = realloc(w->len, cap * sizeof *grown);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "pre-tokenizer: no memory for %zu words", cap);
        w->len = grown;
        w->cap = cap;
    }
    w->len[w->n++] = len;
    return VKLLM_OK;
}

/* Character classes of one position; 0 outside the word being split (llama.cpp's empty flags). */
enum {
    CLASS_IN_RANGE = 1 << 0,
    CLASS_LETTER = 1 << 1,
    CLASS_NUMBER = 1 << 2,
    CLASS_WHITESPACE = 1 << 3,
    CLASS_PUNCTUATION = 1 << 4,
};

#define OUT_OF_RANGE 0xFFFFFFFFu

static unsigned classify(uint32_t cpt)
{
    unsigned c = CLASS_IN_RANGE;
    switch (unicode_category_of(cpt)) {
    case UNICODE_LETTER: c |= CLASS_LETTER; break;
    case UNICODE_NUMBER: c |= CLASS_NUMBER; break;
    case UNICODE_PUNCTUATION: c |= CLASS_PUNCTUATION; break;
    default: break;
    }
    if (unicode_is_whitespace(cpt)) c |= CLASS_WHITESPACE;
    return c;
}

/* One word of the previous pass being split: positions [ini, end) of cpts. */
typedef struct splitter {
    const uint32_t *cpts;
    size_t ini, end;
    size_t prev_end; /* where the next emitted word starts */
    word_lengths *out;
    vkllm_status status;
} splitter;

static uint32_t cpt_at(const splitter *s, size_t pos) { return pos >= s->ini && pos < s->end ? s->cpts[pos] : OUT_OF_RANGE; }

static unsigned class_at(const splitter *s, size_t pos)
{
    return pos >= s->ini && pos < s->end ? classify(s->cpts[pos]) : 0;
}

/* Emits [prev_end, end) as a word if non-empty; returns its length. */
static size_t emit(splitter *s, size_t end)
{
    const size_t len = end - s->prev_end;
    if (len > 0 && s->status == VKLLM_OK) s->status = word_push(s->out, len);
    s->prev_end = end;
    return len;
}

static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's 't 're 've 'm 'll 'd at pos (case-insensitive if asked); returns the match length or 0.  Exact for
 * the insensitive form with ASCII lowering: no other code point lowercases to these letters. */
static size_t contraction_at(const splitter *s, size_t pos, bool any_case)
{
    if (cpt_at(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    const uint32_t a = any_case ? ascii_lower(cpt_at(s, pos + 1)) : cpt_at(s, pos + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= s->end) return 0;
    const uint32_t b = any_case ? ascii_lower(cpt_at(s, pos + 2)) : cpt_at(s, pos + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

static bool is_newline(uint32_t c) { return c == '\r' || c == '\n'; }

static const unsigned WORDLIKE = CLASS_WHITESPACE | CLASS_LETTER | CLASS_NUMBER;

/* \s+(?!\S) | \s+ at pos, shared by every splitter; with_newlines adds llama3's \s*[\r\n]+ first. */
static void split_whitespace(splitter *s, size_t *pos, bool with_newlines)
{
    size_t count = 0, after_last_newline = 0;
    while (class_at(s, *pos + count) & CLASS_WHITESPACE) {
        if (is_newline(cpt_at(s, *pos + count))) after_last_newline = *pos + count + 1;
        count++;
    }
    if (with_newlines && after_last_newline > 0) { /* \s*[\r\n]+ */
        *pos = after_last_newline;
        emit(s, *pos);
        return;
    }
    if (count > 1 && cpt_at(s, *pos + count) != OUT_OF_RANGE) { /* \s+(?!\S): leave one for the next word */
        *pos += count - 1;
        emit(s, *pos);
        return;
    }
    if (count > 0) { /* \s+ */
        *pos += count;
        emit(s, *pos);
        return;
    }
    emit(s, ++*pos); /* nothing matched: one code point alone */
}

static void split_gpt2(splitter *s)
{
    for (size_t pos = s->ini; pos < s->end;) {
        const uint32_t cpt = cpt_at(s, pos);
        const size_t contraction = contraction_at(s, pos, false);
        if (contraction) {
            pos += emit(s, pos + contraction);
            continue;
        }
        unsigned next = cpt == ' ' ? class_at(s, pos + 1) : class_at(s, pos);
        if (next & CLASS_LETTER) { /* ?\p{L}+ */
            pos += cpt == ' ';
            while (next & CLASS_LETTER) next = class_at(s, ++pos);
            emit(s, pos);
            continue;
        }
        if (next & CLASS_NUMBER) { /* ?\p{N}+ */
            pos += cpt == ' ';
            while (next & CLASS_NUMBER) next = class_at(s, ++pos);
            emit(s, pos);
            continue;
        }
        if (!(next & WORDLIKE) && next) { /* ?[^\s\p{L}\p{N}]+ */
            pos += cpt == ' ';
            while (!(next & WORDLIKE) && next) next = class_at(s, ++pos);
            emit(s, pos);
            continue;
        }
        split_whitespace(s, &pos, false);
    }
}

/* llama3 (max_digits 3) and qwen2 (max_digits 1). */
static void split_llama3(splitter *s, size_t max_digits)
{
    for (size_t pos = s->ini; pos < s->end;) {
        const uint32_t cpt = cpt_at(s, pos);
        const unsigned here = class_at(s, pos);
        const size_t contraction = contraction_at(s, pos, true);
        if (contraction) {
            pos += emit(s, pos + contraction);
            continue;
        }
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (!is_newline(cpt) && !(here & CLASS_NUMBER) &&
            ((here & CLASS_LETTER) || (class_at(s, pos + 1) & CLASS_LETTER))) {
            pos++;
            while (class_at(s, pos) & CLASS_LETTER) pos++;
            emit(s, pos);
            continue;
        }
        if (here & CLASS_NUMBER) { /* \p{N}{1,max_digits}, repeated */
            size_t start = pos;
            while (class_at(s, pos) & CLASS_NUMBER) {
                if (++pos - start >= max_digits) {
                    emit(s, pos);
                    start = pos;
                }
            }
            emit(s, pos);
            continue;
        }
        /* ?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the first position's flags here, not the next's) */
        unsigned next = cpt == ' ' ? class_at(s, pos + 1) : here;
        if (!(next & WORDLIKE) && here) {
            pos += cpt == ' ';
            while (!(next & WORDLIKE) && next) next = class_at(s, ++pos);
            while (is_newline(cpt_at(s, pos))) pos++;
            emit(s, pos);
            continue;
        }
        split_whitespace(s, &pos, true);
    }
}

/* Runs of a class become words, and so does the text between them (std::regex_iterator over [c]+). */
static void split_runs(splitter *s, bool (*in_class)(uint32_t))
{
    size_t pos = s->ini;
    while (pos < s->end) {
        if (!in_class(s->cpts[pos])) {
            pos++;
            continue;
        }
        emit(s, pos);
        while (pos < s->end && in_class(s->cpts[pos])) pos++;
        emit(s, pos);
    }
    emit(s, s->end);
}

/* [0-9][0-9][0-9]: non-overlapping, leftmost first. */
static bool is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }

static void split_digit_triples(splitter *s)
{
    size_t pos = s->ini;
    while (pos + 3 <= s->end) {
        if (is_ascii_digit(s->cpts[pos]) && is_ascii_digit(s->cpts[pos + 1]) && is_ascii_digit(s->cpts[pos + 2])) {
            emit(s, pos);
            pos += 3;
            emit(s, pos);
        } else {
            pos++;
        }
    }
    emit(s, s->end);
}

/* llama.cpp matches \p{..} classes of the default regexes on a "collapsed" text: ASCII as itself, other
 * whitespace as \v, other code points as their category.  These predicates give the same answers. */
static bool default_punct_class(uint32_t c)
{
    if (c < 128) { /* \p{P} within ASCII, plus $ + < = > ^ ~ | (every ASCII punctuation or symbol but `) */
        return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '^') || c == '_' ||
               (c >= '{' && c <= '~');
    }
    return !unicode_is_whitespace(c) && unicode_category_of(c) == UNICODE_PUNCTUATION;
}

static bool default_number_class(uint32_t c)
{
    if (c < 128) return is_ascii_digit(c);
    return !unicode_is_whitespace(c) && unicode_category_of(c) == UNICODE_NUMBER;
}

typedef enum split_pass { PASS_GPT2, PASS_LLAMA3, PASS_QWEN2, PASS_PUNCT_RUNS, PASS_NUMBER_RUNS, PASS_TRIPLES } split_pass;

/* Applies one pass to every word of `in` (or to the whole text when in is NULL). */
static vkllm_status run_pass(split_pass pass, const uint32_t *cpts, size_t n, const word_lengths *in,
                             word_lengths *out)
{
    const size_t n_words = in ? in->n : 1;
    size_t start = 0;
    for (size_t w = 0; w < n_words; w++) {
        const size_t len = in ? in->len[w] : n;
        splitter s = {.cpts = cpts, .ini = start, .end = start + len, .prev_end = start, .out = out};
        switch (pass) {
        case PASS_GPT2: split_gpt2(&s); break;
        case PASS_LLAMA3: split_llama3(&s, 3); break;
        case PASS_QWEN2: split_llama3(&s, 1); break;
        case PASS_PUNCT_RUNS: split_runs(&s, default_punct_class); break;
        case PASS_NUMBER_RUNS: split_runs(&s, default_number_class); break;
        case PASS_TRIPLES: split_digit_triples(&s); break;
        }
        VKLLM_TRY(s.status);
        start += len;
    }
    return VKLLM_OK;
}

static vkllm_status run_default(const uint32_t *cpts, size_t n, word_lengths *out)
{
    static const split_pass passes[] = {PASS_PUNCT_RUNS, PASS_GPT2, PASS_NUMBER_RUNS, PASS_TRIPLES};
    word_lengths current = {0};
    vkllm_status status = run_pass(passes[0], cpts, n, NULL, &current);
    for (size_t i = 1; i < sizeof passes / sizeof *passes && status == VKLLM_OK; i++) {
        word_lengths next = {0};
        status = run_pass(passes[i], cpts, n, &current, &next);
        word_lengths_free(&current);
        current = next;
    }
    if (status != VKLLM_OK) {
        word_lengths_free(&current);
        return status;
    }
    *out = current;
    return VKLLM_OK;
}

vkllm_status pretokenize(vocab_pre pre, const uint32_t *cpts, size_t n, word_lengths *out)
{
    *out = (word_lengths){0};
    if (n == 0) return VKLLM_OK;
    vkllm_status status;
    switch (pre) {
    case VOCAB_PRE_GPT2: status = run_pass(PASS_GPT2, cpts, n, NULL, out); break;
    case VOCAB_PRE_LLAMA3: status = run_pass(PASS_LLAMA3, cpts, n, NULL, out); break;
    case VOCAB_PRE_QWEN2: status = run_pass(PASS_QWEN2, cpts, n, NULL, out); break;
    default: return run_default(cpts, n, out);
    }
    if (status != VKLLM_OK) word_lengths_free(out);
    return status;
}
