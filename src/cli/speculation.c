/* The speculation options of run, chat and bench onto a context (the draft model loaded beside it). */
#include <stdio.h>

#include "options.h"

int cli_open_speculation(const char *command, const cli_spec_options *o, const char *device, uint32_t n_ctx, vkllm_context *ctx,
                         vkllm_model **draft_model, vkllm_context **draft_ctx)
{
    *draft_model = NULL;
    *draft_ctx = NULL;
    if (!cli_spec_on(o)) return 0;
    vkllm_speculation spec = vkllm_speculation_default();
    spec.lookup_ngram = o->lookup ? o->lookup_ngram : 0;
    spec.draft_max = o->draft_max;
    spec.draft_min_p = o->draft_min_p;
    spec.adaptive = !o->no_adaptive;
    spec.medusa = o->medusa;
    spec.medusa_tree = o->medusa_tree;
    vkllm_status st = VKLLM_OK;
    if (o->draft) {
        vkllm_model_params mp = vkllm_model_default_params();
        mp.device = device;
        st = vkllm_model_load_params(o->draft, &mp, draft_model);
        vkllm_context_params cp = vkllm_context_default_params();
        cp.n_ctx = n_ctx;
        if (st == VKLLM_OK) st = vkllm_context_create(*draft_model, &cp, draft_ctx);
        spec.draft = *draft_ctx;
    }
    if (st == VKLLM_OK) st = vkllm_context_set_speculation(ctx, &spec);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm %s: %s: %s\n", command, vkllm_status_name(st), vkllm_last_error());
        vkllm_context_free(*draft_ctx);
        vkllm_model_free(*draft_model);
        *draft_ctx = NULL;
        *draft_model = NULL;
        return -1;
    }
    return 0;
}

void cli_print_speculation(const vkllm_generate_stats *s)
{
    fprintf(stderr, "speculation: %u drafted, %u accepted (%.1f%%), %u verification passes, %.2f tokens per pass\n",
            s->n_drafted, s->n_accepted, s->n_drafted ? 100.0 * s->n_accepted / s->n_drafted : 0.0, s->n_verify,
            s->n_verify ? (double)s->n_decode / s->n_verify : 0.0);
}
