/* The Medusa heads' arithmetic on the CPU, plain loops: a head is dim x dim plus a dim x vocab product per token,
 * small enough for stories260K-sized models that training runs here (the heads' use at decode time reads the same
 * functions).  tests/generation/test_medusa.c checks the gradient against finite differences. */
#include "medusa.h"

#include <math.h>
#include <string.h>

static float sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

void medusa_head_forward(const float *w, const float *b, uint32_t n, const float *h, float *hp, float *z)
{
    for (uint32_t r = 0; r < n; r++) {
        const float *row = w + (size_t)r * n;
        float acc = b[r];
        for (uint32_t c = 0; c < n; c++) acc += row[c] * h[c];
        if (z) z[r] = acc;
        hp[r] = h[r] + acc * sigmoid(acc);
    }
}

void medusa_head_logits(const float *out, uint32_t n_vocab, uint32_t n, const float *hp, float *logits)
{
    for (uint32_t v = 0; v < n_vocab; v++) {
        const float *row = out + (size_t)v * n;
        float acc = 0;
        for (uint32_t c = 0; c < n; c++) acc += row[c] * hp[c];
        logits[v] = acc;
    }
}

float medusa_xent_grad(float *logits, uint32_t n_vocab, int32_t target)
{
    float mx = logits[0];
    for (uint32_t v = 1; v < n_vocab; v++) mx = logits[v] > mx ? logits[v] : mx;
    double sum = 0;
    for (uint32_t v = 0; v < n_vocab; v++) sum += exp((double)(logits[v] - mx));
    float loss = (float)(log(sum) - (double)(logits[target] - mx));
    for (uint32_t v = 0; v < n_vocab; v++) logits[v] = (float)(exp((double)(logits[v] - mx)) / sum);
    logits[target] -= 1.0f;
    return loss;
}

float medusa_head_loss_grad(const float *w, const float *b, const float *out, uint32_t n, uint32_t n_vocab,
                            const float *h, int32_t target, float *gw, float *gb, float *scratch, int32_t *argmax)
{
    float *z = scratch, *hp = z + n, *dhp = hp + n, *logits = dhp + n;
    medusa_head_forward(w, b, n, h, hp, z);
    medusa_head_logits(out, n_vocab, n, hp, logits);
    if (argmax) {
        int32_t best = 0;
        for (uint32_t v = 1; v < n_vocab; v++) best = logits[v] > logits[best] ? (int32_t)v : best;
        *argmax = best;
    }
    float loss = medusa_xent_grad(logits, n_vocab, target);
    if (!gw && !gb) return loss;
    /* dL/dh' = out^T (softmax - onehot), then through SiLU: silu'(z) = s (1 + z (1 - s)), s = sigmoid(z) */
    memset(dhp, 0, sizeof *dhp * n);
    for (uint32_t v = 0; v < n_vocab; v++) {
        float g = logits[v];
        const float *row = out + (size_t)v * n;
        for (uint32_t c = 0; c < n; c++) dhp[c] += g * row[c];
    }
    for (uint32_t r = 0; r < n; r++) {
        float s = sigmoid(z[r]);
        float dz = dhp[r] * s * (1.0f + z[r] * (1.0f - s));
        if (gb) gb[r] += dz;
        if (gw) {
            float *grow = gw + (size_t)r * n;
            for (uint32_t c = 0; c < n; c++) grow[c] += dz * h[c];
        }
    }
    return loss;
}
