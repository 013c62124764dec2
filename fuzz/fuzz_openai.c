/* Fuzz target `openai`: the OpenAI request parser of vkllm serve (src/server/openai.c), which reads bodies from
 * the network.  The first byte's low bit picks the chat endpoint; the rest is the body.  A body the parser
 * accepts must have set sane parameters; whatever it was, the body is then sent back as a response's text and
 * a stream chunk's text, which must be valid JSON whose text is the body's bytes as strict UTF-8. */
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "server/openai.h"
#include "tokenizer/utf8.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

/* The JSON must parse and its choices[0] field (text, or message.content / delta.content for chat) must hold
 * exactly `want`. */
static void check_text(char *json, bool chat, bool chunk, const char *want)
{
    FUZZ_CHECK(json != NULL);
    const char *body = chunk ? json + strlen("data: ") : json;
    cJSON *o = cJSON_Parse(body);
    FUZZ_CHECK(o != NULL);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
    const cJSON *holder = chat ? cJSON_GetObjectItemCaseSensitive(c, chunk ? "delta" : "message") : c;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(holder, chat ? "content" : "text");
    FUZZ_CHECK(cJSON_IsString(text) && !strcmp(text->valuestring, want));
    cJSON_Delete(o);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const bool chat = data[0] & 1;
    const char *body = (const char *)data + 1;
    const size_t len = size - 1;
    job *j = job_new();
    if (!j) return 0;
    bool stream;
    char err[256] = "";
    if (openai_parse_request(body, len, chat, 64, j, &stream, err, sizeof err)) {
        FUZZ_CHECK(chat ? j->messages && j->n_messages > 0 : j->prompt != NULL);
        FUZZ_CHECK(j->params.max_tokens >= 1 && j->params.n_stop <= 4);
        FUZZ_CHECK(j->params.top_logprobs <= VKLLM_MAX_TOP_LOGPROBS);
        for (uint32_t i = 0; i < j->params.n_stop; i++) FUZZ_CHECK(j->params.stop[i] && j->params.stop[i][0]);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    /* The body as generated text: any bytes, including NUL, go out as valid UTF-8 JSON. */
    char *want = malloc(3 * len + 1);
    if (want) {
        size_t n = utf8_sanitize(body, len, want);
        if (memchr(want, '\0', n) == NULL) { /* cJSON strings end at a NUL: compare only NUL-free texts */
            free(j->text);
            j->text = malloc(len + 1);
            if (j->text) {
                memcpy(j->text, body, len);
                j->text[len] = '\0';
                j->text_len = len;
                check_text(openai_response(j, chat, "id", "model", 0), chat, false, want);
            }
            check_text(openai_chunk(chat, "id", "model", 0, body, len, VKLLM_FINISH_NONE, true, NULL, NULL, 0, 0),
                       chat, true, want);
        }
        free(want);
    }
    job_free(j);
    return 0;
}
