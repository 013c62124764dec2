/* Chat template detection and the built-in writers for each family (see chat.h). */
#include "chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

static const char *const template_names[CHAT_TEMPLATE_COUNT] = {
    [CHAT_TEMPLATE_UNKNOWN] = "unknown",
    [CHAT_TEMPLATE_LLAMA2] = "llama2",
    [CHAT_TEMPLATE_LLAMA3] = "llama3",
    [CHAT_TEMPLATE_CHATML] = "chatml",
    [CHAT_TEMPLATE_ZEPHYR] = "zephyr",
};

const char *chat_template_name(chat_template tmpl)
{
    if ((unsigned)tmpl >= CHAT_TEMPLATE_COUNT) return template_names[CHAT_TEMPLATE_UNKNOWN];
    return template_names[tmpl];
}

chat_template chat_template_from_name(const char *name)
{
    if (!name) return CHAT_TEMPLATE_UNKNOWN;
    for (int t = CHAT_TEMPLATE_UNKNOWN + 1; t < CHAT_TEMPLATE_COUNT; t++)
        if (strcmp(name, template_names[t]) == 0) return (chat_template)t;
    return CHAT_TEMPLATE_UNKNOWN;
}

/* ---- detection: the markers llama.cpp's llm_chat_detect_template checks, in its order ---- */

static bool contains(const char *text, const char *marker) { return strstr(text, marker) != NULL; }

static chat_template detect_chatml(const char *text)
{
    /* phi-4 and SmolVLM share <|im_start|> but write other separators. */
    if (contains(text, "<|im_sep|>") || contains(text, "<end_of_utterance>")) return CHAT_TEMPLATE_UNKNOWN;
    return CHAT_TEMPLATE_CHATML;
}

static chat_template detect_llama2(const char *text)
{
    /* Mistral's official v1/v3/v7 templates also use [INST], with different spacing and markers. */
    if (contains(text, "[SYSTEM_PROMPT]") || contains(text, "' [INST] ' + system_message") ||
        contains(text, "[AVAILABLE_TOOLS]"))
        return CHAT_TEMPLATE_UNKNOWN;
    return CHAT_TEMPLATE_LLAMA2;
}

/* <|user|> / <|assistant|> turns closed by eos_token (HuggingFaceH4/zephyr).  Phi-3 closes turns with
 * <|end|>, GLM writes [gMASK], and StableLM's zephyr variant closes with <|endoftext|>: all differ. */
static bool is_zephyr(const char *text)
{
    return contains(text, "<|user|>") && contains(text, "<|assistant|>") && contains(text, "eos_token") &&
           !contains(text, "<|end|>") && !contains(text, "[gMASK]") && !contains(text, "<|endoftext|>");
}

chat_template chat_template_detect(const char *jinja_template_text)
{
    if (!jinja_template_text) return CHAT_TEMPLATE_UNKNOWN;
    const char *text = jinja_template_text;
    const chat_template by_name = chat_template_from_name(text);
    if (by_name != CHAT_TEMPLATE_UNKNOWN) return by_name;
    if (contains(text, "<|im_start|>")) return detect_chatml(text);
    if (contains(text, "[INST]")) return detect_llama2(text);
    if (is_zephyr(text)) return CHAT_TEMPLATE_ZEPHYR;
    if (contains(text, "<|start_header_id|>") && contains(text, "<|end_header_id|>")) return CHAT_TEMPLATE_LLAMA3;
    return CHAT_TEMPLATE_UNKNOWN;
}

/* ---- a growing output string ---- */

typedef struct prompt_builder {
    char *data; /* NUL-terminated once anything is appended */
    size_t len;
    size_t cap;
    bool out_of_memory; /* sticky: later appends do nothing, chat_format reports it once */
} prompt_builder;

static void append_bytes(prompt_builder *b, const char *bytes, size_t n)
{
    if (b->out_of_memory) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->out_of_memory = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void append(prompt_builder *b, const char *text) { append_bytes(b, text, strlen(text)); }

/* Appends text without leading and trailing whitespace (Python's str.strip(), Jinja's trim). */
static void append_trimmed(prompt_builder *b, const char *text)
{
    size_t begin = 0, end = strlen(text);
    while (begin < end && isspace((unsigned char)text[begin])) begin++;
    while (end > begin && isspace((unsigned char)text[end - 1])) end--;
    append_bytes(b, text + begin, end - begin);
}

/* ---- writers, one per family ---- */

/* llama.cpp's "llama2-sys-strip", the variant Meta's own template matches: <<SYS>> block inside the
 * first [INST], content stripped, no BOS between turns. */
static void write_llama2(prompt_builder *b, const chat_message *messages, size_t n)
{
    bool inside_turn = true; /* the first [INST] is written up front */
    append(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        const char *role = messages[i].role;
        if (!inside_turn) {
            append(b, "[INST] ");
            inside_turn = true;
        }
        if (strcmp(role, "system") == 0) {
            append(b, "<<SYS>>\n");
            append_trimmed(b, messages[i].content);
            append(b, "\n<</SYS>>\n\n");
        } else if (strcmp(role, "user") == 0) {
            append_trimmed(b, messages[i].content);
            append(b, " [/INST]");
        } else {
            append_trimmed(b, messages[i].content);
            append(b, "</s>");
            inside_turn = false;
        }
    }
}

/* The templates that wrap every message as  before ROLE after CONTENT end  and open the assistant's turn the
 * same way: llama3 (which trims the content), chatml and zephyr. */
typedef struct role_markers {
    const char *before_role, *after_role, *end;
    bool trim_content;
} role_markers;

static const role_markers llama3_markers = {"<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", true};
static const role_markers chatml_markers = {"<|im_start|>", "\n", "<|im_end|>\n", false};
static const role_markers zephyr_markers = {"<|", "|>\n", "</s>\n", false};

static void write_marked(prompt_builder *b, const role_markers *m, const chat_message *messages, size_t n,
                         bool add_generation_prompt)
{
    for (size_t i = 0; i < n; i++) {
        append(b, m->before_role);
        append(b, messages[i].role);
        append(b, m->after_role);
        if (m->trim_content) append_trimmed(b, messages[i].content);
        else append(b, messages[i].content);
        append(b, m->end);
    }
    if (add_generation_prompt) {
        append(b, m->before_role);
        append(b, "assistant");
        append(b, m->after_role);
    }
}

static vkllm_status check_messages(const chat_message *messages, size_t n)
{
    if (n > 0 && !messages)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "chat_format: messages is NULL with %zu messages", n);
    for (size_t i = 0; i < n; i++)
        if (!messages[i].role || !messages[i].content)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "chat_format: message %zu has a NULL %s", i,
                              messages[i].role ? "content" : "role");
    return VKLLM_OK;
}

vkllm_status chat_format(chat_template tmpl, const chat_message *messages, size_t n_messages,
                         bool add_generation_prompt, char **out_prompt)
{
    if (!out_prompt) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "chat_format: out_prompt is NULL");
    *out_prompt = NULL;
    if (tmpl == CHAT_TEMPLATE_UNKNOWN || (unsigned)tmpl >= CHAT_TEMPLATE_COUNT)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "chat_format: template %d is not a supported family (llama2, llama3, chatml, zephyr)",
                          (int)tmpl);
    VKLLM_TRY(check_messages(messages, n_messages));

    prompt_builder b = { 0 };
    append(&b, ""); /* an empty conversation still yields a string */
    switch (tmpl) {
    case CHAT_TEMPLATE_LLAMA2: write_llama2(&b, messages, n_messages); break;
    case CHAT_TEMPLATE_LLAMA3: write_marked(&b, &llama3_markers, messages, n_messages, add_generation_prompt); break;
    case CHAT_TEMPLATE_CHATML: write_marked(&b, &chatml_markers, messages, n_messages, add_generation_prompt); break;
    case CHAT_TEMPLATE_ZEPHYR: write_marked(&b, &zephyr_markers, messages, n_messages, add_generation_prompt); break;
    default: break; /* ruled out above */
    }
    if (b.out_of_memory) {
        free(b.data);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "chat_format: no memory for a %zu-byte prompt", b.len);
    }
    *out_prompt = b.data;
    return VKLLM_OK;
}
