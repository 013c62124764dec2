/* The public chat-template functions over src/chat/chat.c. */
#include <stdlib.h>

#include "chat/chat.h"
#include "model/model.h"
#include "runtime/error.h"

static chat_template pick(const vkllm_model *model, const char *template_name)
{
    return template_name ? chat_template_from_name(template_name) : chat_template_detect(model->chat_template);
}

const char *vkllm_chat_template_name(const vkllm_model *model, const char *template_name)
{
    chat_template t = pick(model, template_name);
    return t == CHAT_TEMPLATE_UNKNOWN ? NULL : chat_template_name(t);
}

vkllm_status vkllm_chat_format(const vkllm_model *model, const char *template_name, const vkllm_chat_message *messages,
                               size_t n_messages, int add_assistant, char **out)
{
    *out = NULL;
    chat_template t = pick(model, template_name);
    if (t == CHAT_TEMPLATE_UNKNOWN)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, template_name
                              ? "chat template '%s' is not one of llama2, llama3, chatml, zephyr"
                              : "%s: the model's chat template is not one vkllm knows (llama2, llama3, chatml, zephyr); "
                                "name one",
                          template_name ? template_name : model->path);
    chat_message *list = calloc(n_messages ? n_messages : 1, sizeof *list);
    if (!list) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "chat messages");
    for (size_t i = 0; i < n_messages; i++) list[i] = (chat_message){messages[i].role, messages[i].content};
    vkllm_status st = chat_format(t, list, n_messages, add_assistant != 0, out);
    free(list);
    return st;
}

void vkllm_free(void *p) { free(p); }
