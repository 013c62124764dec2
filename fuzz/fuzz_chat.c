/* Fuzz target `chat`: the fuzz input is fields separated by NUL bytes: a template text (Jinja or a family
 * name), then role and content pairs.  The first byte's low bit asks for the generation prompt.  The template
 * is detected (chat_template_detect, chat_template_from_name) and the conversation formatted by every family,
 * whose output must hold each content as given (chatml and zephyr write content verbatim; llama2 and llama3
 * trim it, so only the trimmed core is looked for there). */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

#include "chat/chat.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

#define MAX_FIELDS 65

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const bool add_generation_prompt = data[0] & 1;
    /* A NUL-terminated copy, split in place. */
    char *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    const char *fields[MAX_FIELDS];
    size_t n_fields = 0;
    for (size_t at = 0; at < size && n_fields < MAX_FIELDS;) {
        fields[n_fields++] = buf + at;
        at += strlen(buf + at) + 1;
    }
    const chat_template detected = chat_template_detect(fields[0]);
    FUZZ_CHECK(detected >= CHAT_TEMPLATE_UNKNOWN && detected < CHAT_TEMPLATE_COUNT);
    const chat_template named = chat_template_from_name(fields[0]);
    if (named != CHAT_TEMPLATE_UNKNOWN) FUZZ_CHECK(!strcmp(chat_template_name(named), fields[0]));

    chat_message messages[MAX_FIELDS / 2];
    const size_t n_messages = (n_fields - 1) / 2;
    for (size_t i = 0; i < n_messages; i++)
        messages[i] = (chat_message){.role = fields[1 + 2 * i], .content = fields[2 + 2 * i]};

    for (int tmpl = CHAT_TEMPLATE_UNKNOWN; tmpl < CHAT_TEMPLATE_COUNT; tmpl++) {
        char *prompt = NULL;
        const vkllm_status st = chat_format((chat_template)tmpl, messages, n_messages, add_generation_prompt, &prompt);
        if (st != VKLLM_OK) {
            FUZZ_CHECK(prompt == NULL);
            continue;
        }
        FUZZ_CHECK(tmpl != CHAT_TEMPLATE_UNKNOWN && prompt != NULL);
        for (size_t i = 0; i < n_messages; i++) {
            const char *c = messages[i].content;
            size_t len = strlen(c);
            if (tmpl == CHAT_TEMPLATE_LLAMA2 || tmpl == CHAT_TEMPLATE_LLAMA3) {
                while (len && isspace((unsigned char)*c)) c++, len--;
                while (len && isspace((unsigned char)c[len - 1])) len--;
            }
            if (len == 0) continue;
            bool found = false;
            for (const char *p = prompt; !found && (p = strchr(p, c[0])) != NULL; p++)
                found = strncmp(p, c, len) == 0;
            FUZZ_CHECK(found);
        }
        free(prompt);
    }
    free(buf);
    return 0;
}
