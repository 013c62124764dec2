/* The Medusa drafter: the heads (src/medusa/) read the hidden state of the last position the verification pass
 * accepted (the one whose base prediction is the next input) and draft one token per head, head i the token i + 2
 * after that position: a chain of candidates, verified by the same batch-invariant pass as the other drafters, so the
 * greedy text is plain decoding's token for token.  The heads run on the CPU: dim x dim and vocab x dim per head, a
 * fraction of a millisecond for stories260K-sized models (a 7B would want them on the GPU). */
#include <stdlib.h>
#include <string.h>

#include "medusa/medusa.h"
#include "spec.h"

struct spec_medusa {
    medusa_heads heads;
    float *out;      /* [n_vocab][n_embd]: the heads' own output matrix, or the base model's dequantized */
    float *owned;    /* the base's copy, freed with the drafter */
    float *h, *hp, *logits;
    bool have_h;
};

void spec_medusa_free(struct spec_medusa *m)
{
    if (!m) return;
    medusa_heads_free(&m->heads);
    free(m->owned);
    free(m->h);
    free(m->hp);
    free(m->logits);
    free(m);
}

vkllm_status spec_medusa_open(const vkllm_context *ctx, const char *path, struct spec_medusa **out)
{
    *out = NULL;
    const vkllm_model *model = ctx->model;
    if (!ctx->params.output_hidden)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "speculation: Medusa heads read the hidden state: create the "
                          "context with output_hidden = 1");
    struct spec_medusa *m = calloc(1, sizeof *m);
    if (!m) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "Medusa drafter");
    medusa_base base;
    vkllm_status st = medusa_heads_load(path, &m->heads);
    if (st == VKLLM_OK) st = medusa_base_from_gguf(model->gguf, &base);
    if (st == VKLLM_OK) st = medusa_heads_check(&m->heads, &base, path, model->path);
    if (st == VKLLM_OK && !m->heads.out) st = medusa_output_matrix(model->gguf, &m->owned);
    uint32_t n = base.n_embd, v = base.n_vocab;
    if (st == VKLLM_OK && (!(m->h = malloc(sizeof *m->h * n)) || !(m->hp = malloc(sizeof *m->hp * n)) ||
                           !(m->logits = malloc(sizeof *m->logits * v))))
        st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "Medusa drafter");
    if (st != VKLLM_OK) {
        spec_medusa_free(m);
        return st;
    }
    m->out = m->heads.out ? m->heads.out : m->owned;
    *out = m;
    return VKLLM_OK;
}

uint32_t spec_medusa_heads(const struct spec_medusa *m) { return m->heads.n_heads; }

void spec_medusa_take_hidden(struct spec_medusa *m, vkllm_context *ctx, uint32_t row)
{
    const float *h = vkllm_get_hidden(ctx, row);
    m->have_h = h != NULL;
    if (h) memcpy(m->h, h, sizeof *m->h * m->heads.n_embd);
}

bool spec_medusa_topk(struct spec_medusa *m, const uint32_t *topk, uint32_t depths, vkllm_token (*top)[SPEC_TREE_TOPK])
{
    if (!m->have_h) return false;
    uint32_t n = m->heads.n_embd, V = m->heads.n_vocab;
    for (uint32_t d = 0; d < depths && d < m->heads.n_heads; d++) {
        uint32_t k = topk[d] < SPEC_TREE_TOPK ? topk[d] : SPEC_TREE_TOPK;
        if (!k) continue;
        medusa_head_forward(m->heads.w + (size_t)d * n * n, m->heads.b + (size_t)d * n, n, m->h, m->hp, NULL);
        medusa_head_logits(m->out, V, n, m->hp, m->logits);
        /* insertion into the k best so far: k is small */
        float best[SPEC_TREE_TOPK];
        uint32_t have = 0;
        for (uint32_t t = 0; t < V; t++) {
            float x = m->logits[t];
            if (have == k && x <= best[k - 1]) continue;
            uint32_t at = have < k ? have++ : k - 1;
            while (at > 0 && best[at - 1] < x) {
                best[at] = best[at - 1];
                top[d][at] = top[d][at - 1];
                at--;
            }
            best[at] = x;
            top[d][at] = (vkllm_token)t;
        }
    }
    return true;
}

uint32_t spec_medusa_draft(struct spec_medusa *m, uint32_t max, vkllm_token *out)
{
    if (!m->have_h) return 0;
    uint32_t n = m->heads.n_embd, V = m->heads.n_vocab, k = max < m->heads.n_heads ? max : m->heads.n_heads;
    for (uint32_t i = 0; i < k; i++) {
        medusa_head_forward(m->heads.w + (size_t)i * n * n, m->heads.b + (size_t)i * n, n, m->h, m->hp, NULL);
        medusa_head_logits(m->out, V, n, m->hp, m->logits);
        uint32_t best = 0;
        for (uint32_t t = 1; t < V; t++) best = m->logits[t] > m->logits[best] ? t : best;
        out[i] = (vkllm_token)best;
    }
    return k;
}
