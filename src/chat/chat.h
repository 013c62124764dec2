/* Chat templates: turn a conversation into the prompt text a chat model was trained on.
 *
 * GGUF files carry the template as Jinja (tokenizer.chat_template); vkllm does not run Jinja.  It
 * recognises the family by the template's distinctive markers, as llama.cpp's llm_chat_detect_template
 * does, and formats with a built-in writer per family, byte for byte as llama.cpp's
 * llm_chat_apply_template.  The prompt never includes BOS: the tokenizer adds it as the model says.
 *
 * Families (role is "system", "user" or "assistant"; other roles are written as given where the family
 * names roles, and treated as assistant in llama2):
 *   llama2  [INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]{assistant}</s>[INST] {user} [/INST]
 *           Content is trimmed of surrounding whitespace, as Meta's template does (content.strip()).
 *           The prompt always ends in [/INST], which is already the generation prompt.
 *   llama3  <|start_header_id|>{role}<|end_header_id|>\n\n{trimmed content}<|eot_id|> ...
 *   chatml  <|im_start|>{role}\n{content}<|im_end|>\n ...
 *   zephyr  <|{role}|>\n{content}</s>\n ...  (HuggingFaceH4/zephyr, whose eos_token is </s>) */
#ifndef VKLLM_CHAT_H
#define VKLLM_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/error.h"

typedef enum chat_template {
    CHAT_TEMPLATE_UNKNOWN = 0,
    CHAT_TEMPLATE_LLAMA2,
    CHAT_TEMPLATE_LLAMA3,
    CHAT_TEMPLATE_CHATML,
    CHAT_TEMPLATE_ZEPHYR,
    CHAT_TEMPLATE_COUNT
} chat_template;

typedef struct chat_message {
    const char *role;    /* NUL-terminated */
    const char *content; /* NUL-terminated */
} chat_message;

/* The family of a Jinja template text (NUL-terminated), or CHAT_TEMPLATE_UNKNOWN when it is none of
 * the supported ones, including llama.cpp families that share a marker but format differently
 * (phi-4 and SmolVLM use <|im_start|>; Mistral v1/v3/v7 use [INST]).  A bare family name is accepted
 * too, as in llama.cpp.  NULL gives UNKNOWN. */
chat_template chat_template_detect(const char *jinja_template_text);

/* "llama2", "llama3", "chatml", "zephyr" (for a CLI override); UNKNOWN for anything else or NULL. */
chat_template chat_template_from_name(const char *name);

/* The family's name as chat_template_from_name takes it; "unknown" for UNKNOWN or out of range. */
const char *chat_template_name(chat_template tmpl);

/* Formats n_messages messages.  With add_generation_prompt the prompt ends with the header that opens
 * the assistant's turn.  On success *out_prompt is a NUL-terminated string from malloc that the caller
 * owns and releases with free(); on failure it is NULL.  VKLLM_ERROR_INVALID_ARGUMENT for an unknown
 * family or a NULL role or content; messages may be NULL when n_messages is 0. */
vkllm_status chat_format(chat_template tmpl, const chat_message *messages, size_t n_messages,
                         bool add_generation_prompt, char **out_prompt);

#endif
