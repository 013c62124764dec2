/* The batch API: evaluate a whole prompt in one vkllm_decode, read the logits of its last position, then
 * decode greedily one token at a time.  Writes the log-softmax of the last prompt position's logits as JSON
 * in the shape llama.cpp's peer script writes (shared/peer/bench.mjs --dump), so the two engines can be
 * compared number by number (bench/compare_logits.py):
 *   {"model": ..., "gpu": DEVICE, "prompt": [ids], "generated": [greedy ids], "logprobs": [n_vocab floats]}
 *
 *   sample-logits MODEL.gguf [-n 64] [-m 16] [--kv f16|f32] [--seed 42] [-o OUT.json]
 *
 * The prompt is bench.mjs's default: BOS, then ids 3 + s % (V - 3) with s = s * 1664525 + 1013904223
 * (mod 2^32) starting at the seed, N tokens in all.  -m greedy tokens follow (the first one is the argmax of
 * the dumped position). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vkllm.h"

typedef struct options {
    const char *model, *out;
    uint32_t n_prompt, n_gen, seed;
    vkllm_kv_type kv;
} options;

/* A decimal count in [lo, hi]: strtoul alone would take "-1" as 4294967295, "0x10" as 0 and "4.7" as 4. */
static int count(const char *flag, const char *text, unsigned long lo, unsigned long hi, uint32_t *out)
{
    char *end = NULL;
    unsigned long v = 0;
    int ok = text && *text >= '0' && *text <= '9' && strlen(text) <= 10;
    if (ok) v = strtoul(text, &end, 10);
    if (!ok || *end || v < lo || v > hi) {
        fprintf(stderr, "sample-logits: %s needs an integer in [%lu, %lu], got '%s'\n", flag, lo, hi, text ? text : "");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.n_prompt = 64, .n_gen = 16, .seed = 42, .kv = VKLLM_KV_F16};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "-n") && v) {
            if (count("-n", v, 1, 1u << 16, &o->n_prompt)) return -1;
            i++;
        } else if (!strcmp(argv[i], "-m") && v) {
            if (count("-m", v, 1, 1u << 16, &o->n_gen)) return -1;
            i++;
        } else if (!strcmp(argv[i], "--seed") && v) {
            if (count("--seed", v, 0, UINT32_MAX, &o->seed)) return -1;
            i++;
        } else if (!strcmp(argv[i], "-o") && v) {
            o->out = v, i++;
        } else if (!strcmp(argv[i], "--kv") && v && (!strcmp(v, "f16") || !strcmp(v, "f32"))) {
            o->kv = !strcmp(v, "f32") ? VKLLM_KV_F32 : VKLLM_KV_F16, i++;
        } else if (argv[i][0] != '-' && !o->model) {
            o->model = argv[i];
        } else {
            return -1;
        }
    }
    return o->model ? 0 : -1;
}

/* bench.mjs's deterministic prompt. */
static void make_prompt(vkllm_token bos, uint32_t n_vocab, uint32_t seed, vkllm_token *tokens, uint32_t n)
{
    uint32_t s = seed;
    tokens[0] = bos;
    for (uint32_t i = 1; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        tokens[i] = (vkllm_token)(3 + s % (n_vocab - 3));
    }
}

static vkllm_token argmax(const float *logits, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return (vkllm_token)best;
}

/* Evaluates the prompt in one batch (logits of the last position only), keeps its log-softmax in logprobs
 * (computed in double), then generates n_gen greedy tokens. */
static vkllm_status evaluate(vkllm_context *ctx, uint32_t n_vocab, const vkllm_token *prompt, uint32_t n_prompt,
                             uint32_t n_gen, double *logprobs, vkllm_token *generated)
{
    int32_t *pos = malloc(n_prompt * sizeof *pos), *seq = calloc(n_prompt, sizeof *seq);
    int8_t *want = calloc(n_prompt, 1);
    if (!pos || !seq || !want) {
        free(pos), free(seq), free(want);
        return VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    for (uint32_t i = 0; i < n_prompt; i++) pos[i] = (int32_t)i;
    want[n_prompt - 1] = 1;
    vkllm_batch batch = {n_prompt, prompt, pos, seq, want};
    vkllm_status st = vkllm_decode(ctx, &batch);
    free(pos), free(seq), free(want);
    if (st != VKLLM_OK) return st;

    const float *logits = vkllm_get_logits(ctx, 0);
    if (!logits) return VKLLM_ERROR_INVALID_ARGUMENT; /* cannot happen: the batch asked for one row */
    double max = logits[0], sum = 0;
    for (uint32_t i = 1; i < n_vocab; i++) max = logits[i] > max ? logits[i] : max;
    for (uint32_t i = 0; i < n_vocab; i++) sum += exp(logits[i] - max);
    for (uint32_t i = 0; i < n_vocab; i++) logprobs[i] = logits[i] - max - log(sum);

    generated[0] = argmax(logits, n_vocab);
    for (uint32_t i = 1; i < n_gen && st == VKLLM_OK; i++) {
        int32_t p = (int32_t)(n_prompt + i - 1), s = 0;
        int8_t w = 1;
        vkllm_batch step = {1, &generated[i - 1], &p, &s, &w};
        st = vkllm_decode(ctx, &step);
        if (st == VKLLM_OK && !(logits = vkllm_get_logits(ctx, 0))) st = VKLLM_ERROR_INVALID_ARGUMENT;
        if (st == VKLLM_OK) generated[i] = argmax(logits, n_vocab);
    }
    return st;
}

static void write_ids(FILE *f, const char *key, const vkllm_token *ids, uint32_t n)
{
    fprintf(f, "\"%s\": [", key);
    for (uint32_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", ids[i]);
    fprintf(f, "]");
}

/* JSON string contents: the model path and device name are printed with quotes and backslashes escaped. */
static void write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

static int write_json(FILE *f, const options *o, const char *device, const vkllm_token *prompt,
                      const vkllm_token *generated, const double *logprobs, uint32_t n_vocab)
{
    fprintf(f, "{\"model\": ");
    write_string(f, o->model);
    fprintf(f, ", \"gpu\": ");
    write_string(f, device);
    fprintf(f, ", \"kv\": \"%s\", ", o->kv == VKLLM_KV_F32 ? "f32" : "f16");
    write_ids(f, "prompt", prompt, o->n_prompt);
    fprintf(f, ", ");
    write_ids(f, "generated", generated, o->n_gen);
    fprintf(f, ", \"logprobs\": [");
    /* JSON has no NaN or infinity: such a value is written as null (and main reports it). */
    for (uint32_t i = 0; i < n_vocab; i++) {
        if (isfinite(logprobs[i])) fprintf(f, "%s%.9g", i ? ", " : "", logprobs[i]);
        else fprintf(f, "%snull", i ? ", " : "");
    }
    fprintf(f, "]}\n");
    return ferror(f) ? -1 : 0;
}

int main(int argc, char **argv)
{
    options o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: %s MODEL.gguf [-n 64] [-m 16] [--kv f16|f32] [--seed 42] [-o OUT.json]\n", argv[0]);
        return 2;
    }
    vkllm_model *model = NULL;
    vkllm_context *ctx = NULL;
    vkllm_model_info info = {0};
    vkllm_token *prompt = NULL, *generated = NULL;
    double *logprobs = NULL;
    vkllm_status st = vkllm_model_load(o.model, &model);
    if (st == VKLLM_OK) {
        vkllm_model_get_info(model, &info);
        vkllm_context_params p = vkllm_context_default_params();
        p.n_ctx = o.n_prompt + o.n_gen;
        p.n_batch = o.n_prompt;
        p.type_k = p.type_v = o.kv;
        st = vkllm_context_create(model, &p, &ctx);
    }
    if (st == VKLLM_OK && info.n_vocab < 4) {
        /* The prompt draws ids from [3, n_vocab). */
        fprintf(stderr, "sample-logits: the vocabulary has %u tokens; bench.mjs's prompt needs at least 4\n", info.n_vocab);
        st = VKLLM_ERROR_UNSUPPORTED;
    }
    if (st == VKLLM_OK) {
        prompt = malloc(o.n_prompt * sizeof *prompt);
        generated = malloc(o.n_gen * sizeof *generated);
        logprobs = malloc(info.n_vocab * sizeof *logprobs);
        if (!prompt || !generated || !logprobs) st = VKLLM_ERROR_OUT_OF_HOST_MEMORY;
    }
    if (st == VKLLM_OK) {
        vkllm_token bos = vkllm_token_bos(model);
        make_prompt(bos >= 0 ? bos : 1, info.n_vocab, o.seed, prompt, o.n_prompt);
        st = evaluate(ctx, info.n_vocab, prompt, o.n_prompt, o.n_gen, logprobs, generated);
    }
    int rc = st == VKLLM_OK ? 0 : 1;
    if (st != VKLLM_OK) {
        fprintf(stderr, "sample-logits: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    } else {
        FILE *f = o.out ? fopen(o.out, "w") : stdout;
        if (!f || write_json(f, &o, info.device, prompt, generated, logprobs, info.n_vocab) != 0) {
            fprintf(stderr, "sample-logits: could not write %s\n", o.out ? o.out : "stdout");
            rc = 1;
        }
        if (f && f != stdout && fclose(f) != 0) rc = 1;
        uint32_t non_finite = 0;
        for (uint32_t i = 0; i < info.n_vocab; i++) non_finite += !isfinite(logprobs[i]);
        if (non_finite) {
            fprintf(stderr, "sample-logits: the model produced NaN or infinite logits: %u of the %u log-probabilities "
                    "are not finite (written as null)\n", non_finite, info.n_vocab);
            rc = 1;
        }
    }
    free(prompt), free(generated), free(logprobs);
    vkllm_context_free(ctx);
    vkllm_model_free(model);
    return rc;
}
