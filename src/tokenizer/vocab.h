/* The vocabulary behind a tokenizer: token byte strings, scores and attributes, BPE merges, special
 * token ids and flags, with hash indexes for text -> id and merge -> rank.
 *
 * Built in three steps by any loader (GGUF, llama2.c file, tests):
 *   vocab_create(kind, n_tokens)  ->  vocab_set_token() for every id, vocab_add_merge() per merge
 *   (rank = call order), set the special ids / flags fields  ->  vocab_finish().
 * vocab_finish() builds the indexes, marks end-of-generation tokens and lists the special tokens, after
 * which the struct is read-only and safe to share between threads. */
#ifndef VKLLM_VOCAB_H
#define VKLLM_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

#define TOKEN_NONE (-1)

typedef enum vocab_kind {
    VOCAB_SPM, /* tokenizer.ggml.model = "llama": SentencePiece, bigram merges by score, <0xNN> bytes */
    VOCAB_BPE, /* tokenizer.ggml.model = "gpt2": byte-level BPE, merges by rank, pre-tokenizer splits */
} vocab_kind;

/* Pre-tokenizer of a BPE vocabulary (tokenizer.ggml.pre). */
typedef enum vocab_pre {
    VOCAB_PRE_DEFAULT, /* "default" or absent: llama.cpp's four-regex fallback */
    VOCAB_PRE_GPT2,    /* "gpt-2", "mpt", ...: 's|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    VOCAB_PRE_LLAMA3,  /* "llama-bpe", "llama3", "llama-v3": \p{N}{1,3}, case-insensitive contractions */
    VOCAB_PRE_QWEN2,   /* "qwen2", "deepseek-r1-qwen": as LLAMA3 with single digits */
} vocab_pre;

/* Token attributes: GGUF's tokenizer.ggml.token_type values mapped to bits, as llama.cpp does, so that
 * a token can be both user-defined and (detected as) control. */
enum {
    TOKEN_ATTR_UNDEFINED = 0,
    TOKEN_ATTR_UNKNOWN = 1 << 0,
    TOKEN_ATTR_UNUSED = 1 << 1,
    TOKEN_ATTR_NORMAL = 1 << 2,
    TOKEN_ATTR_CONTROL = 1 << 3,
    TOKEN_ATTR_USER_DEFINED = 1 << 4,
    TOKEN_ATTR_BYTE = 1 << 5,
};

/* GGUF tokenizer.ggml.token_type values. */
typedef enum gguf_token_type {
    GGUF_TOKEN_UNDEFINED = 0,
    GGUF_TOKEN_NORMAL = 1,
    GGUF_TOKEN_UNKNOWN = 2,
    GGUF_TOKEN_CONTROL = 3,
    GGUF_TOKEN_USER_DEFINED = 4,
    GGUF_TOKEN_UNUSED = 5,
    GGUF_TOKEN_BYTE = 6,
} gguf_token_type;

typedef struct vocab_token {
    uint64_t text;  /* offset into vocab.text */
    uint32_t len;   /* bytes, > 0 */
    uint32_t attr;  /* TOKEN_ATTR_* bits */
    float score;    /* SPM merge priority (higher first) */
} vocab_token;

typedef struct vocab_merge {
    uint64_t text;     /* offset into vocab.merge_text of "left right" */
    uint32_t len;      /* bytes of "left right" */
    uint32_t left_len; /* bytes of left */
} vocab_merge;

/* Open-addressing hash of byte strings to int32 values; slots hold indexes + 1 (0 = empty). */
typedef struct vocab_index {
    uint32_t *slots; /* [mask + 1] */
    uint32_t mask;
} vocab_index;

typedef struct vocab {
    vocab_kind kind;
    vocab_pre pre;

    uint32_t n_tokens;
    vocab_token *tokens; /* [n_tokens] */
    char *text;          /* all token texts back to back */
    uint64_t text_size, text_cap;

    uint32_t n_merges;
    vocab_merge *merges; /* [n_merges], by rank */
    char *merge_text;
    uint64_t merge_text_size, merge_text_cap;
    uint32_t merges_cap;

    /* Special ids (TOKEN_NONE when absent). */
    int32_t bos, eos, eot, eom, unk, pad;

    bool add_bos;            /* encode(add_special) prepends bos */
    bool add_eos;            /* encode(add_special) appends eos */
    bool add_space_prefix;   /* SPM: a space before text that starts the input or follows a special token */
    bool ignore_merges;      /* BPE: a pre-tokenized word that is itself a token is not merged (llama3) */
    bool clean_spaces;       /* decode: " ." -> "." etc. (clean_up_tokenization_spaces) */

    /* Built by vocab_finish(). */
    vocab_index by_text;       /* token text -> id (the last id wins on duplicates, as in llama.cpp) */
    vocab_index by_merge;      /* "left right" -> rank (the first rank wins) */
    int32_t *special;          /* control, user-defined and unknown ids, longest text first */
    uint32_t n_special;
    int32_t *eog;              /* end-of-generation ids, ascending */
    uint32_t n_eog;
} vocab;

/* Defaults of the kind: SPM has bos 1, eos 2, unk 0, add_bos and add_space_prefix; BPE has bos = eos = 11
 * as llama.cpp assumes for GPT-2, clean_spaces, and nothing else. Ids beyond n_tokens become TOKEN_NONE. */
vkllm_status vocab_create(vocab_kind kind, uint32_t n_tokens, vocab **out);
void vocab_free(vocab *v);

/* An empty text is stored as "[EMPTY_<id>]" (llama.cpp does the same) so that no token matches nothing. */
vkllm_status vocab_set_token(vocab *v, uint32_t id, const char *text, size_t len, float score, uint32_t attr);
/* A merge line "left right" splits at the first space after its first byte; a line without one is kept
 * (it holds a rank) but never matches. */
vkllm_status vocab_add_merge(vocab *v, const char *line, size_t len);
uint32_t vocab_attr_from_gguf_type(int64_t type);
vkllm_status vocab_finish(vocab *v);

/* Lookups (after vocab_finish). */
int32_t vocab_find_token(const vocab *v, const char *text, size_t len);           /* TOKEN_NONE if absent */
int32_t vocab_find_merge(const vocab *v, const char *left, size_t left_len, const char *right,
                         size_t right_len);                                       /* rank, or -1 */
static inline const char *vocab_token_text(const vocab *v, int32_t id) { return v->text + v->tokens[id].text; }
bool vocab_is_eog(const vocab *v, int32_t id);

#endif
