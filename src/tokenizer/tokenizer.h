/* Tokenizers, as llama.cpp implements them: SentencePiece-style (tokenizer.ggml.model = "llama") and
 * byte-level BPE (tokenizer.ggml.model = "gpt2", pre-tokenizers default / gpt-2 / llama-bpe / qwen2).
 *
 * A tokenizer is its vocabulary (src/tokenizer/vocab.h); the algorithms keep no state, so one tokenizer may be
 * used from several threads at once.  Token ids are int32_t; TOKEN_NONE (-1) means "no such token". */
#ifndef VKLLM_TOKENIZER_H
#define VKLLM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "runtime/error.h"

typedef struct vocab tokenizer;

/* From the tokenizer.ggml.* metadata of a GGUF file; the file may be closed afterwards.  (From a llama2.c
 * tokenizer file: tokenizer_create_from_llama2c, src/tools/llama2c.h.) */
vkllm_status tokenizer_create_from_gguf(const gguf_file *file, tokenizer **out);
void tokenizer_free(tokenizer *t);

/* Text (len bytes, any bytes) to ids.
 * add_special: add BOS / EOS where the vocabulary asks for them (tokenizer.ggml.add_bos_token ...).
 * parse_special: control tokens written in the text ("<s>", "<|eot_id|>") become their ids; without it
 * they are tokenized as text.  User-defined tokens are always matched, as in llama.cpp.
 * *n_ids receives the count; if it exceeds capacity, nothing is written past capacity and the call
 * returns VKLLM_ERROR_BUFFER_TOO_SMALL (ids may be NULL with capacity 0 to ask for the size). */
vkllm_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t *ids, size_t capacity, size_t *n_ids);

/* The bytes one token stands for (a piece may be part of a UTF-8 character).  Control and unknown
 * tokens give "" unless special is set, in which case their text ("<s>") is given.
 * Same capacity contract as tokenizer_encode, in bytes; no NUL is written. */
vkllm_status tokenizer_token_piece(const tokenizer *t, int32_t id, bool special, char *buf, size_t capacity,
                                   size_t *n_bytes);

/* Ids back to text, as llama.cpp's llama_detokenize: the pieces concatenated; with add_space_prefix the
 * leading space of the first piece is dropped (the space the encoder added) unless the sequence begins
 * with BOS; remove_special drops a leading BOS / trailing EOS the vocabulary would add; unparse_special
 * renders control tokens as their text; vocabularies with clean_spaces undo " ." / " 's" spacing. */
vkllm_status tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n_ids, bool remove_special,
                              bool unparse_special, char *buf, size_t capacity, size_t *n_bytes);

uint32_t tokenizer_n_vocab(const tokenizer *t);
int32_t tokenizer_bos(const tokenizer *t);
int32_t tokenizer_eos(const tokenizer *t);
/* End of generation: EOS, EOT, EOM and the end-of-turn tokens llama.cpp recognises by text. */
bool tokenizer_is_eog(const tokenizer *t, int32_t id);

#endif
