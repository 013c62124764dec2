/* The forward pass on Vulkan against the plain-C reference (tests/harness/ref_llama.c) and against
 * llama2.c's published greedy text, plus batching, chunking, caching and bad input.
 *
 * Bounds (NMSE of the last position's logits against the double-precision reference, over the vocabulary):
 *  - F32 weights and KV cache: the GPU computes in float; errors are float rounding, ~1e-11.
 *  - F16 KV cache: each cached key and value is rounded to 11 significant bits, ~1e-7.
 *  - Quantized weights: the reference dequantizes the same blocks, so only arithmetic differs (f16 dot
 *    products where the device has fp16, float otherwise) plus the F16 cache: well under 1e-4.
 *  - The mat-vec's integer path (GPU tuning rows) rounds the input of each product to 8 bits per element,
 *    which alone gives these small random models up to 9.3e-5.  The reference quantizes those inputs the same
 *    way (ref_model_forward_q8: the layers' when the prompt comes in chunks the mat-vec takes, the head's
 *    always), and most runs then agree to 1e-14; but where the GPU's activation and the reference's (equal
 *    to f32 rounding, or to f16 where the tiled mat-mul computes in f16) fall on either side of a rounding
 *    step, that one element moves the logits as much again (measured up to 8.9e-5 on lavapipe): 1e-3. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tools/bench_prompt.h"
#include "model/context.h"
#include "harness.h"
#include "model/model.h"
#include "paths.h"
#include "ops/matmul/matmul_record.h"
#include "ref_llama.h"
#include "tools/synth.h"
#include "vkllm.h"

#define STORIES th_shared_path("models/stories260K.gguf")

static char tmpdir[] = "/tmp/vkllm-test-model-XXXXXX";

static void synth_model(const char *preset, const char *type, const char *path)
{
    synth_options o = {.seed = 42};
    assert_true(quant_recipe_from_name(type, true, &o.recipe));
    th_check_status(synth_write(synth_preset_find(preset), &o, path), "synth_write");
}

static vkllm_context *context(vkllm_model *m, uint32_t n_ctx, uint32_t n_batch, vkllm_kv_type kv)
{
    vkllm_context_params p = vkllm_context_default_params();
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.type_k = p.type_v = kv;
    p.n_seq_max = 3;
    vkllm_context *c = NULL;
    th_check_status(vkllm_context_create(m, &p, &c), "vkllm_context_create");
    return c;
}

/* Logits of the last of tokens[0..n) evaluated as one sequence (in chunks of the context's n_batch). */
static void gpu_logits(vkllm_context *c, const int32_t *tokens, uint32_t n, uint32_t n_batch, int32_t seq, float *out,
                       uint32_t n_vocab)
{
    th_check_status(vkllm_seq_truncate(c, seq, 0), "truncate");
    int32_t pos[512], seqs[512];
    int8_t want[512] = {0};
    for (uint32_t done = 0; done < n;) {
        uint32_t k = n - done < n_batch ? n - done : n_batch;
        for (uint32_t i = 0; i < k; i++) pos[i] = (int32_t)(done + i), seqs[i] = seq, want[i] = done + i == n - 1;
        vkllm_batch b = {k, tokens + done, pos, seqs, want};
        th_check_status(vkllm_decode(c, &b), "vkllm_decode");
        done += k;
    }
    const float *l = vkllm_get_logits(c, 0);
    assert_non_null(l);
    memcpy(out, l, n_vocab * sizeof *out);
}

static double logits_nmse(const double *ref, const float *got, uint32_t n)
{
    double err = 0, norm = 0;
    for (uint32_t i = 0; i < n; i++) {
        double d = ref[i] - got[i];
        err += d * d;
        norm += ref[i] * ref[i];
    }
    return err / norm;
}

/* One model file against the reference, with both caches and with the prompt in one batch and in chunks.  Twice
 * the tuning's mat-vec columns per pass in tokens (32 on lavapipe, 16 on GPU rows), chunks of one pass: on
 * lavapipe passes of 16 columns in both (the mat-vec's column count is a pipeline per weight type, compiled cold
 * in CI; a pass's remainder is test_quantized_cache_against_reference's and the op tests'). */
static void check_against_reference(const char *path, const char *what, double bound_f32, double bound_f16)
{
    ref_model *ref;
    th_check_status(ref_model_load(path, &ref), "ref_model_load");
    uint32_t n_vocab = ref_model_n_vocab(ref);
    double *expect = malloc(n_vocab * sizeof *expect);
    float *got = malloc(n_vocab * sizeof *got);
    vkllm_model *m = th_load_model(path);
    const ops_context *ops = m->ops;
    const uint32_t pass = ops->tuning->matvec_cols, N = 2 * pass;
    assert_true(pass >= 1 && pass <= OPS_MATVEC_MAX_COLS);
    int32_t tokens[2 * OPS_MATVEC_MAX_COLS];
    bench_prompt_tokens(n_vocab, tokens, N);
    char chunks[32];
    snprintf(chunks, sizeof chunks, "kv f32, chunks of %u", pass);
    struct { vkllm_kv_type kv; uint32_t n_batch; double bound; const char *name; } cases[] = {
        {VKLLM_KV_F32, 64, bound_f32, "kv f32, one batch"},
        {VKLLM_KV_F32, pass, bound_f32, chunks},
        {VKLLM_KV_F16, 64, bound_f16, "kv f16, one batch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t chunk = cases[i].n_batch < N ? cases[i].n_batch : N;
        bool q8_layers = ops->tuning->matvec_int_dot && ops_matmul_is_matvec(ops, chunk);
        bool q8_head = ops->tuning->matvec_int_dot && ops_matmul_is_matvec(ops, 1);
        ref_model_forward_q8(ref, tokens, N, q8_layers, q8_head, expect);
        vkllm_context *c = context(m, 128, cases[i].n_batch, cases[i].kv);
        gpu_logits(c, tokens, N, cases[i].n_batch, 0, got, n_vocab);
        double e = logits_nmse(expect, got, n_vocab);
        bool q8 = (q8_layers || q8_head) && ref_model_has_quantized(ref);
        double bound = q8 && cases[i].bound < 1e-3 ? 1e-3 : cases[i].bound;
        printf("  %-28s %-20s logits nmse %.3g (bound %.0e)\n", what, cases[i].name, e, bound);
        if (!(e <= bound)) fail_msg("%s %s: nmse %.3g", what, cases[i].name, e);
        vkllm_context_free(c);
    }
    th_free_model(m);
    ref_model_free(ref);
    free(expect);
    free(got);
}

static void test_stories_against_reference(void **state)
{
    check_against_reference(STORIES, "stories260K F32", 1e-9, 1e-5);
}

static void test_synth_types_against_reference(void **state)
{
    static const struct { const char *preset, *type; double f32, f16; } models[] = {
        {"tiny", "F32", 1e-9, 1e-5},     {"tiny", "F16", 1e-5, 1e-5},     {"tiny", "Q8_0", 1e-4, 1e-4},
        {"tiny", "Q4_0", 1e-4, 1e-4},    {"tiny", "Q4_K", 1e-4, 1e-4},    {"tiny", "Q6_K", 1e-4, 1e-4},
        {"tiny-qwen2", "F32", 1e-9, 1e-5}, {"tiny-qwen2", "Q8_0", 1e-4, 1e-4},
    };
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        char path[256], what[64];
        snprintf(path, sizeof path, "%s/%s-%s.gguf", tmpdir, models[i].preset, models[i].type);
        snprintf(what, sizeof what, "%s %s", models[i].preset, models[i].type);
        synth_model(models[i].preset, models[i].type, path);
        check_against_reference(path, what, models[i].f32, models[i].f16);
        remove(path);
    }
}

/* Quantized KV caches through the whole forward pass: the reference round-trips each K (after RoPE) and V row
 * through the CPU quantizer of the same type, so the logits agree up to the rare value whose float rounding on the
 * GPU puts it on the other side of a quantization level: measured on lavapipe, 1e-13 for the llama models and up
 * to 4e-7 (q8_0) and 7e-5 (q4_0) for tiny-qwen2, whose biases move more values near a level; the bounds are
 * 4-7x those.  stories260K (head 8:
 * blocks across its 4 kv heads), tiny (head 64, GQA) and tiny-qwen2 (biases, NeoX RoPE); one batch and chunks. */
static void test_quantized_cache_against_reference(void **state)
{
    char tiny[256], qwen[256];
    snprintf(tiny, sizeof tiny, "%s/tiny-F32-kv.gguf", tmpdir);
    snprintf(qwen, sizeof qwen, "%s/tiny-qwen2-F32-kv.gguf", tmpdir);
    synth_model("tiny", "F32", tiny);
    synth_model("tiny-qwen2", "F32", qwen);
    static const struct { vkllm_kv_type k, v; int qk, qv; bool rotate, center; double bound; } types[] = {
        {VKLLM_KV_Q8_0, VKLLM_KV_Q8_0, QUANT_Q8_0, QUANT_Q8_0, false, false, 3e-6},
        {VKLLM_KV_Q4_0, VKLLM_KV_Q4_0, QUANT_Q4_0, QUANT_Q4_0, false, false, 3e-4},
        {VKLLM_KV_Q8_0, VKLLM_KV_Q4_0, QUANT_Q8_0, QUANT_Q4_0, false, false, 3e-4},
        {VKLLM_KV_F16, VKLLM_KV_Q8_0, QUANT_F16, QUANT_Q8_0, false, false, 1e-6},
        {VKLLM_KV_Q8_0, VKLLM_KV_F16, QUANT_Q8_0, QUANT_F16, true, false, 3e-6},
        {VKLLM_KV_Q4_0, VKLLM_KV_Q8_0, QUANT_Q4_0, QUANT_Q8_0, true, false, 3e-4},
        {VKLLM_KV_Q8_0, VKLLM_KV_Q8_0, QUANT_Q8_0, QUANT_Q8_0, true, true, 3e-6},
        {VKLLM_KV_Q4_0, VKLLM_KV_F16, QUANT_Q4_0, QUANT_F16, false, true, 3e-4},
    };
    const char *paths[3] = {STORIES, tiny, qwen}, *names[3] = {"stories260K", "tiny", "tiny-qwen2"};
    enum { N = 23 };
    for (int mi = 0; mi < 3; mi++) {
        ref_model *ref;
        th_check_status(ref_model_load(paths[mi], &ref), "ref_model_load");
        uint32_t n_vocab = ref_model_n_vocab(ref);
        int32_t tokens[N];
        bench_prompt_tokens(n_vocab, tokens, N);
        double *expect = malloc(n_vocab * sizeof *expect);
        float *got = malloc(n_vocab * sizeof *got);
        assert_true(expect && got);
        vkllm_model *m = th_load_model(paths[mi]);
        float *center = NULL;
        for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
            ref_model_set_cache(ref, types[i].qk, types[i].qv, types[i].rotate);
            if (types[i].center && !center) { /* the mean key the first centered context made: the reference's too */
                vkllm_context_params p = vkllm_context_default_params();
                p.n_ctx = 64;
                p.type_k = VKLLM_KV_Q8_0;
                vkllm_context *c = NULL;
                th_check_status(vkllm_context_create(m, &p, &c), "vkllm_context_create (centered)");
                vkllm_context_free(c);
                assert_true(m->k_center_pairs > 0);
                size_t n = (size_t)m->cfg.n_layer * m->cfg.n_head_kv * m->k_center_pairs * 2;
                center = malloc(n * sizeof *center);
                assert_non_null(center);
                th_check_status(vkr_download(m->dev, &m->k_center, 0, center, n * sizeof *center), "k_center");
            }
            ref_model_set_k_center(ref, types[i].center ? center : NULL, types[i].center ? m->k_center_pairs : 0);
            ref_model_forward(ref, tokens, N, expect);
            for (uint32_t n_batch = 8; n_batch <= 64; n_batch += 56) {
                vkllm_context_params p = vkllm_context_default_params();
                p.n_ctx = 64;
                p.n_batch = n_batch;
                p.type_k = types[i].k;
                p.type_v = types[i].v;
                p.rotate_k = types[i].rotate;
                p.center_k = types[i].center;
                vkllm_context *c = NULL;
                th_check_status(vkllm_context_create(m, &p, &c), "vkllm_context_create");
                gpu_logits(c, tokens, N, n_batch, 0, got, n_vocab);
                double e = logits_nmse(expect, got, n_vocab);
                printf("  %-12s K %-5s%s%s V %-5s batch %2u: logits nmse %.3g (bound %.0e)\n", names[mi],
                       vkllm_kv_type_name(types[i].k), types[i].rotate ? " rotated" : "",
                       types[i].center ? " centered" : "", vkllm_kv_type_name(types[i].v), n_batch, e, types[i].bound);
                if (!(e <= types[i].bound))
                    fail_msg("%s K %s V %s: nmse %.3g", names[mi], vkllm_kv_type_name(types[i].k),
                             vkllm_kv_type_name(types[i].v), e);
                vkllm_context_free(c);
            }
        }
        /* F32 goes with F32 only: a clear error, and the model stays usable. */
        vkllm_context_params bad = vkllm_context_default_params();
        bad.type_k = VKLLM_KV_F32;
        bad.type_v = VKLLM_KV_Q8_0;
        vkllm_context *c = NULL;
        assert_int_equal(vkllm_context_create(m, &bad, &c), VKLLM_ERROR_UNSUPPORTED);
        assert_non_null(strstr(vkllm_last_error(), "a K cache of f32 with a V cache of q8_0"));
        bad.type_v = (vkllm_kv_type)7;
        assert_int_equal(vkllm_context_create(m, &bad, &c), VKLLM_ERROR_INVALID_ARGUMENT);
        th_free_model(m);
        ref_model_free(ref);
        free(center);
        free(expect);
        free(got);
    }
    remove(tiny);
    remove(qwen);
}

/* Dispatches recorded for one decoded token (greedy) of the model at path under the current tuning. */
static uint32_t decode_dispatches(const char *path)
{
    vkllm_model *m = th_load_model(path);
    vkllm_context *c = context(m, 64, 8, VKLLM_KV_F16);
    int32_t token = 1, pos = 0, seq = 0;
    vkllm_token out;
    vkllm_batch b = {1, &token, &pos, &seq, NULL};
    th_check_status(vkllm_decode_greedy(c, &b, &out), "vkllm_decode_greedy");
    uint32_t count = 0;
    for (int i = 0; i < CONTEXT_MAX_RECORDINGS; i++)
        if (c->recordings[i].n_groups == 1 && c->recordings[i].shape.n_tokens == 1)
            count = vkr_sequence_dispatch_count(c->recordings[i].groups[0]);
    vkllm_context_free(c);
    th_free_model(m);
    assert_true(count > 0);
    return count;
}

/* The GPU rows (on lavapipe: their shaders, not their speed) against the reference, where the RMSNorms quantize
 * x for the integer path themselves (ops_rms_norm_f32_q8: the same bits as quantize_q8, so the reference's
 * bounds hold unchanged); and per decoded token 2 dispatches fewer per layer and one fewer for the head than with
 * a row_wg the fused norm cannot take (12: the norm, then quantize_q8, as before the fusion). */
static void test_gpu_rows_quantize_in_the_norm(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/tiny-Q4_0-rows.gguf", tmpdir);
    synth_model("tiny", "Q4_0", path);
    static const char *rows[] = {"nvidia", "amd-wave64", "intel"};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char what[64];
        snprintf(what, sizeof what, "tiny Q4_0 (tuning %s)", rows[i]);
        setenv("VKLLM_TUNING", rows[i], 1);
        check_against_reference(path, what, 1e-4, 1e-4);
    }
    setenv("VKLLM_TUNING", "nvidia", 1);
    uint32_t fused = decode_dispatches(path);
    setenv("VKLLM_TUNE", "row_wg=12", 1);
    uint32_t separate = decode_dispatches(path);
    unsetenv("VKLLM_TUNE");
    unsetenv("VKLLM_TUNING");
    vkllm_model *m = th_load_model(path);
    uint32_t layers = m->cfg.n_layer;
    th_free_model(m);
    printf("  one decoded token, tuning nvidia: %u dispatches, %u with quantize_q8 on its own (%u layers)\n", fused,
           separate, layers);
    assert_int_equal(separate, fused + 2 * layers + 1);
    remove(path);
}

/* Loading costs a few queue submissions per weight, not one per row: the tiny preset's Q4_0 embedding (512
 * rows) is converted to F16 in slabs, each uploaded at once.  (One upload per row made a 32,000-row embedding
 * take 32,000 submit-and-wait round trips, silent seconds on a real GPU.) */
static void test_load_submits_per_tensor(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/tiny-Q4_0-submits.gguf", tmpdir);
    synth_model("tiny", "Q4_0", path);
    vkllm_model *m = th_load_model(path);
    uint64_t submits = vkr_submit_count(m->dev);
    printf("  %u weights loaded with %llu submits (embedding of %u rows)\n", m->tensors_loaded,
           (unsigned long long)submits, m->cfg.n_vocab);
    assert_true(m->cfg.n_vocab >= 512);
    /* quants and aux of each repacked weight are one upload each (every one is below the 16 MiB slab) */
    assert_true(submits <= 2ull * m->tensors_loaded);
    th_free_model(m);
    remove(path);
}

/* Logits of the last of 23 prompt tokens with a context of 128 positions in batches of 16. */
static void small_context_logits(const char *path, float *out, uint32_t *n_vocab, uint32_t *max_chunks)
{
    vkllm_model *m = th_load_model(path);
    vkllm_context *c = context(m, 128, 16, VKLLM_KV_F32);
    *n_vocab = m->cfg.n_vocab;
    *max_chunks = 1;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++)
        if (m->layers[l].w_gate_up && m->layers[l].w_gate_up->n_chunks > *max_chunks)
            *max_chunks = m->layers[l].w_gate_up->n_chunks;
    int32_t tokens[23];
    bench_prompt_tokens(m->cfg.n_vocab, tokens, 23);
    gpu_logits(c, tokens, 23, 16, 0, out, m->cfg.n_vocab);
    vkllm_context_free(c);
    th_free_model(m);
}

/* With VKLLM_MAX_ALLOCATION=256K the sub-allocator works in 256 KiB blocks and the tiny F16 model's stacked
 * gate/up weight (1024 x 256 F16, 512 KiB) is kept in two chunks: the logits are the very same. */
static void test_small_allocations_same_logits(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/tiny-F16-allocations.gguf", tmpdir);
    synth_model("tiny", "F16", path);
    float *whole = malloc(512 * sizeof *whole), *chunked = malloc(512 * sizeof *chunked);
    uint32_t n_vocab = 0, chunks_whole = 0, chunks_small = 0;
    small_context_logits(path, whole, &n_vocab, &chunks_whole);
    assert_int_equal(n_vocab, 512);
    setenv("VKLLM_MAX_ALLOCATION", "256K", 1);
    small_context_logits(path, chunked, &n_vocab, &chunks_small);
    unsetenv("VKLLM_MAX_ALLOCATION");
    printf("  gate/up in %u chunk(s), then %u with 256 KiB allocations\n", chunks_whole, chunks_small);
    assert_int_equal(chunks_whole, 1);
    assert_true(chunks_small >= 2);
    assert_memory_equal(whole, chunked, n_vocab * sizeof *whole);
    free(whole);
    free(chunked);
    remove(path);
}

/* llama2.c's doc/stories260K.md: `./run stories260K.bin -z tok512.bin -t 0.0`: forward passes at positions
 * 0..255, each printing the token it predicts, so 257 - n_prompt tokens after a prompt of n_prompt. */
static const char llama2c_text[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she "
    "saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want "
    "to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n"
    "Lily didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to do.\" Her mom said, "
    "\"Don't worry, Lily. We can help you.";

static void test_stories_greedy_matches_llama2c(void **state)
{
    vkllm_model *m = th_load_model(STORIES);
    vkllm_context *c = context(m, 256, 64, VKLLM_KV_F16);
    const char *prompt = "Once upon a time";
    size_t n_prompt = 0;
    assert_int_equal(vkllm_tokenize(m, prompt, strlen(prompt), 1, 0, NULL, 0, &n_prompt), VKLLM_ERROR_BUFFER_TOO_SMALL);
    th_text t = {0};
    th_text_append(prompt, strlen(prompt), &t);
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    vkllm_generate_stats stats;
    th_check_status(vkllm_generate(c, prompt, 0, (uint32_t)(257 - n_prompt), &greedy, th_text_append, &t, &stats),
                    "generate");
    printf("  %u prompt tokens, %u generated; prompt %.1f ms, generation %.1f ms\n", stats.n_prompt, stats.n_generated,
           stats.prompt_ms, stats.generate_ms);
    if (strcmp(t.buf, llama2c_text) != 0) {
        size_t i = 0;
        while (t.buf[i] && t.buf[i] == llama2c_text[i]) i++;
        fail_msg("text differs from llama2.c at byte %zu:\n got: %.80s\nwant: %.80s", i, t.buf + i, llama2c_text + i);
    }
    /* Same again: the cached prefix is reused and the output does not change. */
    th_text again = {0};
    th_text_append(prompt, strlen(prompt), &again);
    th_check_status(vkllm_generate(c, prompt, 0, (uint32_t)(257 - n_prompt), &greedy, th_text_append, &again, NULL),
                    "again");
    assert_string_equal(again.buf, t.buf);
    vkllm_context_free(c);
    th_free_model(m);
}

/* The converted llama2.c checkpoint gives the same greedy tokens as the GGUF. */
static void test_converted_checkpoint_same_tokens(void **state)
{
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "%s/converted.gguf", tmpdir);
    snprintf(cmd, sizeof cmd, "%s/vkllm convert %s/models/stories260K.bin --tokenizer %s/models/tok512.bin -o %s",
             th_binary_dir(), th_shared_dir(), th_shared_dir(), path);
    assert_int_equal(system(cmd), 0);
    const char *files[2] = {STORIES, path};
    th_text out[2] = {0};
    for (int f = 0; f < 2; f++) {
        vkllm_model *m = th_load_model(files[f]);
        vkllm_context *c = context(m, 128, 32, VKLLM_KV_F16);
        vkllm_sampling greedy = vkllm_sampling_default();
        greedy.temperature = 0;
        th_check_status(vkllm_generate(c, "One day", 0, 60, &greedy, th_text_append, &out[f], NULL), "generate");
        vkllm_context_free(c);
        th_free_model(m);
    }
    assert_string_equal(out[0].buf, out[1].buf);
    remove(path);
}

/* Two sequences in one batch (a decode step beside a prompt chunk) give the logits each gets alone. */
static void test_batched_sequences(void **state)
{
    vkllm_model *m = th_load_model(STORIES);
    vkllm_context *c = context(m, 128, 64, VKLLM_KV_F32);
    vkllm_model_info info;
    vkllm_model_get_info(m, &info);
    uint32_t V = info.n_vocab;
    int32_t a[9], b[6];
    bench_prompt_tokens(V, a, 9);
    bench_prompt_tokens(V, b, 6);
    b[3] = 77;
    float *alone_a = malloc(V * 4), *alone_b = malloc(V * 4);
    gpu_logits(c, a, 9, 64, 1, alone_a, V);
    gpu_logits(c, b, 6, 64, 2, alone_b, V);
    /* Now: seq 1 holds a[0..8) and decodes a[8]; seq 2 gets b whole, in the same batch. */
    th_check_status(vkllm_seq_truncate(c, 1, 8), "truncate");
    th_check_status(vkllm_seq_truncate(c, 2, 0), "truncate");
    int32_t tokens[7] = {a[8], b[0], b[1], b[2], b[3], b[4], b[5]};
    int32_t pos[7] = {8, 0, 1, 2, 3, 4, 5}, seq[7] = {1, 2, 2, 2, 2, 2, 2};
    int8_t want[7] = {1, 0, 0, 0, 0, 0, 1};
    vkllm_batch batch = {7, tokens, pos, seq, want};
    th_check_status(vkllm_decode(c, &batch), "mixed batch");
    th_assert_nmse("seq 1 in a mixed batch", alone_a, vkllm_get_logits(c, 0), V, 1e-10);
    th_assert_nmse("seq 2 in a mixed batch", alone_b, vkllm_get_logits(c, 1), V, 1e-10);
    assert_null(vkllm_get_logits(c, 2));
    /* Greedy on the device agrees with the argmax of the logits. */
    vkllm_token ids[2];
    th_check_status(vkllm_seq_truncate(c, 1, 8), "truncate");
    th_check_status(vkllm_seq_truncate(c, 2, 0), "truncate");
    th_check_status(vkllm_decode_greedy(c, &batch, ids), "greedy");
    for (int r = 0; r < 2; r++) {
        const float *l = r == 0 ? alone_a : alone_b;
        int32_t best = 0;
        for (uint32_t i = 1; i < V; i++)
            if (l[i] > l[best]) best = (int32_t)i;
        assert_int_equal(ids[r], best);
    }
    free(alone_a);
    free(alone_b);
    vkllm_context_free(c);
    th_free_model(m);
}

static void test_sampling_is_seeded(void **state)
{
    vkllm_model *m = th_load_model(STORIES);
    vkllm_context *c = context(m, 128, 32, VKLLM_KV_F16);
    vkllm_sampling s = vkllm_sampling_default();
    s.temperature = 1.0f;
    s.seed = 1234;
    th_text t[3] = {0};
    for (int i = 0; i < 3; i++) {
        if (i == 2) s.seed = 99;
        th_check_status(vkllm_generate(c, "Once upon a time", 0, 40, &s, th_text_append, &t[i], NULL), "generate");
    }
    assert_string_equal(t[0].buf, t[1].buf);
    assert_string_not_equal(t[0].buf, t[2].buf);
    vkllm_context_free(c);
    th_free_model(m);
}

static void test_context_limits(void **state)
{
    vkllm_model *m = th_load_model(STORIES);
    vkllm_context *c = context(m, 16, 8, VKLLM_KV_F16);
    const char *long_prompt = "Once upon a time there was a little girl who lived in a small house near the woods.";
    assert_int_equal(vkllm_generate(c, long_prompt, 0, 4, NULL, NULL, NULL, NULL), VKLLM_ERROR_CONTEXT_FULL);
    assert_non_null(strstr(vkllm_last_error(), "context"));
    int32_t tok = 5, pos = 16, seq = 0;
    vkllm_batch b = {1, &tok, &pos, &seq, NULL};
    assert_int_equal(vkllm_decode(c, &b), VKLLM_ERROR_CONTEXT_FULL);
    pos = 3; /* a gap: sequence 0 is empty */
    assert_int_equal(vkllm_decode(c, &b), VKLLM_ERROR_INVALID_ARGUMENT);
    pos = 0;
    tok = 100000;
    assert_int_equal(vkllm_decode(c, &b), VKLLM_ERROR_INVALID_ARGUMENT);
    /* Generation that fills the context streams what fits, then says the context is full (stats filled). */
    vkllm_generate_stats stats;
    assert_int_equal(vkllm_generate(c, "Once", 0, 100, NULL, NULL, NULL, &stats), VKLLM_ERROR_CONTEXT_FULL);
    assert_non_null(strstr(vkllm_last_error(), "the context of 16 positions is full"));
    assert_int_equal(stats.n_prompt + stats.n_generated, 17);
    /* The context stays usable: a generation that fits succeeds. */
    th_check_status(vkllm_generate(c, "Once", 0, 4, NULL, NULL, NULL, &stats), "generate after a full context");
    vkllm_context_free(c);
    /* A layer's KV cache is bound whole by attention: one that passes maxStorageBufferRange fails at creation. */
    uint64_t range = vkr_device_caps(m->dev)->max_storage_buffer_range;
    vkllm_context_params p = vkllm_context_default_params(); /* F16 cache: 2 bytes per element */
    p.n_ctx = (uint32_t)(range / (2ull * m->cfg.n_head_kv * m->cfg.head_dim) + 64);
    assert_int_equal(vkllm_context_create(m, &p, &c), VKLLM_ERROR_UNSUPPORTED);
    assert_non_null(strstr(vkllm_last_error(), "maxStorageBufferRange"));
    assert_null(c);
    th_free_model(m);
}

/* Writes a copy of stories260K.gguf with `edit` applied to its bytes. */
static void write_edited(const char *path, size_t keep, void (*edit)(uint8_t *data, size_t size))
{
    FILE *f = fopen(STORIES, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(size);
    assert_int_equal(fread(data, 1, size, f), size);
    fclose(f);
    if (edit) edit(data, size);
    f = fopen(path, "wb");
    fwrite(data, 1, keep && keep < size ? keep : size, f);
    fclose(f);
    free(data);
}

/* Finds a tensor-info record by name and changes its first dimension. */
static void wrong_shape(uint8_t *data, size_t size)
{
    const char *name = "blk.0.attn_q.weight";
    size_t n = strlen(name);
    for (size_t i = 0; i + n + 16 < size; i++)
        if (memcmp(data + i, name, n) == 0 && data[i + n] != '.' && data[i - 8] == n) {
            uint64_t ne0 = 65; /* n_dims (u32) follows the name, then ne[0] */
            memcpy(data + i + n + 4, &ne0, 8);
            return;
        }
}

/* Sets the type id of blk.1.ffn_up.weight. */
static void set_type(uint8_t *data, size_t size, uint32_t type)
{
    const char *name = "blk.1.ffn_up.weight";
    size_t n = strlen(name);
    for (size_t i = 0; i + n + 32 < size; i++)
        if (memcmp(data + i, name, n) == 0 && data[i - 8] == n) {
            uint32_t n_dims;
            memcpy(&n_dims, data + i + n, 4);
            memcpy(data + i + n + 4 + 8 * n_dims, &type, 4);
            return;
        }
}

static void integer_type(uint8_t *data, size_t size) { set_type(data, size, 26); /* ggml's I32 */ }
static void unknown_type(uint8_t *data, size_t size) { set_type(data, size, 77); /* no ggml type */ }

/* general.architecture = "llama" becomes "mamba": key, value type (u32 8 = string), length (u64), bytes. */
static void unknown_arch(uint8_t *data, size_t size)
{
    const char *key = "general.architecture";
    size_t n = strlen(key);
    for (size_t i = 0; i + n + 17 < size; i++)
        if (memcmp(data + i, key, n) == 0 && memcmp(data + i + n + 12, "llama", 5) == 0) {
            memcpy(data + i + n + 12, "mamba", 5);
            return;
        }
}

static void test_bad_files(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bad.gguf", tmpdir);
    vkllm_model *m = NULL;
    struct { size_t keep; void (*edit)(uint8_t *, size_t); vkllm_status status; const char *message; } cases[] = {
        {1000, NULL, VKLLM_ERROR_BAD_FORMAT, "bad.gguf"},
        {200000, NULL, VKLLM_ERROR_BAD_FORMAT, "past end"},
        {0, wrong_shape, VKLLM_ERROR_BAD_FORMAT, "blk.0.attn_q.weight"},
        {0, integer_type, VKLLM_ERROR_UNSUPPORTED, "I32"},
        {0, unknown_type, VKLLM_ERROR_BAD_FORMAT, "77"},
        {0, unknown_arch, VKLLM_ERROR_UNSUPPORTED, "architecture 'mamba'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_edited(path, cases[i].keep, cases[i].edit);
        vkllm_status st = vkllm_model_load(path, &m);
        printf("  case %zu: %s: %s\n", i, vkllm_status_name(st), vkllm_last_error());
        assert_int_equal(st, cases[i].status);
        assert_null(m);
        assert_non_null(strstr(vkllm_last_error(), cases[i].message));
    }
    assert_int_equal(vkllm_model_load("/nonexistent/model.gguf", &m), VKLLM_ERROR_IO);
    remove(path);
}

static int setup(void **state)
{
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_greedy_matches_llama2c),
        cmocka_unit_test(test_stories_against_reference),
        cmocka_unit_test(test_synth_types_against_reference),
        cmocka_unit_test(test_quantized_cache_against_reference),
        cmocka_unit_test(test_gpu_rows_quantize_in_the_norm),
        cmocka_unit_test(test_load_submits_per_tensor),
        cmocka_unit_test(test_small_allocations_same_logits),
        cmocka_unit_test(test_converted_checkpoint_same_tokens),
        cmocka_unit_test(test_batched_sequences),
        cmocka_unit_test(test_sampling_is_seeded),
        cmocka_unit_test(test_context_limits),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests_name("model", tests, setup, teardown);
}
