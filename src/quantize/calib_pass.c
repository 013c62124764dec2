/* The calibration pass (see calib_pass.h). */
#include "calib_pass.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/text_file.h"
#include "runtime/error.h"
#include "vkllm.h"

static vkllm_status evaluate(const calib_pass_options *o, vkllm_context *ctx, vkllm_context *ref,
                             const vkllm_token *chunks, uint32_t n_chunks, calib_chunk_fn fn, void *user,
                             vkllm_progress_fn progress, void *progress_ctx)
{
    const uint32_t n_ctx = o->n_ctx;
    int32_t *pos = malloc(n_ctx * sizeof *pos), *seq = malloc(n_ctx * sizeof *seq);
    int8_t *want = malloc(n_ctx);
    vkllm_status st = pos && seq && want ? VKLLM_OK : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "batch of %u", n_ctx);
    for (uint32_t k = 0; st == VKLLM_OK && k < n_ctx; k++) {
        pos[k] = (int32_t)k, seq[k] = 0;
        want[k] = o->want_output; /* the LM head's input of every row, or of none */
    }
    for (uint32_t c = 0; c < n_chunks && st == VKLLM_OK; c++) {
        vkllm_batch b = {n_ctx, chunks + (size_t)c * n_ctx, pos, seq, want};
        st = vkllm_seq_truncate(ctx, 0, 0);
        if (st == VKLLM_OK) st = vkllm_decode(ctx, &b);
        if (st == VKLLM_OK && ref) st = vkllm_seq_truncate(ref, 0, 0);
        if (st == VKLLM_OK && ref) st = vkllm_decode(ref, &b);
        if (st == VKLLM_OK) st = fn(user, ctx, ref, n_ctx);
        if (progress) progress(progress_ctx, "chunk", c + 1, n_chunks);
    }
    free(pos), free(seq), free(want);
    return st;
}

vkllm_status calib_pass_run(const calib_pass_options *o, calib_chunk_fn fn, void *user, vkllm_progress_fn progress,
                            void *progress_ctx, uint32_t *n_chunks_out)
{
    *n_chunks_out = 0;
    vkllm_model *model = NULL, *ref_model = NULL;
    vkllm_context *ctx = NULL, *ref = NULL;
    char *text = NULL;
    size_t len = 0, n_tokens = 0, n_plain = 0;
    vkllm_token *tokens = NULL, *plain = NULL;
    vkllm_status st = o->n_ctx ? eval_read_text(o->text_path, &text, &len)
                               : vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "calibration: chunks of 0 tokens");
    vkllm_model_params mp = vkllm_model_default_params();
    mp.device = o->device;
    /* Whole chunks per pass: lavapipe's worker threads pay even for the smallest model (as perplexity's) */
    if (!getenv("VKLLM_CPU_THREADS")) mp.cpu_threads = 0;
    if (st == VKLLM_OK) st = vkllm_model_load_params(o->model, &mp, &model);
    if (st == VKLLM_OK && o->reference) st = vkllm_model_load_params(o->reference, &mp, &ref_model);
    if (st == VKLLM_OK && ref_model && ref_model->cfg.n_vocab != model->cfg.n_vocab)
        st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "calibration: %s has %u tokens, %s %u", o->reference,
                        ref_model->cfg.n_vocab, o->model, model->cfg.n_vocab);
    /* BOS "as the vocabulary asks": the tokenizer adds it with add_special when the vocabulary says so. */
    if (st == VKLLM_OK) st = eval_tokenize_all(model, text, len, 1, &tokens, &n_tokens);
    if (st == VKLLM_OK) st = eval_tokenize_all(model, text, len, 0, &plain, &n_plain);
    const uint32_t min_chunks = o->min_chunks ? o->min_chunks : 1;
    if (st == VKLLM_OK && n_tokens < (size_t)min_chunks * o->n_ctx)
        st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                        "%s: the calibration text is too short: %zu tokens, at least %llu (%u chunk%s of -c %u) needed",
                        o->text_path, n_tokens, (unsigned long long)min_chunks * o->n_ctx, min_chunks,
                        min_chunks == 1 ? "" : "s", o->n_ctx);
    const size_t max_chunks = o->n_ctx ? n_tokens / o->n_ctx : 0;
    const uint32_t n_chunks =
        (uint32_t)(o->chunks >= 0 && (size_t)o->chunks < max_chunks ? (size_t)o->chunks : max_chunks);
    if (st == VKLLM_OK && n_chunks == 0)
        st = vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "calibration: 0 chunks leave nothing to measure");
    if (st == VKLLM_OK && n_tokens > n_plain) /* llama-imatrix puts BOS in front of every chunk */
        for (uint32_t c = 0; c < n_chunks; c++) tokens[(size_t)c * o->n_ctx] = vkllm_token_bos(model);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_batch = o->n_ctx;
    cp.n_outputs_max = o->n_ctx;
    if (st == VKLLM_OK) st = vkllm_context_create(model, &cp, &ctx);
    if (st == VKLLM_OK) st = context_capture_enable(ctx);
    if (st == VKLLM_OK && ref_model) st = vkllm_context_create(ref_model, &cp, &ref);
    if (st == VKLLM_OK && ref) st = context_capture_enable(ref);
    if (st == VKLLM_OK) st = evaluate(o, ctx, ref, tokens, n_chunks, fn, user, progress, progress_ctx);
    if (st == VKLLM_OK) *n_chunks_out = n_chunks;
    vkllm_context_free(ref);
    vkllm_context_free(ctx);
    vkllm_model_free(ref_model);
    vkllm_model_free(model);
    free(text), free(tokens), free(plain);
    return st;
}
