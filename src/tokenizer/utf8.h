/* UTF-8 helpers with the same leniency as llama.cpp's tokenizer, so that malformed input splits the
 * same way in both engines instead of failing. */
#ifndef VKLLM_UTF8_H
#define VKLLM_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_REPLACEMENT 0xFFFDu

/* Length of the sequence a lead byte announces (1 for ASCII, continuation and invalid bytes), from
 * its high nibble only: the SentencePiece and BPE symbol splitters cut text into characters this way. */
size_t utf8_sequence_length(uint8_t lead);

/* Decodes the code point at s[*offset] (*offset < len) and advances *offset.  A malformed or truncated
 * sequence, or one beyond U+10FFFF, yields U+FFFD and advances one byte. */
uint32_t utf8_decode(const char *s, size_t len, size_t *offset);

/* Writes cpt (<= 0x10FFFF) as 1..4 bytes into out; returns the byte count. */
size_t utf8_encode(uint32_t cpt, char out[4]);

#endif
