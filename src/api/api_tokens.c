/* The public token functions: thin wrappers over the model's tokenizer. */
#include "model/model.h"
#include "runtime/error.h"

vkllm_token vkllm_token_bos(const vkllm_model *model) { return tokenizer_bos(model->tok); }
vkllm_token vkllm_token_eos(const vkllm_model *model) { return tokenizer_eos(model->tok); }
int vkllm_token_is_eog(const vkllm_model *model, vkllm_token token) { return tokenizer_is_eog(model->tok, token); }

vkllm_status vkllm_tokenize(const vkllm_model *model, const char *text, size_t len, int add_special,
                            int parse_special, vkllm_token *tokens, size_t capacity, size_t *n_tokens)
{
    if (!model || (!text && len)) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkllm_tokenize: model or text is NULL");
    return tokenizer_encode(model->tok, text ? text : "", len, add_special != 0, parse_special != 0, tokens, capacity,
                            n_tokens);
}

vkllm_status vkllm_token_to_piece(const vkllm_model *model, vkllm_token token, char *buf, size_t capacity,
                                  size_t *n_bytes)
{
    return tokenizer_token_piece(model->tok, token, false, buf, capacity, n_bytes);
}

vkllm_status vkllm_detokenize(const vkllm_model *model, const vkllm_token *tokens, size_t n_tokens, char *buf,
                              size_t capacity, size_t *n_bytes)
{
    VKLLM_TRY(tokenizer_decode(model->tok, tokens, n_tokens, false, false, buf, capacity, n_bytes));
    if (*n_bytes < capacity) buf[*n_bytes] = '\0';
    return VKLLM_OK;
}
