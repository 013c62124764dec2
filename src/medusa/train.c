/* Medusa heads by self-distillation (Medusa-2's recipe when the training data is not at hand): the model writes its
 * own text on the GPU (sampled continuations of pieces of a calibration text, or of BOS), the last layer's hidden
 * states come back with each pass (vkllm_context_params.output_hidden), and the heads learn on the CPU to predict the
 * model's own later tokens: head i, from the hidden state at t, the token at t + i + 2 (cross-entropy, Adam,
 * mini-batches; the base output matrix frozen).  Streams are generated S at a time, one batch row each, all of the
 * same length, so every pass of a round has the same shape.  Deterministic for a seed: one thread, one RNG. */
#include "medusa.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAMS 16u     /* sequences generated side by side */
#define PROMPT 8u       /* tokens of each prompt (1: BOS alone) */
#define GEN 248u        /* tokens generated per stream (positions up to 256: what -n 256 reaches) */
#define HOLD_OUT 10u    /* every 10th stream is held out for evaluation */

medusa_train_params medusa_train_default_params(void)
{
    return (medusa_train_params){.n_heads = 4, .n_tokens = 32768, .seed = 1, .epochs = 3, .batch = 64, .lr = 3e-3f,
                                 .temperature = 0.0f, .calib = NULL};
}

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* The generated data: rows of hidden states with each head's target token (-1: past the stream's end). */
typedef struct train_data {
    uint32_t n, n_heads, cap;
    float *hidden;          /* [cap][n_embd] */
    int32_t *targets;       /* [cap][n_heads] */
    uint8_t *held_out;      /* [cap] */
} train_data;

typedef struct trainer {
    const medusa_train_params *p;
    vkllm_model *model;
    vkllm_context *ctx;
    uint32_t n_embd, n_vocab;
    uint64_t rng;
    char *calib;
    size_t calib_len;
    train_data d;
    medusa_train_progress_fn progress;
    void *user;
} trainer;

static vkllm_status read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return vkllm_fail(VKLLM_ERROR_IO, "medusa-train: cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n > 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!b || got != (size_t)n) {
        free(b);
        return vkllm_fail(VKLLM_ERROR_IO, "medusa-train: cannot read %s (empty or unreadable)", path);
    }
    b[n] = 0;
    *out = b;
    *len = (size_t)n;
    return VKLLM_OK;
}

/* PROMPT tokens: BOS and the start of a piece of the calibration text beginning after a random whitespace (another
 * piece is drawn when one is too short).  Without a text every stream starts from BOS alone (the prompt is 1 token). */
static vkllm_status make_prompt(trainer *t, vkllm_token *out)
{
    vkllm_token buf[256];
    size_t n = 0;
    for (int tries = 0; tries < 16; tries++) {
        size_t at = (size_t)(rng_unit(&t->rng) * (double)t->calib_len);
        while (at < t->calib_len && t->calib[at] != ' ' && t->calib[at] != '\n') at++;
        while (at < t->calib_len && (t->calib[at] == ' ' || t->calib[at] == '\n')) at++;
        size_t len = t->calib_len - at < 96 ? t->calib_len - at : 96;
        vkllm_status st = vkllm_tokenize(t->model, t->calib + at, len, 1, 0, buf, 256, &n);
        if (st != VKLLM_OK) return st;
        if (n >= PROMPT) break;
    }
    if (n < PROMPT)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "medusa-train: the calibration text gives no piece of %u "
                          "tokens", PROMPT);
    memcpy(out, buf, sizeof *out * PROMPT);
    return VKLLM_OK;
}

static vkllm_token sample(trainer *t, const float *logits)
{
    float temp = t->p->temperature;
    int32_t best = 0;
    for (uint32_t v = 1; v < t->n_vocab; v++) best = logits[v] > logits[best] ? (int32_t)v : best;
    if (temp <= 0) return best;
    double sum = 0;
    for (uint32_t v = 0; v < t->n_vocab; v++) sum += exp((double)(logits[v] - logits[best]) / temp);
    double u = rng_unit(&t->rng) * sum, acc = 0;
    for (uint32_t v = 0; v < t->n_vocab; v++) {
        acc += exp((double)(logits[v] - logits[best]) / temp);
        if (u < acc) return (vkllm_token)v;
    }
    return best;
}

/* One round: STREAMS prompts, GEN tokens each; rows for every generated input with its heads' targets. */
static vkllm_status generate_round(trainer *t, uint32_t round, uint64_t *generated, uint64_t total)
{
    uint32_t P = t->calib ? PROMPT : 1, S = STREAMS, K = t->p->n_heads, n = t->n_embd;
    vkllm_token (*toks)[PROMPT + GEN] = malloc(sizeof *toks * S);
    float *h = malloc(sizeof *h * S * GEN * n); /* [stream][pass][n_embd] */
    if (!h || !toks) {
        free(h), free(toks);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "medusa-train: hidden states");
    }
    vkllm_status st = VKLLM_OK;
    for (uint32_t s = 0; s < S && st == VKLLM_OK; s++) {
        st = vkllm_seq_truncate(t->ctx, (int32_t)s, 0);
        if (st == VKLLM_OK && t->calib) st = make_prompt(t, toks[s]);
        else toks[s][0] = vkllm_token_bos(t->model);
    }
    vkllm_token in[STREAMS * PROMPT];
    int32_t pos[STREAMS * PROMPT], seq[STREAMS * PROMPT];
    int8_t want[STREAMS * PROMPT];
    for (uint32_t j = 0; j < GEN && st == VKLLM_OK; j++) {
        /* pass j: the prompts (j == 0), else each stream's last sampled token */
        uint32_t m = 0;
        for (uint32_t s = 0; s < S; s++) {
            uint32_t from = j == 0 ? 0 : P + j - 1, to = P + j;
            for (uint32_t q = from; q < to; q++, m++) {
                in[m] = toks[s][q];
                pos[m] = (int32_t)q;
                seq[m] = (int32_t)s;
                want[m] = q == to - 1;
            }
        }
        vkllm_batch b = {.n_tokens = m, .tokens = in, .pos = pos, .seq = seq, .want_logits = want};
        st = vkllm_decode(t->ctx, &b);
        for (uint32_t s = 0; s < S && st == VKLLM_OK; s++) {
            const float *lg = vkllm_get_logits(t->ctx, s), *hs = vkllm_get_hidden(t->ctx, s);
            if (!lg || !hs) st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "medusa-train: no output row %u", s);
            else {
                memcpy(h + ((size_t)s * GEN + j) * n, hs, sizeof *h * n);
                toks[s][P + j] = sample(t, lg);
            }
        }
        *generated += S;
        if (t->progress && st == VKLLM_OK) {
            medusa_train_report r = {.phase = 0, .done = *generated, .total = total, .n_heads = K};
            t->progress(t->user, &r);
        }
    }
    /* rows: the hidden state after input P - 1 + j predicts token P + j; head i the token P + j + 1 + i */
    for (uint32_t s = 0; s < S && st == VKLLM_OK; s++)
        for (uint32_t j = 0; j + 1 < GEN; j++) {
            train_data *d = &t->d;
            if (d->n == d->cap) break;
            memcpy(d->hidden + (size_t)d->n * n, h + ((size_t)s * GEN + j) * n, sizeof *h * n);
            for (uint32_t i = 0; i < K; i++) {
                uint32_t at = P + j + 1 + i;
                d->targets[(size_t)d->n * K + i] = at < P + GEN ? toks[s][at] : -1;
            }
            d->held_out[d->n] = (round * S + s) % HOLD_OUT == HOLD_OUT - 1;
            d->n++;
        }
    free(h), free(toks);
    return st;
}

typedef struct adam {
    float *m, *v;
    uint64_t step;
} adam;

static void adam_update(adam *a, float *param, const float *grad, size_t n, float scale, float lr)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)a->step), c2 = 1.0f - powf(b2, (float)a->step);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * scale;
        a->m[i] = b1 * a->m[i] + (1 - b1) * g;
        a->v[i] = b2 * a->v[i] + (1 - b2) * g * g;
        param[i] -= lr * (a->m[i] / c1) / (sqrtf(a->v[i] / c2) + eps);
    }
}

/* Loss and top-1 over the held-out rows (held 1) or the training rows (held 0). */
static void evaluate(const trainer *t, const medusa_heads *hd, const float *out, float *scratch, int held,
                     medusa_train_report *r)
{
    uint32_t K = hd->n_heads, n = t->n_embd;
    double loss = 0;
    uint64_t cnt[MEDUSA_MAX_HEADS] = {0}, hit[MEDUSA_MAX_HEADS] = {0}, all = 0;
    for (uint32_t row = 0; row < t->d.n; row++) {
        if (t->d.held_out[row] != held) continue;
        for (uint32_t i = 0; i < K; i++) {
            int32_t tg = t->d.targets[(size_t)row * K + i], top;
            if (tg < 0) continue;
            loss += medusa_head_loss_grad(hd->w + (size_t)i * n * n, hd->b + (size_t)i * n, out, n, t->n_vocab,
                                          t->d.hidden + (size_t)row * n, tg, NULL, NULL, scratch, &top);
            cnt[i]++, all++;
            hit[i] += top == tg;
        }
    }
    r->loss = all ? (float)(loss / (double)all) : 0;
    for (uint32_t i = 0; i < K; i++) r->top1[i] = cnt[i] ? (float)hit[i] / (float)cnt[i] : 0;
}

static vkllm_status train_heads(trainer *t, medusa_heads *hd, const float *out, medusa_train_report *final)
{
    const medusa_train_params *p = t->p;
    uint32_t K = hd->n_heads, n = t->n_embd, V = t->n_vocab;
    size_t nw = (size_t)K * n * n, nb = (size_t)K * n;
    uint32_t *order = malloc(sizeof *order * t->d.n);
    float *gw = malloc(sizeof *gw * nw), *gb = malloc(sizeof *gb * nb), *scratch = malloc(sizeof *scratch * (3 * n + V));
    adam aw = {calloc(nw, 4), calloc(nw, 4), 0}, ab = {calloc(nb, 4), calloc(nb, 4), 0};
    vkllm_status st = VKLLM_OK;
    if (!order || !gw || !gb || !scratch || !aw.m || !aw.v || !ab.m || !ab.v)
        st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "medusa-train: optimizer state");
    uint32_t n_train = 0;
    for (uint32_t row = 0; row < t->d.n && st == VKLLM_OK; row++)
        if (!t->d.held_out[row]) order[n_train++] = row;
    for (uint32_t e = 0; e < p->epochs && st == VKLLM_OK; e++) {
        for (uint32_t i = n_train; i > 1; i--) { /* Fisher-Yates */
            uint32_t j = (uint32_t)(rng_next(&t->rng) % i), x = order[i - 1];
            order[i - 1] = order[j];
            order[j] = x;
        }
        double loss = 0;
        uint64_t all = 0, cnt[MEDUSA_MAX_HEADS] = {0}, hit[MEDUSA_MAX_HEADS] = {0};
        for (uint32_t first = 0; first < n_train; first += p->batch) {
            uint32_t last = first + p->batch < n_train ? first + p->batch : n_train;
            memset(gw, 0, sizeof *gw * nw);
            memset(gb, 0, sizeof *gb * nb);
            uint32_t bc[MEDUSA_MAX_HEADS] = {0};
            for (uint32_t k = first; k < last; k++) {
                uint32_t row = order[k];
                for (uint32_t i = 0; i < K; i++) {
                    int32_t tg = t->d.targets[(size_t)row * K + i], top;
                    if (tg < 0) continue;
                    loss += medusa_head_loss_grad(hd->w + (size_t)i * n * n, hd->b + (size_t)i * n, out, n, V,
                                                  t->d.hidden + (size_t)row * n, tg, gw + (size_t)i * n * n,
                                                  gb + (size_t)i * n, scratch, &top);
                    bc[i]++, cnt[i]++, all++;
                    hit[i] += top == tg;
                }
            }
            aw.step++, ab.step++;
            for (uint32_t i = 0; i < K; i++) {
                if (!bc[i]) continue;
                float sc = 1.0f / (float)bc[i];
                /* Adam's moments are per element, so each head's slice updates on its own */
                adam mw = {aw.m + (size_t)i * n * n, aw.v + (size_t)i * n * n, aw.step};
                adam mb = {ab.m + (size_t)i * n, ab.v + (size_t)i * n, ab.step};
                adam_update(&mw, hd->w + (size_t)i * n * n, gw + (size_t)i * n * n, (size_t)n * n, sc, p->lr);
                adam_update(&mb, hd->b + (size_t)i * n, gb + (size_t)i * n, n, sc, p->lr);
            }
            if (t->progress) {
                medusa_train_report r = {.phase = 1, .epoch = e + 1, .epochs = p->epochs, .done = last,
                                         .total = n_train, .n_heads = K, .loss = all ? (float)(loss / (double)all) : 0};
                for (uint32_t i = 0; i < K; i++) r.top1[i] = cnt[i] ? (float)hit[i] / (float)cnt[i] : 0;
                t->progress(t->user, &r);
            }
        }
        medusa_train_report r = {.phase = 2, .epoch = e + 1, .epochs = p->epochs, .n_heads = K};
        evaluate(t, hd, out, scratch, 1, &r);
        if (t->progress) t->progress(t->user, &r);
        if (final) *final = r;
    }
    free(order), free(gw), free(gb), free(scratch);
    free(aw.m), free(aw.v), free(ab.m), free(ab.v);
    return st;
}

static vkllm_status run(trainer *t, const char *model_path, const char *out_path, medusa_train_report *final)
{
    const medusa_train_params *p = t->p;
    if (p->n_heads == 0 || p->n_heads > MEDUSA_MAX_HEADS || p->n_tokens == 0 || p->batch == 0 || p->epochs == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "medusa-train: --heads 1..%u, --tokens, --epochs and "
                          "--batch above 0", MEDUSA_MAX_HEADS);
    gguf_file *f;
    VKLLM_TRY(gguf_open(model_path, &f));
    medusa_heads hd = {0};
    float *out = NULL;
    vkllm_status st = medusa_base_from_gguf(f, &hd.base);
    medusa_base base = hd.base;
    if (st == VKLLM_OK) st = medusa_output_matrix(f, &out);
    gguf_close(f);
    if (st == VKLLM_OK) st = medusa_heads_alloc(&hd, p->n_heads, base.n_embd, base.n_vocab, false);
    hd.base = base;
    hd.train_tokens = p->n_tokens;
    hd.train_seed = p->seed;
    t->n_embd = base.n_embd;
    t->n_vocab = base.n_vocab;
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = PROMPT + GEN + 8;
    cp.n_seq_max = STREAMS;
    cp.n_outputs_max = STREAMS;
    cp.n_batch = STREAMS * PROMPT;
    cp.output_hidden = 1;
    if (st == VKLLM_OK) st = vkllm_context_create(t->model, &cp, &t->ctx);
    uint32_t rounds = (p->n_tokens + STREAMS * GEN - 1) / (STREAMS * GEN);
    t->d.cap = rounds * STREAMS * GEN;
    t->d.n_heads = p->n_heads;
    t->d.hidden = malloc(sizeof(float) * t->d.cap * t->n_embd);
    t->d.targets = malloc(sizeof(int32_t) * t->d.cap * p->n_heads);
    t->d.held_out = malloc(t->d.cap);
    if (st == VKLLM_OK && (!t->d.hidden || !t->d.targets || !t->d.held_out))
        st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "medusa-train: %u rows of hidden states", t->d.cap);
    uint64_t generated = 0;
    for (uint32_t r = 0; r < rounds && st == VKLLM_OK; r++)
        st = generate_round(t, r, &generated, (uint64_t)rounds * STREAMS * GEN);
    if (st == VKLLM_OK) st = train_heads(t, &hd, out, final);
    if (st == VKLLM_OK) st = medusa_heads_save(&hd, out_path);
    medusa_heads_free(&hd);
    free(out);
    free(t->d.hidden), free(t->d.targets), free(t->d.held_out);
    return st;
}

vkllm_status medusa_train(const char *model_path, const vkllm_model_params *mp, const medusa_train_params *p,
                          const char *out_path, medusa_train_progress_fn progress, void *user,
                          medusa_train_report *final)
{
    trainer t = {.p = p, .rng = p->seed * 0x2545f4914f6cdd1dull + 1, .progress = progress, .user = user};
    vkllm_status st = VKLLM_OK;
    if (p->calib) st = read_file(p->calib, &t.calib, &t.calib_len);
    if (st == VKLLM_OK) st = vkllm_model_load_params(model_path, mp, &t.model);
    if (st == VKLLM_OK) st = run(&t, model_path, out_path, final);
    vkllm_context_free(t.ctx);
    vkllm_model_free(t.model);
    free(t.calib);
    return st;
}
