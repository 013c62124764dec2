/* CPU sampler chain: penalties -> top-k -> top-p -> min-p -> temperature -> draw (see sampling.h). */
#include "sampling.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

typedef struct sampler_candidate {
    int32_t id;
    float logit;
} sampler_candidate;

/* The candidates still in play.  Invariant: items[0, sorted) are the `sorted` best candidates in
 * rank order, and every item after them ranks below all of them (the rest are in no order). */
typedef struct candidate_list {
    sampler_candidate *items;
    size_t size;
    size_t sorted;
} candidate_list;

struct sampler {
    vkllm_sampling params;
    int32_t n_vocab;
    sampler_candidate *candidates; /* [n_vocab] scratch, refilled by every sample */
    float *weights;                /* [n_vocab] scratch: unnormalized probabilities for the draw */
    int32_t *history;              /* [repeat_last_n] ring of accepted tokens; NULL when the window is 0 */
    int32_t history_len;           /* valid entries, <= repeat_last_n */
    int32_t history_next;          /* slot the next accepted token goes to */
    int32_t *token_counts;         /* [n_vocab] occurrences of each token in the window; NULL with history */
    uint64_t rng[4];               /* xoshiro256** state */
};

/* Top-p sorts lazily: it walks the best candidates in order and sorts more only when it runs out,
 * starting with this many (a peaked distribution rarely needs more). */
#define TOP_P_FIRST_SORTED 256
/* Selecting at most 1/32 of a range uses a heap (one comparison for most items); more uses quickselect. */
#define HEAP_SELECT_MAX_FRACTION 32

/* ---- random numbers: splitmix64 seeding, xoshiro256** stream (Blackman & Vigna) ---- */

static uint64_t splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro256ss_next(uint64_t s[4])
{
    const uint64_t result = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t state = seed;
    for (int i = 0; i < 4; i++) s[i] = splitmix64_next(&state);
}

/* Uniform in [0, 1) with 53 random bits, exact in a double. */
static double rng_uniform(uint64_t s[4]) { return (double)(xoshiro256ss_next(s) >> 11) * 0x1.0p-53; }

/* ---- parameters ---- */

vkllm_sampling vkllm_sampling_default(void)
{
    return (vkllm_sampling){
        .temperature = 0.8f,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .top_k = 40,
        .repeat_last_n = 64,
        .seed = VKLLM_SAMPLER_DEFAULT_SEED,
    };
}

static vkllm_status check_finite(const char *name, float value)
{
    if (!isfinite(value))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_create: %s is %g, expected a finite number",
                          name, (double)value);
    return VKLLM_OK;
}

static vkllm_status validate_params(const vkllm_sampling *p, int32_t n_vocab)
{
    if (n_vocab <= 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_create: n_vocab is %d, expected > 0", n_vocab);
    VKLLM_TRY(check_finite("temperature", p->temperature));
    VKLLM_TRY(check_finite("top_p", p->top_p));
    VKLLM_TRY(check_finite("min_p", p->min_p));
    VKLLM_TRY(check_finite("repeat_penalty", p->repeat_penalty));
    VKLLM_TRY(check_finite("frequency_penalty", p->frequency_penalty));
    VKLLM_TRY(check_finite("presence_penalty", p->presence_penalty));
    if (p->repeat_penalty <= 0.0f)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_create: repeat_penalty is %g, expected > 0",
                          (double)p->repeat_penalty);
    if (p->repeat_last_n < 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "sampler_create: repeat_last_n is %d, expected >= 0 (resolve -1 to the context size)",
                          p->repeat_last_n);
    return VKLLM_OK;
}

static bool penalties_enabled(const vkllm_sampling *p)
{
    return p->repeat_last_n > 0 &&
           (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
}

/* ---- lifetime ---- */

vkllm_status sampler_create(const vkllm_sampling *params, int32_t n_vocab, sampler **out)
{
    if (!params || !out)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_create: params and out must not be NULL");
    *out = NULL;
    VKLLM_TRY(validate_params(params, n_vocab));

    sampler *s = calloc(1, sizeof(*s));
    if (!s) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "sampler_create: no memory for the sampler");
    s->params = *params;
    s->n_vocab = n_vocab;
    s->candidates = malloc((size_t)n_vocab * sizeof(*s->candidates));
    s->weights = malloc((size_t)n_vocab * sizeof(*s->weights));
    bool ok = s->candidates && s->weights;
    if (params->repeat_last_n > 0) {
        s->history = malloc((size_t)params->repeat_last_n * sizeof(*s->history));
        s->token_counts = calloc((size_t)n_vocab, sizeof(*s->token_counts));
        ok = ok && s->history && s->token_counts;
    }
    if (!ok) {
        sampler_free(s);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY,
                          "sampler_create: no memory for scratch (n_vocab %d, repeat_last_n %d)", n_vocab,
                          params->repeat_last_n);
    }
    rng_seed(s->rng, params->seed);
    *out = s;
    return VKLLM_OK;
}

void sampler_free(sampler *s)
{
    if (!s) return;
    free(s->candidates);
    free(s->weights);
    free(s->history);
    free(s->token_counts);
    free(s);
}

void sampler_reset(sampler *s)
{
    if (!s) return;
    if (s->token_counts) memset(s->token_counts, 0, (size_t)s->n_vocab * sizeof(*s->token_counts));
    s->history_len = 0;
    s->history_next = 0;
    rng_seed(s->rng, s->params.seed);
}

vkllm_status sampler_accept(sampler *s, int32_t token)
{
    if (!s) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_accept: sampler is NULL");
    if (token < 0 || token >= s->n_vocab)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_accept: token %d outside the vocabulary [0, %d)",
                          token, s->n_vocab);
    const int32_t window = s->params.repeat_last_n;
    if (window == 0) return VKLLM_OK;
    if (s->history_len == window)
        s->token_counts[s->history[s->history_next]]--; /* the oldest token leaves the window */
    else
        s->history_len++;
    s->history[s->history_next] = token;
    s->token_counts[token]++;
    s->history_next = (s->history_next + 1) % window;
    return VKLLM_OK;
}

/* ---- stage: penalties (on the full row, where candidates[id].id == id) ---- */

static float penalized_logit(const vkllm_sampling *p, float logit, int32_t count)
{
    /* Dividing a negative logit would make the token more likely, so those are multiplied instead. */
    logit = logit <= 0.0f ? logit * p->repeat_penalty : logit / p->repeat_penalty;
    return logit - (float)count * p->frequency_penalty - p->presence_penalty;
}

static void apply_penalties(sampler *s)
{
    if (!penalties_enabled(&s->params)) return;
    /* A token can sit in the window several times but is penalized once: its count is negated once
     * done, then restored in a second pass, which keeps this O(window) rather than O(n_vocab). */
    for (int32_t i = 0; i < s->history_len; i++) {
        const int32_t token = s->history[i];
        const int32_t count = s->token_counts[token];
        if (count <= 0) continue;
        s->candidates[token].logit = penalized_logit(&s->params, s->candidates[token].logit, count);
        s->token_counts[token] = -count;
    }
    for (int32_t i = 0; i < s->history_len; i++) {
        const int32_t token = s->history[i];
        if (s->token_counts[token] < 0) s->token_counts[token] = -s->token_counts[token];
    }
}

/* ---- loading: copy, penalize, drop masked tokens, reject NaN and +inf ---- */

static vkllm_status load_candidates(sampler *s, const float *logits, candidate_list *list)
{
    for (int32_t i = 0; i < s->n_vocab; i++) s->candidates[i] = (sampler_candidate){ .id = i, .logit = logits[i] };
    apply_penalties(s);

    size_t kept = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        const float logit = s->candidates[i].logit;
        if (isnan(logit) || logit == INFINITY)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                              "sampler_sample: logit of token %d is %s, expected a finite number or -inf", i,
                              isnan(logit) ? "NaN" : "+inf");
        if (logit == -INFINITY) continue;
        s->candidates[kept++] = s->candidates[i];
    }
    if (kept == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "sampler_sample: all %d logits are -inf, no token can be chosen", s->n_vocab);
    *list = (candidate_list){ .items = s->candidates, .size = kept, .sorted = 0 };
    return VKLLM_OK;
}

/* ---- ranking: higher logit first, lower id on ties, so every order is fully determined ---- */

static bool ranks_before(const sampler_candidate *a, const sampler_candidate *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int compare_rank(const void *a, const void *b)
{
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

static void swap_candidates(sampler_candidate *a, sampler_candidate *b)
{
    sampler_candidate t = *a;
    *a = *b;
    *b = t;
}

/* Restores the heap below `root` in a heap whose root is its worst-ranked item. */
static void sift_down_worst_first(sampler_candidate *heap, size_t size, size_t root)
{
    for (;;) {
        size_t worst = root;
        const size_t left = 2 * root + 1, right = left + 1;
        if (left < size && ranks_before(&heap[worst], &heap[left])) worst = left;
        if (right < size && ranks_before(&heap[worst], &heap[right])) worst = right;
        if (worst == root) return;
        swap_candidates(&heap[root], &heap[worst]);
        root = worst;
    }
}

/* Heap selection: keeps items[begin, split) as a heap with the worst of them on top, so each other
 * item costs one well-predicted comparison unless it beats that root.  About one pass over a 150k
 * vocabulary when few items are wanted (top-k 40), and O(n log k) at worst. */
static void select_best_by_heap(sampler_candidate *items, size_t begin, size_t end, size_t split)
{
    sampler_candidate *heap = items + begin;
    const size_t size = split - begin;
    for (size_t i = size / 2; i-- > 0;) sift_down_worst_first(heap, size, i);
    for (size_t i = split; i < end; i++) {
        if (!ranks_before(&items[i], &heap[0])) continue;
        swap_candidates(&items[i], &heap[0]);
        sift_down_worst_first(heap, size, 0);
    }
}

/* Moves the median of items[lo], items[mid], items[hi] to items[hi] as the pivot. */
static void place_median_pivot(sampler_candidate *items, size_t lo, size_t hi)
{
    const size_t mid = lo + (hi - lo) / 2;
    if (ranks_before(&items[mid], &items[lo])) swap_candidates(&items[mid], &items[lo]);
    if (ranks_before(&items[hi], &items[lo])) swap_candidates(&items[hi], &items[lo]);
    if (ranks_before(&items[mid], &items[hi])) swap_candidates(&items[mid], &items[hi]);
}

/* Lomuto partition of items[lo, hi] around items[hi]; returns the pivot's final index. */
static size_t partition_by_rank(sampler_candidate *items, size_t lo, size_t hi)
{
    size_t store = lo;
    for (size_t i = lo; i < hi; i++)
        if (ranks_before(&items[i], &items[hi])) swap_candidates(&items[i], &items[store++]);
    swap_candidates(&items[store], &items[hi]);
    return store;
}

/* Quickselect: O(n) on average whatever the split, where the heap would pay log k per item. */
static void select_best_by_partition(sampler_candidate *items, size_t begin, size_t end, size_t split)
{
    size_t lo = begin, hi = end - 1;
    while (lo < hi) {
        place_median_pivot(items, lo, hi);
        const size_t pivot = partition_by_rank(items, lo, hi);
        if (pivot == split) return;
        if (pivot < split)
            lo = pivot + 1;
        else
            hi = pivot - 1; /* pivot > split >= begin, so no underflow */
    }
}

/* Rearranges items[begin, end) so that items[begin, split) are the best of the range (unordered). */
static void select_best(sampler_candidate *items, size_t begin, size_t end, size_t split)
{
    if ((split - begin) * HEAP_SELECT_MAX_FRACTION <= end - begin)
        select_best_by_heap(items, begin, end, split);
    else
        select_best_by_partition(items, begin, end, split);
}

/* Extends the sorted prefix of the list to at least `want` items (capped at the size). */
static void sort_prefix(candidate_list *list, size_t want)
{
    if (want > list->size) want = list->size;
    if (want <= list->sorted) return;
    if (want < list->size) select_best(list->items, list->sorted, list->size, want);
    qsort(list->items + list->sorted, want - list->sorted, sizeof(*list->items), compare_rank);
    list->sorted = want;
}

static float max_logit(const candidate_list *list)
{
    if (list->sorted > 0) return list->items[0].logit;
    float best = list->items[0].logit;
    for (size_t i = 1; i < list->size; i++)
        if (list->items[i].logit > best) best = list->items[i].logit;
    return best;
}

/* ---- stages: greedy, top-k, top-p, min-p ---- */

static int32_t argmax_token(const candidate_list *list)
{
    size_t best = 0;
    for (size_t i = 1; i < list->size; i++)
        if (ranks_before(&list->items[i], &list->items[best])) best = i;
    return list->items[best].id;
}

static void apply_top_k(candidate_list *list, int32_t top_k)
{
    if (top_k <= 0 || (size_t)top_k >= list->size) return;
    sort_prefix(list, (size_t)top_k);
    list->size = (size_t)top_k;
}

/* Keeps the smallest prefix, in rank order, whose probability reaches top_p (at least one token). */
static void apply_top_p(candidate_list *list, float top_p)
{
    if (top_p >= 1.0f) return;
    const float max = max_logit(list);
    double total = 0.0;
    for (size_t i = 0; i < list->size; i++) total += expf(list->items[i].logit - max);

    double cumulative = 0.0;
    for (size_t i = 0; i < list->size; i++) {
        if (i == list->sorted) sort_prefix(list, i < TOP_P_FIRST_SORTED / 2 ? TOP_P_FIRST_SORTED : 2 * i);
        cumulative += expf(list->items[i].logit - max) / total;
        if (cumulative >= top_p) {
            list->size = i + 1;
            break;
        }
    }
    if (list->sorted > list->size) list->sorted = list->size;
}

/* Keeps tokens whose probability is at least min_p times the best one's: logit >= max + log(min_p).
 * The best token always stays, also when min_p > 1.  Order is kept, so the invariant holds. */
static void apply_min_p(candidate_list *list, float min_p)
{
    if (min_p <= 0.0f) return;
    const float max = max_logit(list);
    const float threshold = fminf(max + logf(min_p), max);
    size_t kept = 0, kept_sorted = 0;
    for (size_t i = 0; i < list->size; i++) {
        if (list->items[i].logit < threshold) continue;
        if (i < list->sorted) kept_sorted++;
        list->items[kept++] = list->items[i];
    }
    list->size = kept;
    list->sorted = kept_sorted;
}

/* ---- stage: temperature and the draw ---- */

static int32_t draw_token(sampler *s, const candidate_list *list, float temperature)
{
    const float max = max_logit(list);
    double total = 0.0;
    for (size_t i = 0; i < list->size; i++) {
        s->weights[i] = expf((list->items[i].logit - max) / temperature);
        total += s->weights[i];
    }
    /* One draw per sample, even with one candidate left, so the stream position depends only on how
     * many tokens were sampled.  `>` (not >=) never picks a weight that underflowed to zero. */
    const double target = rng_uniform(s->rng) * total;
    double running = 0.0;
    size_t last_positive = 0;
    for (size_t i = 0; i < list->size; i++) {
        if (s->weights[i] > 0.0f) last_positive = i;
        running += s->weights[i];
        if (running > target) return list->items[i].id;
    }
    return list->items[last_positive].id; /* only reachable through rounding */
}

vkllm_status sampler_sample(sampler *s, const float *logits, int32_t *token)
{
    if (!s || !logits || !token)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_sample: sampler, logits and token must not be NULL");
    candidate_list list;
    VKLLM_TRY(load_candidates(s, logits, &list));

    const vkllm_sampling *p = &s->params;
    if (p->temperature <= 0.0f) {
        *token = argmax_token(&list);
        return VKLLM_OK;
    }
    apply_top_k(&list, p->top_k);
    apply_top_p(&list, p->top_p);
    apply_min_p(&list, p->min_p);
    *token = draw_token(s, &list, p->temperature);
    return VKLLM_OK;
}

/* ---- dense distributions, for the speculative sampling rule ---- */

vkllm_status sampler_probs(sampler *s, const float *logits, float *probs)
{
    if (!s || !logits || !probs)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_probs: sampler, logits and probs must not be NULL");
    candidate_list list;
    VKLLM_TRY(load_candidates(s, logits, &list));
    memset(probs, 0, (size_t)s->n_vocab * sizeof *probs);
    const vkllm_sampling *p = &s->params;
    if (p->temperature <= 0.0f) {
        probs[argmax_token(&list)] = 1.0f;
        return VKLLM_OK;
    }
    apply_top_k(&list, p->top_k);
    apply_top_p(&list, p->top_p);
    apply_min_p(&list, p->min_p);
    /* the weights of draw_token, normalized */
    const float max = max_logit(&list);
    double total = 0.0;
    for (size_t i = 0; i < list.size; i++) {
        s->weights[i] = expf((list.items[i].logit - max) / p->temperature);
        total += s->weights[i];
    }
    for (size_t i = 0; i < list.size; i++) probs[list.items[i].id] = (float)(s->weights[i] / total);
    return VKLLM_OK;
}

double sampler_uniform(sampler *s) { return rng_uniform(s->rng); }

int32_t sampler_draw_probs(sampler *s, const float *probs)
{
    double total = 0.0;
    for (int32_t i = 0; i < s->n_vocab; i++) total += probs[i];
    const double target = rng_uniform(s->rng) * total;
    double running = 0.0;
    int32_t last_positive = 0;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (probs[i] > 0.0f) last_positive = i;
        running += probs[i];
        if (running > target) return i;
    }
    return last_positive; /* only reachable through rounding */
}

void sampler_copy_history(sampler *dst, const sampler *src)
{
    if (!dst || !src || dst == src || dst->n_vocab != src->n_vocab ||
        dst->params.repeat_last_n != src->params.repeat_last_n || !dst->history)
        return;
    memcpy(dst->history, src->history, (size_t)src->params.repeat_last_n * sizeof *dst->history);
    memcpy(dst->token_counts, src->token_counts, (size_t)src->n_vocab * sizeof *dst->token_counts);
    dst->history_len = src->history_len;
    dst->history_next = src->history_next;
}

vkllm_status sampler_clone(const sampler *src, uint64_t seed_xor, sampler **out)
{
    if (!src) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "sampler_clone: sampler is NULL");
    vkllm_sampling params = src->params;
    params.seed ^= seed_xor;
    return sampler_create(&params, src->n_vocab, out);
}
