/* The speculative sampling rule (Leviathan et al. 2023, Chen et al. 2023): accepting a drafted x with probability
 * min(1, p(x)/q(x)) and otherwise drawing from norm(max(0, p - q)) yields exactly p, whatever q is. */
#include "spec.h"

bool spec_sample_accept(sampler *smp, float *p, const float *q, int32_t n_vocab, vkllm_token x, vkllm_token *out)
{
    double px = p[x], qx = q ? q[x] : 1.0;
    double u = sampler_uniform(smp);
    if (qx > 0.0 && u * qx < px) return true; /* u < p/q, without the division */
    double total = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float r = p[i] - (q ? q[i] : (i == x ? 1.0f : 0.0f));
        p[i] = r > 0.0f ? r : 0.0f;
        total += p[i];
    }
    /* p <= q everywhere leaves nothing, which happens only when p == q up to rounding; x was then accepted with
     * probability 1 - rounding: keep it */
    if (!(total > 0.0)) {
        *out = x;
        return true;
    }
    *out = sampler_draw_probs(smp, p);
    return false;
}
