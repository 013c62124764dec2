/* AWQ (src/quantize/awq.c): folded into an F32 file (the scales Q4_0's rounding asks for, the weights kept in F32),
 * the model computes the same function as before: the logits of a prompt agree within float error, while the
 * norm vectors and weights did change. */
#include "harness.h"
#include "paths.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "runtime/error.h"
#include "quantize/quantize.h"
#include "vkllm.h"

static void logits_of(const char *path, const vkllm_token *tokens, uint32_t n, float *out, uint32_t *n_vocab)
{
    vkllm_model *m = NULL;
    vkllm_context *ctx = NULL;
    if (vkllm_model_load(path, &m) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    vkllm_model_info info = {0};
    vkllm_model_get_info(m, &info);
    *n_vocab = info.n_vocab;
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = n;
    cp.n_outputs_max = n;
    cp.type_k = VKLLM_KV_F32;
    cp.type_v = VKLLM_KV_F32;
    if (vkllm_context_create(m, &cp, &ctx) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    int32_t pos[64], seq[64];
    for (uint32_t i = 0; i < n; i++) pos[i] = (int32_t)i, seq[i] = 0;
    vkllm_batch b = {n, tokens, pos, seq, NULL};
    if (vkllm_decode(ctx, &b) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
    for (uint32_t i = 0; i < n; i++) memcpy(out + (size_t)i * info.n_vocab, vkllm_get_logits(ctx, i), info.n_vocab * 4);
    vkllm_context_free(ctx);
    vkllm_model_free(m);
}

static void test_awq_folded_f32_same_function(void **state)
{
    (void)state;
    const char *model = th_join_(th_shared_dir(), "models/stories260K.gguf");
    const char *calib = th_join_(th_shared_dir(), "data/stories-calib.txt");
    if (access(model, R_OK) != 0 || access(calib, R_OK) != 0) skip();
    char folded[512];
    snprintf(folded, sizeof folded, "%s/test_awq_folded_%ld.gguf", th_binary_dir(), (long)getpid());
    quant_recipe f32, q4;
    assert_true(quant_recipe_from_name("F32", false, &f32));
    assert_true(quant_recipe_from_name("Q4_0", false, &q4));
    quant_calib_options co = {.text_path = calib, .n_ctx = 128, .chunks = 8, .awq = true, .awq_search_recipe = &q4};
    quantize_options o = {.calib = &co};
    if (quantize_file_ex(model, folded, &f32, &o) != VKLLM_OK) fail_msg("%s", vkllm_last_error());

    /* The rewrite did something: norms and weights differ. */
    gguf_file *a = NULL, *b = NULL;
    assert_int_equal(gguf_open(model, &a), VKLLM_OK);
    assert_int_equal(gguf_open(folded, &b), VKLLM_OK);
    int changed = 0;
    static const char *const names[] = {"blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.1.ffn_norm.weight",
                                        "blk.1.ffn_gate.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const gguf_tensor_info *x = gguf_find_tensor(a, names[i]), *y = gguf_find_tensor(b, names[i]);
        assert_non_null(x);
        assert_non_null(y);
        assert_int_equal(y->type, 0 /* F32 */);
        changed += memcmp(x->data, y->data, (size_t)x->size) != 0;
    }
    printf("AWQ changed %d of the %zu tensors checked\n", changed, sizeof names / sizeof names[0]);
    assert_true(changed >= 2);
    gguf_close(a), gguf_close(b);

    static const vkllm_token prompt[] = {1, 403, 407, 261, 378, 304, 259, 324, 285, 310, 266, 395, 286, 260, 313, 318};
    const uint32_t n = sizeof prompt / sizeof prompt[0];
    float *x = malloc((size_t)n * 4096 * sizeof *x), *y = malloc((size_t)n * 4096 * sizeof *y);
    uint32_t vocab = 0;
    logits_of(model, prompt, n, x, &vocab);
    logits_of(folded, prompt, n, y, &vocab);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < (size_t)n * vocab; i++) {
        worst = fmax(worst, fabs((double)x[i] - y[i]));
        scale = fmax(scale, fabs((double)x[i]));
    }
    printf("folded F32 vs original: logits differ by at most %.3g (largest logit %.3g)\n", worst, scale);
    assert_true(worst < 1e-3 * fmax(1.0, scale));
    free(x), free(y);
    remove(folded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_awq_folded_f32_same_function),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
