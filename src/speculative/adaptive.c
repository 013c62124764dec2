/* Adaptive drafting: how many tokens to draft, and when to stop drafting because it does not pay.
 *
 * Draft length (a draft model, whose every drafted token costs a pass of it): 1 at first, doubled (1 -> 3 -> 7, up
 * to draft_max) after a pass that kept all of it, halved after a pass that kept less than half of it, so that a
 * draft that fails costs little while it is being found out.  Lookup drafts cost nothing to make: their length is
 * the lookup's own (spec_generate.c).
 *
 * Stopping: greedy decoding compares time (its text does not depend on how the passes fall): the milliseconds per
 * token of drafting passes (drafting and verification) against those of plain passes, exponentially averaged;
 * the first ADAPT_BASELINE passes after one untimed pass (the generation's first may compile pipelines or warm
 * caches) run plain to measure them.  Sampling compares counts, so that a seed keeps giving
 * one text: at least ADAPT_MIN_PER_PASS tokens accepted per drafting pass (a verification of 4 tokens costs about
 * 1.2 plain passes on lavapipe, of 8 about 1.5; on GPUs less).  Either way, after ADAPT_MIN_PASSES drafting passes
 * that do not pay (lookup: ADAPT_MIN_PASSES_LOOKUP; under greedy decoding, drafting that costs more than twice a
 * plain pass per token: one pass of a draft model, ADAPT_MIN_PASSES of the others), drafting pauses for a backoff of passes that doubles each time (ADAPT_SKIP_FIRST to
 * ADAPT_SKIP_MAX), probes again with the short draft it had, and the backoff resets when a probe pays.  Lookup's
 * probes draft at most ADAPT_PROBE_LOOKUP tokens and are judged after ADAPT_MIN_PASSES passes: where a pass's
 * every token costs arithmetic (lavapipe without worker threads), probes of full-length drafts that keep nothing
 * cost more than the 5% a run may lose.  A draft
 * model stops for the rest of the generation at its ADAPT_MODEL_PAUSES-th pause: each probe makes it catch up with
 * the text skipped, as costly as a prompt of that length for it.
 *
 * Lookup and Medusa under greedy decoding also choose their draft length from what they measure, once
 * ADAPT_MIN_ROWS drafting passes are behind them: the milliseconds a drafted row adds to a plain pass (averaged
 * like the rest), and for each draft position the share kept of the drafts that reached it with all before it
 * kept (decayed counts, one kept and one not as the prior).  The length is the one with the most expected tokens
 * (1 + the chance of keeping the first, the first two, ...) per expected millisecond.  Where a row costs little
 * against a pass (a GPU reading the weights once for all rows, lavapipe's workers) that is the whole room; where
 * each row costs its own arithmetic (lavapipe without workers) it is short. */
#include "spec.h"

#include "runtime/log.h"

#define ADAPT_BASELINE 2u
#define ADAPT_EWMA 0.3
#define ADAPT_DECAY 0.8
#define ADAPT_MIN_PER_PASS 0.3
#define ADAPT_MIN_PASSES 2u
#define ADAPT_MIN_PASSES_LOOKUP 6u
#define ADAPT_PROBE_LOOKUP 2u
#define ADAPT_SKIP_FIRST 8u
#define ADAPT_SKIP_MAX 256u
#define ADAPT_MODEL_PAUSES 2u
#define ADAPT_MIN_ROWS 6u

void spec_adaptive_start(spec_adaptive *ad, bool timed, bool model, uint32_t draft_max)
{
    *ad = (spec_adaptive){.timed = timed, .model = model, .k = model ? 1 : draft_max, .backoff = ADAPT_SKIP_FIRST,
                          .max_pauses = model ? ADAPT_MODEL_PAUSES : UINT32_MAX};
}

uint32_t spec_adaptive_room(spec_adaptive *ad, uint32_t room)
{
    if (ad->timed && (!ad->warm || ad->n_plain < ADAPT_BASELINE)) return 0;
    if (ad->skip) {
        ad->skip--;
        return 0;
    }
    uint32_t k = ad->probing && !ad->model && ad->k > ADAPT_PROBE_LOOKUP ? ADAPT_PROBE_LOOKUP : ad->k;
    return room < k ? room : k;
}

static double ewma(double avg, uint32_t n, double x) { return n ? avg + ADAPT_EWMA * (x - avg) : x; }

/* The draft length with the most expected tokens per expected millisecond (see the top of the file). */
static uint32_t best_length(const spec_adaptive *ad, uint32_t draft_max)
{
    double keep_all = 1.0, tokens = 1.0, best = 0.0;
    uint32_t best_k = 1;
    for (uint32_t k = 1; k <= draft_max; k++) {
        const uint32_t i = k - 1 < SPEC_ADAPT_POSITIONS ? k - 1 : SPEC_ADAPT_POSITIONS - 1;
        keep_all *= (ad->kept[i] + 1.0) / (ad->reached[i] + 2.0);
        tokens += keep_all;
        const double rate = tokens / (ad->ms_plain + k * ad->row_ms);
        if (rate > best) {
            best = rate;
            best_k = k;
        }
    }
    return best_k;
}

/* A timed drafting pass of k rows that kept a: the row cost and the positions' acceptance, then the length. */
static void learn_length(spec_adaptive *ad, uint32_t k, uint32_t a, double ms, uint32_t draft_max)
{
    if (!ad->timed || ad->model || ad->n_plain == 0) return;
    const double extra = (ms - ad->ms_plain) / k;
    ad->row_ms = ewma(ad->row_ms, ad->n_rows++, extra > 0.0 ? extra : 0.0);
    for (uint32_t i = 0; i < SPEC_ADAPT_POSITIONS; i++) {
        ad->reached[i] *= ADAPT_DECAY;
        ad->kept[i] *= ADAPT_DECAY;
    }
    for (uint32_t i = 0; i < k && i <= a; i++) { /* position a, if drafted, was the first not kept */
        const uint32_t at = i < SPEC_ADAPT_POSITIONS ? i : SPEC_ADAPT_POSITIONS - 1;
        ad->reached[at] += 1.0;
        if (i < a) ad->kept[at] += 1.0;
    }
    if (ad->n_rows >= ADAPT_MIN_ROWS) ad->k = best_length(ad, draft_max);
}

void spec_adaptive_update(spec_adaptive *ad, uint32_t k, uint32_t a, double ms, uint32_t draft_max)
{
    if (k == 0) {
        if (ad->warm) ad->ms_plain = ewma(ad->ms_plain, ad->n_plain++, ms);
        ad->warm = true;
        return;
    }
    ad->ms_spec = ewma(ad->ms_spec, ad->n_spec++, ms / (a + 1));
    learn_length(ad, k, a, ms, draft_max);
    ad->passes = ad->passes * ADAPT_DECAY + 1.0;
    ad->accepted = ad->accepted * ADAPT_DECAY + a;
    if (ad->model && a == k) ad->k = 2 * ad->k + 1 <= draft_max ? 2 * ad->k + 1 : draft_max;
    else if (ad->model && 2 * a < k && ad->k > 1) ad->k /= 2;
    /* a draft model's pass at more than twice the plain cost per token is verdict enough, two of the others' (where
     * every drafted row costs arithmetic: lavapipe without workers); lookup passes keep all or nothing of their
     * drafts, so short of that they are judged over more of them */
    bool clear = ad->timed && (ad->model || ad->n_spec >= ADAPT_MIN_PASSES) && ad->ms_spec > 2.0 * ad->ms_plain;
    if (ad->n_spec < (ad->model || ad->probing ? ADAPT_MIN_PASSES : ADAPT_MIN_PASSES_LOOKUP) && !clear) return;
    bool pays = ad->timed ? ad->ms_spec <= ad->ms_plain : ad->accepted >= ADAPT_MIN_PER_PASS * ad->passes;
    if (pays) {
        ad->backoff = ADAPT_SKIP_FIRST;
        ad->probing = false;
        return;
    }
    ad->probing = true;
    ad->skip = ++ad->pauses >= ad->max_pauses ? UINT32_MAX : ad->backoff;
    vkllm_log(VKLLM_LOG_DEBUG, "speculation: drafting does not pay (%.3f ms per token against %.3f plain; %.2f "
              "accepted per pass): %s", ad->ms_spec, ad->ms_plain, ad->passes > 0 ? ad->accepted / ad->passes : 0.0,
              ad->skip == UINT32_MAX ? "stopped" : "paused");
    ad->backoff = 2 * ad->backoff < ADAPT_SKIP_MAX ? 2 * ad->backoff : ADAPT_SKIP_MAX;
    /* the probes after the pause are judged on themselves */
    ad->n_spec = 0;
    ad->passes = ad->accepted = 0.0;
}
