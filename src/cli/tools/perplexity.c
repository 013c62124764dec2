/* vkllm perplexity: llama-perplexity's measurement, so that the two engines' figures compare directly.  The text
 * is tokenized once (BOS as the vocabulary asks) and cut into chunks of -c tokens; each chunk is evaluated from an
 * empty cache with its first token replaced by BOS, and only its second half is scored (each position then sees at
 * least n_ctx / 2 tokens of context).  --kl-base saves every scored position's log-probabilities
 * (src/eval/logprob_file.h); --kl compares another run (a quantized cache, say) with them. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "eval/logprob_file.h"
#include "eval/ppl_stats.h"
#include "eval/text_file.h"
#include "options.h"
#include "vkllm.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm perplexity [-m MODEL] -f TEXT [-c 512] [-b N] [--chunks N] [--kv TYPE] [--kv-k TYPE]\n"
            "                        [--kv-v TYPE] [--kv-rotate on|off] [--kv-center on|off] [--kl-base OUT | --kl BASE]\n"
            "                        [--json] [--device INDEX|NAME]\n"
            "  -c: tokens per chunk (4 to %d); the second half of each chunk is scored\n"
            "  -b: tokens per forward pass (default -c); --chunks: at most N chunks (default: all)\n"
            "  --kv, --kv-k, --kv-v: KV cache types f16 (default), f32, q8_0, q4_0\n"
            "  --kv-rotate on|off: Hadamard rotation of quantized keys (default on)\n"
            "  --kv-center on|off: quantized keys stored relative to the model's mean key (default on)\n"
            "  --kl-base OUT: save the log-probabilities; --kl BASE: KL divergence from them\n",
            CLI_PPL_MAX_CTX);
}

typedef struct run {
    const cli_perplexity_options *o;
    vkllm_model *model;
    vkllm_context *ctx;
    uint32_t n_vocab, n_ctx, first, n_chunks;
    vkllm_token *chunk_tokens; /* [n_chunks][n_ctx], BOS in front where the vocabulary adds one */
    logprob_file base;         /* --kl-base (written) or --kl (read) */
    float *row, *base_row;     /* [n_vocab] log-softmax of this run and of the base */
    ppl_accum ppl;
    kld_accum kld;
    bool tty;
} run;

/* Scores row p's logits (predicting token p + 1 of the chunk). */
static vkllm_status score(run *r, const vkllm_token *chunk, uint32_t p, const float *logits)
{
    ppl_add(&r->ppl, ppl_log_prob(logits, r->n_vocab, (uint32_t)chunk[p + 1]));
    if (!r->o->kl && !r->o->kl_base) return VKLLM_OK;
    ppl_log_softmax(logits, r->n_vocab, r->row);
    if (r->o->kl_base) return logprob_file_write(&r->base, r->row, 1);
    VKLLM_TRY(logprob_file_read(&r->base, r->base_row, 1));
    return kld_add(&r->kld, r->base_row, r->row, r->n_vocab);
}

static vkllm_status eval_chunk(run *r, uint32_t c, int32_t *pos, int32_t *seq, int8_t *want)
{
    const vkllm_token *chunk = r->chunk_tokens + (size_t)c * r->n_ctx;
    VKLLM_TRY(vkllm_seq_truncate(r->ctx, 0, 0));
    for (uint32_t start = 0; start < r->n_ctx; start += r->o->n_batch) {
        uint32_t n = r->n_ctx - start < r->o->n_batch ? r->n_ctx - start : r->o->n_batch, n_want = 0;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t p = start + k;
            pos[k] = (int32_t)p, seq[k] = 0;
            want[k] = p >= r->first && p + 1 < r->n_ctx;
            n_want += want[k] != 0;
        }
        vkllm_batch b = {n, chunk + start, pos, seq, want};
        VKLLM_TRY(vkllm_decode(r->ctx, &b));
        for (uint32_t k = 0, i = 0; k < n; k++)
            if (want[k]) VKLLM_TRY(score(r, chunk, start + k, vkllm_get_logits(r->ctx, i++)));
        (void)n_want;
    }
    return VKLLM_OK;
}

static vkllm_status prepare(run *r, const vkllm_token *tokens, size_t n_tokens, bool add_bos)
{
    const cli_perplexity_options *o = r->o;
    r->n_ctx = o->n_ctx;
    r->first = r->n_ctx / 2;
    size_t max_chunks = n_tokens / r->n_ctx;
    if (max_chunks == 0)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %zu tokens, fewer than one chunk of -c %u", o->file,
                          n_tokens, r->n_ctx);
    r->n_chunks = (uint32_t)(o->chunks > 0 && (size_t)o->chunks < max_chunks ? (size_t)o->chunks : max_chunks);
    r->chunk_tokens = malloc((size_t)r->n_chunks * r->n_ctx * sizeof *r->chunk_tokens);
    r->row = malloc(r->n_vocab * sizeof *r->row);
    r->base_row = malloc(r->n_vocab * sizeof *r->base_row);
    if (!r->chunk_tokens || !r->row || !r->base_row)
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "%u chunks of %u tokens", r->n_chunks, r->n_ctx);
    memcpy(r->chunk_tokens, tokens, (size_t)r->n_chunks * r->n_ctx * sizeof *tokens);
    if (add_bos)
        for (uint32_t c = 0; c < r->n_chunks; c++) r->chunk_tokens[(size_t)c * r->n_ctx] = vkllm_token_bos(r->model);
    if (o->kl_base)
        return logprob_file_create(o->kl_base, r->n_vocab, r->n_ctx, r->first, r->n_chunks, r->chunk_tokens, &r->base);
    if (!o->kl) return VKLLM_OK;
    VKLLM_TRY(logprob_file_open(o->kl, &r->base));
    if (r->base.n_vocab != r->n_vocab || r->base.n_ctx != r->n_ctx || r->base.first != r->first ||
        r->base.n_chunks != r->n_chunks)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "--kl %s holds %u chunks of %u tokens over %u vocabulary "
                          "entries; this run has %u chunks of %u over %u (same -c, --chunks and model vocabulary "
                          "needed)", o->kl, r->base.n_chunks, r->base.n_ctx, r->base.n_vocab, r->n_chunks, r->n_ctx,
                          r->n_vocab);
    if (memcmp(r->base.tokens, r->chunk_tokens, (size_t)r->n_chunks * r->n_ctx * sizeof *tokens))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "--kl %s was made from other tokens (another text or "
                          "tokenizer)", o->kl);
    return VKLLM_OK;
}

static vkllm_status evaluate(run *r)
{
    uint32_t nb = r->o->n_batch;
    int32_t *pos = malloc(nb * sizeof *pos), *seq = malloc(nb * sizeof *seq);
    int8_t *want = malloc(nb);
    vkllm_status st = pos && seq && want ? VKLLM_OK : vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "batch of %u", nb);
    for (uint32_t c = 0; c < r->n_chunks && st == VKLLM_OK; c++) {
        st = eval_chunk(r, c, pos, seq, want);
        if (st != VKLLM_OK) break;
        /* llama-perplexity's running estimate; --json keeps stdout for the object alone. */
        if (!r->o->json) {
            printf("[%u]%.4f,", c + 1, ppl_value(&r->ppl));
            fflush(stdout);
        }
        if (r->tty) {
            fprintf(stderr, "\r[%-30.*s] chunk %u of %u, PPL %.4f ", (int)(30 * (c + 1) / r->n_chunks),
                    "##############################", c + 1, r->n_chunks, ppl_value(&r->ppl));
            fflush(stderr);
        }
    }
    if (r->tty) fputc('\n', stderr);
    if (!r->o->json) putchar('\n');
    free(pos), free(seq), free(want);
    return st;
}

static void report(run *r)
{
    const cli_perplexity_options *o = r->o;
    kld_result k = {0};
    if (o->kl) k = kld_finish(&r->kld);
    if (o->json) {
        printf("{\"model\": \"%s\", \"kv_k\": \"%s\", \"kv_v\": \"%s\", \"kv_rotate\": %s, \"kv_center\": %s, \"n_ctx\": %u, "
               "\"n_chunks\": %u, \"n_tokens\": %llu, \"ppl\": %.6f, \"ppl_err\": %.6f",
               o->model ? o->model : "", vkllm_kv_type_name(o->type_k), vkllm_kv_type_name(o->type_v),
               !o->kv_no_rotate && (o->type_k == VKLLM_KV_Q8_0 || o->type_k == VKLLM_KV_Q4_0) ? "true" : "false",
               !o->kv_no_center && (o->type_k == VKLLM_KV_Q8_0 || o->type_k == VKLLM_KV_Q4_0) ? "true" : "false", r->n_ctx,
               r->n_chunks, (unsigned long long)r->ppl.count, ppl_value(&r->ppl), ppl_error(&r->ppl));
        if (o->kl)
            printf(", \"kld_mean\": %.9g, \"kld_err\": %.9g, \"kld_p99\": %.9g, \"top1_agree\": %.6f", k.mean,
                   k.mean_err, k.p99, k.top1);
        printf("}\n");
        return;
    }
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl_value(&r->ppl), ppl_error(&r->ppl));
    if (o->kl) {
        printf("Mean    KLD: %10.6f +/- %10.6f\n", k.mean, k.mean_err);
        printf("99.0%%   KLD: %10.6f\n", k.p99);
        printf("Same top p: %6.3f +/- %5.3f %%\n", 100 * k.top1, 100 * k.top1_err);
    }
}

int cli_perplexity(int argc, char **argv)
{
    cli_perplexity_options o;
    char err[256];
    cli_parse_result parsed = cli_parse_perplexity_options(argc, argv, &o, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("perplexity", parsed, err, usage);
    cli_options ro = {.model = o.model};
    const char *path = cli_model_path(&ro);
    if (!path) return 1;
    o.model = path;
    run r = {.o = &o, .tty = isatty(STDERR_FILENO) != 0};
    char *text = NULL;
    size_t len = 0, n_tokens = 0, n_plain = 0;
    vkllm_token *tokens = NULL, *plain = NULL;
    vkllm_status st = eval_read_text(o.file, &text, &len);
    vkllm_model_params mp = vkllm_model_default_params();
    mp.device = o.device;
    /* Chunks of -c tokens per pass: lavapipe's worker threads pay even for the smallest model (the automatic
     * choice is for decoding; docs/performance.md), unless VKLLM_CPU_THREADS says otherwise. */
    if (!getenv("VKLLM_CPU_THREADS")) mp.cpu_threads = 0;
    if (st == VKLLM_OK) st = vkllm_model_load_params(path, &mp, &r.model);
    vkllm_model_info info = {0};
    if (st == VKLLM_OK) vkllm_model_get_info(r.model, &info);
    r.n_vocab = info.n_vocab;
    /* BOS "as the vocabulary asks": the tokenizer adds it with add_special when the vocabulary says so. */
    if (st == VKLLM_OK) st = eval_tokenize_all(r.model, text, len, 1, &tokens, &n_tokens);
    if (st == VKLLM_OK) st = eval_tokenize_all(r.model, text, len, 0, &plain, &n_plain);
    if (st == VKLLM_OK) st = prepare(&r, tokens, n_tokens, n_tokens > n_plain);
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = o.n_ctx;
    cp.n_batch = o.n_batch;
    cp.n_outputs_max = o.n_batch;
    cp.type_k = o.type_k;
    cp.type_v = o.type_v;
    cp.rotate_k = !o.kv_no_rotate;
    cp.center_k = !o.kv_no_center;
    if (st == VKLLM_OK) st = vkllm_context_create(r.model, &cp, &r.ctx);
    if (st == VKLLM_OK && !o.json)
        fprintf(stderr, "perplexity: %zu tokens, %u chunks of %u (scoring %u per chunk), batches of %u, K cache %s, "
                "V cache %s\n", n_tokens, r.n_chunks, r.n_ctx, r.n_ctx - 1 - r.first, o.n_batch,
                vkllm_kv_type_name(o.type_k), vkllm_kv_type_name(o.type_v));
    if (st == VKLLM_OK) st = evaluate(&r);
    if (st == VKLLM_OK) report(&r);
    vkllm_status closed = logprob_file_close(&r.base);
    if (st == VKLLM_OK) st = closed;
    if (st != VKLLM_OK) fprintf(stderr, "vkllm perplexity: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    kld_free(&r.kld);
    free(r.chunk_tokens), free(r.row), free(r.base_row), free(tokens), free(plain), free(text);
    vkllm_context_free(r.ctx);
    vkllm_model_free(r.model);
    return st == VKLLM_OK ? 0 : 1;
}
