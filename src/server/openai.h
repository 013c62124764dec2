/* The OpenAI API's JSON: request bodies of /v1/completions and /v1/chat/completions into jobs, and the
 * response, stream chunk and error objects (https://platform.openai.com/docs/api-reference). */
#ifndef VKLLM_SERVER_OPENAI_H
#define VKLLM_SERVER_OPENAI_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"

/* Parses a request body into j (chat: messages, else prompt) and *stream.  On a bad body returns false with
 * err naming the field and what it must be (an HTTP 400). */
bool openai_parse_request(const char *body, size_t len, bool chat, uint32_t default_max_tokens, job *j,
                          bool *stream, char *err, size_t err_len);

/* The whole response of a finished job (malloc'd JSON). */
char *openai_response(const job *j, bool chat, const char *id, const char *model, long created);
/* One stream chunk: text (len bytes, may be 0) and, if finish != NONE, the finish reason; chat chunks carry the
 * assistant role in the first one; usage_of: the job whose usage ends the stream; lp_of: the job whose
 * log-probabilities [lp_from, lp_to) go with this text (NULL: "logprobs": null).  malloc'd "data: {...}\n\n". */
char *openai_chunk(bool chat, const char *id, const char *model, long created, const char *text, size_t len,
                   vkllm_finish_reason finish, bool first, const job *usage_of, const job *lp_of, size_t lp_from,
                   size_t lp_to);
/* {"error": {"message", "type", "param", "code"}} (malloc'd). */
char *openai_error(const char *message, const char *type, const char *code);
const char *openai_finish_name(vkllm_finish_reason f);

#endif
