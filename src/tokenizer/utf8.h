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

/* Bytes at the end of s[0..len) that begin a multi-byte sequence not yet complete (0..3): a streamed
 * text holds them back until the next token completes the character. */
size_t utf8_incomplete_tail(const char *s, size_t len);

/* Copies s[0..len) to out as strict UTF-8: malformed bytes, surrogates and overlong forms become U+FFFD,
 * so JSON and terminals always get valid text.  out needs room for 3 * len + 1 bytes; it is
 * NUL-terminated.  Returns the bytes written (without the NUL). */
size_t utf8_sanitize(const char *s, size_t len, char *out);

#endif
