/* Internals shared by the tokenizer files: the growing id buffer, the SentencePiece and BPE algorithms,
 * the BPE pre-tokenizer and the GPT-2 byte <-> code point mapping. */
#ifndef VKLLM_TOKENIZE_H
#define VKLLM_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "vkllm.h"
#include "vocab.h"

typedef struct token_buffer {
    int32_t *ids;
    size_t n, cap;
} token_buffer;

vkllm_status token_buffer_push(token_buffer *b, int32_t id);

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
