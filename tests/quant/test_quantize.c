/* vkllm quantize and the shared per-tensor type rules: pure types byte-equal to quant_quantize_row of the
 * F32 data, mixtures with llama.cpp's choices (the tables below are what llama-quantize chose for the same
 * files), synth and quantize agreeing byte for byte, requantizing, and bad inputs. */
#include "harness.h"
#include "paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/error.h"
#include "gguf/gguf.h"
#include "quantize/quantize.h"
#include "tools/synth.h"

static char g_tiny[512], g_qwen[512], g_out[512];

static void write_synth(const char *preset, const char *type, const char *path)
{
    synth_options o = {.seed = 3};
    assert_true(quant_recipe_from_name(type, false, &o.recipe));
    if (synth_write(synth_preset_find(preset), &o, path) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
}

static int setup(void **state)
{
    (void)state;
    long pid = (long)getpid();
    snprintf(g_tiny, sizeof g_tiny, "%s/test_quantize_tiny_%ld.gguf", th_binary_dir(), pid);
    snprintf(g_qwen, sizeof g_qwen, "%s/test_quantize_qwen_%ld.gguf", th_binary_dir(), pid);
    snprintf(g_out, sizeof g_out, "%s/test_quantize_out_%ld.gguf", th_binary_dir(), pid);
    synth_options o = {.seed = 3};
    quant_recipe_from_name("F32", false, &o.recipe);
    if (synth_write(synth_preset_find("tiny"), &o, g_tiny) != VKLLM_OK ||
        synth_write(synth_preset_find("tiny-qwen2"), &o, g_qwen) != VKLLM_OK) {
        fprintf(stderr, "setup: %s\n", vkllm_last_error());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(g_tiny);
    remove(g_qwen);
    remove(g_out);
    return 0;
}

static void quantize(const char *in, const char *type, bool pure)
{
    quant_recipe recipe;
    assert_true(quant_recipe_from_name(type, pure, &recipe));
    if (quantize_file(in, g_out, &recipe, NULL, NULL) != VKLLM_OK) fail_msg("%s", vkllm_last_error());
}

static void test_recipe_names(void **state)
{
    (void)state;
    quant_recipe r;
    assert_true(quant_recipe_from_name("q4_k_m", false, &r));
    assert_string_equal(r.name, "Q4_K_M");
    assert_int_equal(r.ftype, QUANT_FTYPE_Q4_K_M);
    assert_int_equal(r.base, QUANT_Q4_K);
    assert_false(r.pure);
    assert_true(quant_recipe_from_name("Q4_K", false, &r)); /* pure, recorded as llama.cpp's alias */
    assert_true(r.pure);
    assert_int_equal(r.ftype, QUANT_FTYPE_Q4_K_M);
    assert_true(quant_recipe_from_name("Q2_K", false, &r));
    assert_false(r.pure);
    assert_int_equal(r.ftype, QUANT_FTYPE_Q2_K);
    assert_true(quant_recipe_from_name("Q2_K", true, &r));
    assert_true(r.pure);
    assert_true(quant_recipe_from_name("BF16", false, &r));
    assert_int_equal(r.ftype, QUANT_FTYPE_BF16);
    assert_false(quant_recipe_from_name("Q4_K_X", false, &r));
    assert_false(quant_recipe_from_name("IQ2_XXS", false, &r));
    assert_false(quant_recipe_from_name(NULL, false, &r));
}

static uint64_t rows_of(const gguf_tensor_info *t)
{
    uint64_t rows = 1;
    for (uint32_t d = 1; d < t->n_dims; d++) rows *= t->ne[d];
    return rows;
}

/* out's tensor equals quantizing in's (dequantized) rows with quant_quantize_row. */
static void check_bytes(const gguf_tensor_info *in, const gguf_tensor_info *out)
{
    const uint64_t n = in->ne[0], in_row = quant_row_size(in->type, n), out_row = quant_row_size(out->type, n);
    float *row = malloc(n * sizeof *row);
    uint8_t *packed = malloc(n * sizeof *row);
    for (uint64_t r = 0; r < rows_of(in); r++) {
        assert_int_equal(quant_dequantize_row(in->type, (const uint8_t *)in->data + r * in_row, row, n), VKLLM_OK);
        assert_int_equal(quant_quantize_row(out->type, row, packed, n), VKLLM_OK);
        if (memcmp(packed, (const uint8_t *)out->data + r * out_row, out_row) != 0)
            fail_msg("%.*s row %llu differs", (int)out->name.len, out->name.data, (unsigned long long)r);
    }
    free(row);
    free(packed);
}

static void check_pure(const char *in_path, const char *type, bool force)
{
    quantize(in_path, type, force);
    quant_recipe recipe;
    quant_recipe_from_name(type, force, &recipe);
    gguf_file *in = NULL, *out = NULL;
    assert_int_equal(gguf_open(in_path, &in), VKLLM_OK);
    assert_int_equal(gguf_open(g_out, &out), VKLLM_OK);
    assert_int_equal(gguf_u32_or(out, "general.file_type", 999), recipe.ftype);
    assert_int_equal(gguf_u32_or(out, "general.quantization_version", 999), 2);
    assert_int_equal(out->n_kv, in->n_kv);
    assert_int_equal(out->n_tensors, in->n_tensors);
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        const gguf_tensor_info *a = &in->tensors[i], *b = &out->tensors[i];
        assert_true(a->name.len == b->name.len && memcmp(a->name.data, b->name.data, a->name.len) == 0);
        assert_int_equal(b->type, a->n_dims == 1 ? QUANT_F32 : recipe.base);
        check_bytes(a, b);
    }
    gguf_close(in);
    gguf_close(out);
}

static void test_pure_types(void **state)
{
    (void)state;
    static const char *const pure[] = {"F32",  "F16",  "BF16", "Q8_0", "Q4_0", "Q4_1",
                                       "Q5_0", "Q5_1", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
    for (size_t i = 0; i < sizeof pure / sizeof pure[0]; i++) check_pure(g_tiny, pure[i], false);
    check_pure(g_tiny, "Q2_K", true);
    check_pure(g_qwen, "Q4_K", false);
}

/* What llama-quantize (llama.cpp 80fb11a) chose for the 2-layer tiny presets. */
typedef struct mixture_expect {
    const char *recipe;
    quant_type embd, output, attn_v[2], ffn_down[2], attn_output, other;
} mixture_expect;

#define Q(t) QUANT_##t
static const mixture_expect tiny_mixtures[] = {
    {"Q2_K", Q(Q2_K), Q(Q6_K), {Q(Q3_K), Q(Q3_K)}, {Q(Q3_K), Q(Q3_K)}, Q(Q3_K), Q(Q2_K)},
    {"Q3_K_S", Q(Q3_K), Q(Q6_K), {Q(Q3_K), Q(Q3_K)}, {Q(Q3_K), Q(Q3_K)}, Q(Q3_K), Q(Q3_K)},
    {"Q3_K_M", Q(Q3_K), Q(Q6_K), {Q(Q5_K), Q(Q5_K)}, {Q(Q4_K), Q(Q4_K)}, Q(Q4_K), Q(Q3_K)},
    {"Q3_K_L", Q(Q3_K), Q(Q6_K), {Q(Q5_K), Q(Q5_K)}, {Q(Q5_K), Q(Q5_K)}, Q(Q5_K), Q(Q3_K)},
    {"Q4_K_S", Q(Q4_K), Q(Q6_K), {Q(Q5_K), Q(Q5_K)}, {Q(Q4_K), Q(Q4_K)}, Q(Q4_K), Q(Q4_K)},
    {"Q4_K_M", Q(Q4_K), Q(Q6_K), {Q(Q4_K), Q(Q6_K)}, {Q(Q4_K), Q(Q6_K)}, Q(Q4_K), Q(Q4_K)},
    {"Q5_K_S", Q(Q5_K), Q(Q6_K), {Q(Q5_K), Q(Q5_K)}, {Q(Q5_K), Q(Q5_K)}, Q(Q5_K), Q(Q5_K)},
    {"Q5_K_M", Q(Q5_K), Q(Q6_K), {Q(Q5_K), Q(Q6_K)}, {Q(Q5_K), Q(Q6_K)}, Q(Q5_K), Q(Q5_K)},
};

static quant_type expected_type(const mixture_expect *e, const gguf_tensor_info *t, bool tied)
{
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
    int layer = 0;
    sscanf(name, "blk.%d.", &layer);
    if (t->n_dims == 1) return QUANT_F32;
    if (strcmp(name, "token_embd.weight") == 0) return tied ? e->output : e->embd;
    if (strcmp(name, "output.weight") == 0) return e->output;
    if (strstr(name, "attn_v.weight")) return e->attn_v[layer];
    if (strstr(name, "ffn_down.weight")) return e->ffn_down[layer];
    if (strstr(name, "attn_output.weight")) return e->attn_output;
    return e->other;
}

static void check_mixture(const char *in_path, const mixture_expect *e, bool tied)
{
    quantize(in_path, e->recipe, false);
    gguf_file *out = NULL;
    assert_int_equal(gguf_open(g_out, &out), VKLLM_OK);
    for (uint64_t i = 0; i < out->n_tensors; i++) {
        const gguf_tensor_info *t = &out->tensors[i];
        quant_type want = expected_type(e, t, tied);
        if (t->type != want)
            fail_msg("%s: %.*s is %s, llama.cpp chose %s", e->recipe, (int)t->name.len, t->name.data,
                     quant_get_traits(t->type)->name, quant_get_traits(want)->name);
    }
    gguf_close(out);
}

static void test_mixtures(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof tiny_mixtures / sizeof tiny_mixtures[0]; i++) {
        check_mixture(g_tiny, &tiny_mixtures[i], false);
        check_mixture(g_qwen, &tiny_mixtures[i], true);
    }
}

/* The layer rules on a 32-layer model, GQA, the 70B bump, fallbacks and tensors that are never quantized. */
static void test_type_rules(void **state)
{
    (void)state;
    quant_model_shape m = {.arch = "llama", .n_layer = 32, .n_head = 32, .n_head_kv = 8, .n_attn_v = 32};
    quant_recipe q4km, q2k, q3km, q40;
    quant_recipe_from_name("Q4_K_M", false, &q4km);
    quant_recipe_from_name("Q2_K", false, &q2k);
    quant_recipe_from_name("Q3_K_M", false, &q3km);
    quant_recipe_from_name("Q4_0", false, &q40);
    const uint64_t wide[2] = {4096, 1024}, odd[2] = {896, 128}, ragged[2] = {100, 128};
    static const int more_bits[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (int il = 0, k = 0; il < 32; il++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", il);
        bool more = k < 16 && more_bits[k] == il;
        k += more;
        assert_int_equal(quant_recipe_tensor_type(&q4km, &m, name, 2, wide, QUANT_F32), more ? QUANT_Q6_K : QUANT_Q4_K);
        assert_int_equal(quant_recipe_tensor_type(&q3km, &m, name, 2, wide, QUANT_F32), il < 2 ? QUANT_Q5_K : QUANT_Q4_K);
        assert_int_equal(quant_recipe_tensor_type(&q2k, &m, name, 2, wide, QUANT_F32), QUANT_Q4_K); /* GQA 4 */
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", il);
        assert_int_equal(quant_recipe_tensor_type(&q3km, &m, name, 2, wide, QUANT_F32), il < 2 ? QUANT_Q5_K : QUANT_Q4_K);
    }
    /* A 70B llama: attn_v of Q3_K/Q4_K gets Q5_K. */
    quant_model_shape big = {.arch = "llama", .n_layer = 80, .n_head = 64, .n_head_kv = 8, .n_attn_v = 80};
    assert_int_equal(quant_recipe_tensor_type(&q3km, &big, "blk.40.attn_v.weight", 2, wide, QUANT_F32), QUANT_Q5_K);
    /* Rows that take no 256-element block, or no 32-element block. */
    assert_int_equal(quant_recipe_tensor_type(&q4km, &m, "blk.5.attn_q.weight", 2, odd, QUANT_F32), QUANT_Q5_0);
    assert_int_equal(quant_recipe_tensor_type(&q4km, &m, "blk.0.attn_v.weight", 2, odd, QUANT_F32), QUANT_Q8_0);
    assert_int_equal(quant_recipe_tensor_type(&q2k, &m, "blk.5.ffn_up.weight", 2, odd, QUANT_F32), QUANT_Q4_0);
    assert_int_equal(quant_recipe_tensor_type(&q4km, &m, "output.weight", 2, odd, QUANT_F32), QUANT_Q8_0);
    assert_int_equal(quant_recipe_tensor_type(&q40, &m, "blk.5.attn_q.weight", 2, ragged, QUANT_F32), QUANT_F16);
    /* Never quantized: 1-D tensors, norms, biases keep their type. */
    assert_int_equal(quant_recipe_tensor_type(&q4km, &m, "blk.0.attn_norm.weight", 1, wide, QUANT_F16), QUANT_F16);
    assert_int_equal(quant_recipe_tensor_type(&q4km, &m, "blk.0.attn_q.bias", 1, wide, QUANT_F32), QUANT_F32);
    assert_int_equal(quant_recipe_tensor_type(&q4km, &m, "blk.0.ffn_norm.weight", 2, wide, QUANT_F32), QUANT_F32);
}

/* --output-tensor-type / --token-embedding-type win over both the pure and the mixture choice (after them, as
 * in llama-quantize), fall back when their block does not divide the row, and touch no other tensor. */
static void test_type_overrides(void **state)
{
    (void)state;
    quant_model_shape m = {.arch = "llama", .n_layer = 32, .n_head = 32, .n_head_kv = 32, .n_attn_v = 32};
    const uint64_t wide[2] = {4096, 32000}, narrow[2] = {64, 512};
    for (int pure = 0; pure <= 1; pure++) {
        quant_recipe r;
        assert_true(quant_recipe_from_name(pure ? "Q4_0" : "Q4_K_M", false, &r));
        r.set_output = true, r.output_type = QUANT_Q8_0;
        r.set_token_embd = true, r.token_embd_type = QUANT_Q6_K;
        assert_int_equal(quant_recipe_tensor_type(&r, &m, "output.weight", 2, wide, QUANT_F32), QUANT_Q8_0);
        assert_int_equal(quant_recipe_tensor_type(&r, &m, "token_embd.weight", 2, wide, QUANT_F32), QUANT_Q6_K);
        assert_int_equal(quant_recipe_tensor_type(&r, &m, "token_embd.weight", 2, narrow, QUANT_F32), QUANT_Q8_0);
        assert_int_equal(quant_recipe_tensor_type(&r, &m, "blk.3.attn_q.weight", 2, wide, QUANT_F32),
                         pure ? QUANT_Q4_0 : QUANT_Q4_K);
        r.output_type = QUANT_F32; /* an F32 recipe base is not needed for a float override */
        assert_int_equal(quant_recipe_tensor_type(&r, &m, "output.weight", 2, wide, QUANT_F16), QUANT_F32);
    }
    /* Tied embeddings: token_embd is the output, so in a mixture --output-tensor-type reaches it unless
     * --token-embedding-type names it (llama.cpp's order); a pure recipe keeps its base type. */
    quant_model_shape tied = m;
    tied.tied_embeddings = true;
    quant_recipe mix, pure;
    assert_true(quant_recipe_from_name("Q4_K_M", false, &mix));
    assert_true(quant_recipe_from_name("Q4_0", false, &pure));
    mix.set_output = pure.set_output = true, mix.output_type = pure.output_type = QUANT_Q8_0;
    assert_int_equal(quant_recipe_tensor_type(&mix, &tied, "token_embd.weight", 2, wide, QUANT_F32), QUANT_Q8_0);
    assert_int_equal(quant_recipe_tensor_type(&pure, &tied, "token_embd.weight", 2, wide, QUANT_F32), QUANT_Q4_0);
    mix.set_token_embd = true, mix.token_embd_type = QUANT_Q5_K;
    assert_int_equal(quant_recipe_tensor_type(&mix, &tied, "token_embd.weight", 2, wide, QUANT_F32), QUANT_Q5_K);
}

/* synth straight to a type and synth F32 then quantize give the same file, byte for byte. */
static void test_synth_equals_quantize(void **state)
{
    (void)state;
    static const char *const types[] = {"Q6_K", "Q4_K_M", "Q2_K"};
    char direct[600];
    snprintf(direct, sizeof direct, "%s.direct", g_out);
    for (size_t i = 0; i < 3; i++) {
        write_synth("tiny", types[i], direct);
        quantize(g_tiny, types[i], false);
        FILE *a = fopen(direct, "rb"), *b = fopen(g_out, "rb");
        assert_non_null(a);
        assert_non_null(b);
        int ca, cb;
        long offset = 0;
        do {
            ca = fgetc(a);
            cb = fgetc(b);
            if (ca != cb) fail_msg("%s: the files differ at byte %ld", types[i], offset);
            offset++;
        } while (ca != EOF);
        fclose(a);
        fclose(b);
    }
    remove(direct);
}

/* Quantized input is dequantized first. */
static void test_requantize(void **state)
{
    (void)state;
    char q8[600];
    snprintf(q8, sizeof q8, "%s.q8", g_out);
    write_synth("tiny", "Q8_0", q8);
    quantize(q8, "Q4_0", false);
    gguf_file *in = NULL, *out = NULL;
    assert_int_equal(gguf_open(q8, &in), VKLLM_OK);
    assert_int_equal(gguf_open(g_out, &out), VKLLM_OK);
    for (uint64_t i = 0; i < in->n_tensors; i++) {
        assert_int_equal(out->tensors[i].type, in->tensors[i].n_dims == 1 ? QUANT_F32 : QUANT_Q4_0);
        check_bytes(&in->tensors[i], &out->tensors[i]);
    }
    gguf_close(in);
    gguf_close(out);
    remove(q8);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    quant_recipe r;
    quant_recipe_from_name("Q4_0", false, &r);
    assert_int_not_equal(quantize_file("/nonexistent/model.gguf", g_out, &r, NULL, NULL), VKLLM_OK);
    assert_int_equal(quantize_file(g_tiny, g_tiny, &r, NULL, NULL), VKLLM_ERROR_INVALID_ARGUMENT);
    /* A tensor type vkllm cannot decode (IQ4_NL) that would need converting. */
    char odd[600];
    snprintf(odd, sizeof odd, "%s.iq", g_out);
    gguf_writer *w = NULL;
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "llama.block_count", 1);
    gguf_writer_set_u32(w, "llama.attention.head_count", 1);
    static uint8_t block[2 * 18];
    const uint64_t ne[2] = {32, 2};
    assert_int_equal(gguf_writer_add_tensor(w, "blk.0.attn_q.weight", 20, 2, ne, block, sizeof block), VKLLM_OK);
    assert_int_equal(gguf_writer_write(w, odd), VKLLM_OK);
    gguf_writer_free(w);
    assert_int_equal(quantize_file(odd, g_out, &r, NULL, NULL), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_last_error(), "IQ4_NL"));
    /* No architecture hyperparameters. */
    assert_int_equal(gguf_writer_create(&w), VKLLM_OK);
    gguf_writer_set_str(w, "general.architecture", "llama");
    assert_int_equal(gguf_writer_write(w, odd), VKLLM_OK);
    gguf_writer_free(w);
    assert_int_equal(quantize_file(odd, g_out, &r, NULL, NULL), VKLLM_ERROR_BAD_FORMAT);
    assert_non_null(strstr(vkllm_last_error(), "llama.block_count"));
    remove(odd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipe_names),
        cmocka_unit_test(test_pure_types),
        cmocka_unit_test(test_mixtures),
        cmocka_unit_test(test_type_rules),
        cmocka_unit_test(test_type_overrides),
        cmocka_unit_test(test_synth_equals_quantize),
        cmocka_unit_test(test_requantize),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
