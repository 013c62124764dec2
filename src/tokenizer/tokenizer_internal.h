/* Internals shared by the tokenizer files, below tokenizer.c: the growing id buffer and the pairwise merging
 * that SentencePiece and BPE share (tokenizer_internal.c), the SentencePiece and BPE algorithms
 * (tokenize_spm.c, tokenize_bpe.c), the BPE pre-tokenizer (pretokenize.c) and the GPT-2 byte <-> code point
 * mapping (tokenize_bpe.c).  tokenizer.c calls down into these; none of them calls tokenizer.c. */
#ifndef VKLLM_TOKENIZER_INTERNAL_H
#define VKLLM_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"
#include "vocab.h"

typedef struct token_buffer {
    int32_t *ids;
    size_t n, cap;
} token_buffer;

vkllm_status token_buffer_push(token_buffer *b, int32_t id);

/* ---- pairwise merging (SentencePiece and BPE) ----
 * The text is cut into UTF-8 characters (by lead byte, as llama.cpp does), then the adjacent pair with the
 * highest priority (the leftmost on ties) is merged, until no adjacent pair has a priority. */

/* A run of the text: bytes [offset, offset + n), linked in order; n == 0: merged into its left neighbour. */
typedef struct merge_symbol {
    int prev, next;
    size_t offset, n;
} merge_symbol;

/* A queued pair.  size: bytes of left + right when queued (a later mismatch means the pair is stale). */
typedef struct merge_pair {
    int left, right;
    double priority; /* SentencePiece: the merged token's score; BPE: minus the merge's rank (exact in double) */
    size_t size;
} merge_pair;

/* The priority of merging left and right (adjacent in the text: left + left_len == right), false if they do not
 * merge. */
typedef bool (*merge_priority_fn)(const void *user, const char *left, size_t left_len, const char *right,
                                  size_t right_len, double *priority);

typedef struct merge_state {
    const char *text;
    merge_symbol *symbols; /* room for len symbols */
    merge_pair *heap;      /* room for 3 * len pairs: n - 1 first pairs, then at most 2 per merge */
    size_t n_heap;
    merge_priority_fn priority;
    const void *user;
} merge_state;

/* Cuts text[0, len) (len > 0) into characters and merges them; the surviving symbols are those reached from
 * symbols[0] through next (-1 ends). */
void merge_text(merge_state *s, size_t len);

/* ---- the algorithms ---- */

/* Word boundaries found by a pre-tokenizer: lengths in code points, in order, summing to the input. */
typedef struct word_lengths {
    size_t *len;
    size_t n, cap;
} word_lengths;

void word_lengths_free(word_lengths *w);

/* SentencePiece over text whose spaces are already U+2581 (and prefixed when add_space_prefix). */
vkllm_status spm_tokenize(const vocab *v, const char *text, size_t len, token_buffer *out);

/* Byte-level BPE over raw text: pre-tokenizer split, GPT-2 byte encoding, merges by rank. */
vkllm_status bpe_tokenize(const vocab *v, const char *text, size_t len, token_buffer *out);

/* Splits cpts[0..n) into words by the regexes of the pre-tokenizer (written by hand after llama.cpp's
 * unicode.cpp). */
vkllm_status pretokenize(vocab_pre pre, const uint32_t *cpts, size_t n, word_lengths *out);

/* GPT-2's reversible byte -> printable code point map, and its inverse (-1 for code points not in it). */
uint32_t gpt2_byte_to_cpt(uint8_t byte);
int gpt2_cpt_to_byte(uint32_t cpt);

#endif
