/* Chat templates: exact prompts per family and detection from real template texts.
 *
 * The conversation and the expected llama2, llama3 and chatml prompts are llama.cpp's
 * (tests/test-chat-template.cpp: bofenghuang/vigogne-2-70b-chat, Llama-3, teknium/OpenHermes-2.5).
 * llama.cpp has no zephyr case with </s>; that expectation is HuggingFaceH4/zephyr-7b-beta's template
 * rendered by hand with eos_token = "</s>". */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"

static const chat_message conversation[] = {
    { "system", "You are a helpful assistant" },
    { "user", "Hello" },
    { "assistant", "Hi there" },
    { "user", "Who are you" },
    { "assistant", "   I am an assistant   " },
    { "user", "Another question" },
};
#define N_CONVERSATION (sizeof(conversation) / sizeof(conversation[0]))

static void expect_prompt(chat_template tmpl, const chat_message *messages, size_t n, bool add_generation_prompt,
                          const char *expected)
{
    char *prompt = NULL;
    vkllm_status st = chat_format(tmpl, messages, n, add_generation_prompt, &prompt);
    if (st != VKLLM_OK) fail_msg("chat_format(%s): %s", chat_template_name(tmpl), vkllm_last_error());
    assert_non_null(prompt);
    assert_string_equal(prompt, expected);
    free(prompt);
}

static void test_llama2(void **state)
{
    (void)state;
    expect_prompt(CHAT_TEMPLATE_LLAMA2, conversation, N_CONVERSATION, true,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
                  "[INST] Who are you [/INST]I am an assistant</s>[INST] Another question [/INST]");
    /* [/INST] already opens the answer, so the generation prompt adds nothing */
    expect_prompt(CHAT_TEMPLATE_LLAMA2, conversation, N_CONVERSATION, false,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
                  "[INST] Who are you [/INST]I am an assistant</s>[INST] Another question [/INST]");
}

static void test_llama3(void **state)
{
    (void)state;
    expect_prompt(CHAT_TEMPLATE_LLAMA3, conversation, N_CONVERSATION, true,
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect_prompt(CHAT_TEMPLATE_LLAMA3, conversation + 1, 1, false,
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>");
}

static void test_chatml(void **state)
{
    (void)state;
    expect_prompt(CHAT_TEMPLATE_CHATML, conversation, N_CONVERSATION, true,
                  "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n"
                  "<|im_start|>user\nWho are you<|im_end|>\n"
                  "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
                  "<|im_start|>user\nAnother question<|im_end|>\n"
                  "<|im_start|>assistant\n");
    expect_prompt(CHAT_TEMPLATE_CHATML, conversation, 2, false,
                  "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n");
}

static void test_zephyr(void **state)
{
    (void)state;
    expect_prompt(CHAT_TEMPLATE_ZEPHYR, conversation, N_CONVERSATION, true,
                  "<|system|>\nYou are a helpful assistant</s>\n"
                  "<|user|>\nHello</s>\n"
                  "<|assistant|>\nHi there</s>\n"
                  "<|user|>\nWho are you</s>\n"
                  "<|assistant|>\n   I am an assistant   </s>\n"
                  "<|user|>\nAnother question</s>\n"
                  "<|assistant|>\n");
    expect_prompt(CHAT_TEMPLATE_ZEPHYR, conversation + 1, 1, false, "<|user|>\nHello</s>\n");
}

static void test_empty_conversation(void **state)
{
    (void)state;
    expect_prompt(CHAT_TEMPLATE_CHATML, NULL, 0, true, "<|im_start|>assistant\n");
    expect_prompt(CHAT_TEMPLATE_LLAMA3, NULL, 0, false, "");
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char *prompt = (char *)"untouched";
    assert_int_equal(chat_format(CHAT_TEMPLATE_UNKNOWN, conversation, 1, true, &prompt),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_null(prompt);
    assert_int_equal(chat_format((chat_template)99, conversation, 1, true, &prompt), VKLLM_ERROR_INVALID_ARGUMENT);
    const chat_message no_content[] = { { "user", NULL } };
    assert_int_equal(chat_format(CHAT_TEMPLATE_CHATML, no_content, 1, true, &prompt), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "message 0"));
    assert_int_equal(chat_format(CHAT_TEMPLATE_CHATML, NULL, 2, true, &prompt), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(chat_format(CHAT_TEMPLATE_CHATML, conversation, 1, true, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(chat_template_from_name("llama2"), CHAT_TEMPLATE_LLAMA2);
    assert_int_equal(chat_template_from_name("llama3"), CHAT_TEMPLATE_LLAMA3);
    assert_int_equal(chat_template_from_name("chatml"), CHAT_TEMPLATE_CHATML);
    assert_int_equal(chat_template_from_name("zephyr"), CHAT_TEMPLATE_ZEPHYR);
    assert_int_equal(chat_template_from_name("gemma"), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_from_name(""), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_from_name(NULL), CHAT_TEMPLATE_UNKNOWN);
    for (int t = CHAT_TEMPLATE_UNKNOWN + 1; t < CHAT_TEMPLATE_COUNT; t++)
        assert_int_equal(chat_template_from_name(chat_template_name((chat_template)t)), t);
    assert_string_equal(chat_template_name(CHAT_TEMPLATE_UNKNOWN), "unknown");
    assert_string_equal(chat_template_name((chat_template)99), "unknown");
}

/* ---- detection fixtures: excerpts of the templates shipped in the models' tokenizer configs ---- */

/* meta-llama/Llama-2-7b-chat-hf */
static const char *const llama2_meta =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
    "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = "
    "message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
    "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}";

/* mistralai/Mistral-7B-Instruct-v0.2, a bare [INST] template (llama.cpp's llama2 without <<SYS>>) */
static const char *const mistral_v02 =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
    "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% endif %}{% endfor %}";

/* meta-llama/Llama-3.1-8B-Instruct (llama.cpp models/templates) */
static const char *const llama31 =
    "{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n{%- endif %}\n"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
    "'<|eot_id|>' }}\n{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n";

/* teknium/OpenHermes-2.5-Mistral-7B */
static const char *const chatml_openhermes =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* Qwen/Qwen2.5-7B-Instruct (llama.cpp models/templates) */
static const char *const qwen25 =
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

/* HuggingFaceH4/zephyr-7b-beta */
static const char *const zephyr_beta =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

/* Look-alikes of other families, which must not be taken for a supported one. */
static const char *const phi35_mini = /* microsoft/Phi-3.5-mini-instruct: <|user|> but <|end|> */
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + "
    "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";
static const char *const phi4 = /* microsoft/phi-4: <|im_start|> with <|im_sep|> */
    "{% for message in messages %}{% if (message['role'] == 'system') %}{{'<|im_start|>system<|im_sep|>' + "
    "message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}";
static const char *const mistral_v7 = /* mistralai/Mistral-Large-Instruct-2411 */
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
    "message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' + "
    "message['content'] + '[/SYSTEM_PROMPT]' }}{% endif %}{% endfor %}";
static const char *const mistral_nemo = /* mistralai/Mistral-Nemo-Instruct-2407 (v3-tekken) */
    "{%- if tools is not none and (message == user_messages[-1]) %}\n            {{- \"[AVAILABLE_TOOLS][\" }}\n"
    "        {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n";
static const char *const gemma =
    "{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
    "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
static const char *const glm_edge =
    "{% for item in messages %}{% if item['role'] == 'system' %}<|system|>\n{{ item['content'] }}{% elif "
    "item['role'] == 'user' %}<|user|>\n{{ item['content'] }}{% elif item['role'] == 'assistant' %}<|assistant|>\n"
    "{{ item['content'] }}{% endif %}{% endfor %}<|assistant|>";

static void test_detect_supported_families(void **state)
{
    (void)state;
    assert_int_equal(chat_template_detect(llama2_meta), CHAT_TEMPLATE_LLAMA2);
    assert_int_equal(chat_template_detect(mistral_v02), CHAT_TEMPLATE_LLAMA2);
    assert_int_equal(chat_template_detect(llama31), CHAT_TEMPLATE_LLAMA3);
    assert_int_equal(chat_template_detect(chatml_openhermes), CHAT_TEMPLATE_CHATML);
    assert_int_equal(chat_template_detect(qwen25), CHAT_TEMPLATE_CHATML);
    assert_int_equal(chat_template_detect(zephyr_beta), CHAT_TEMPLATE_ZEPHYR);
}

static void test_detect_rejects_other_families(void **state)
{
    (void)state;
    assert_int_equal(chat_template_detect(phi35_mini), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_detect(phi4), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_detect(mistral_v7), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_detect(mistral_nemo), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_detect(gemma), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_detect(glm_edge), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_detect(""), CHAT_TEMPLATE_UNKNOWN);
    assert_int_equal(chat_template_detect(NULL), CHAT_TEMPLATE_UNKNOWN);
}

static void test_detect_accepts_names(void **state)
{
    (void)state;
    assert_int_equal(chat_template_detect("zephyr"), CHAT_TEMPLATE_ZEPHYR);
    assert_int_equal(chat_template_detect("llama3"), CHAT_TEMPLATE_LLAMA3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_chatml),
        cmocka_unit_test(test_zephyr),
        cmocka_unit_test(test_empty_conversation),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_detect_supported_families),
        cmocka_unit_test(test_detect_rejects_other_families),
        cmocka_unit_test(test_detect_accepts_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
