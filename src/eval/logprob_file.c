#include "logprob_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char magic[8] = {'V', 'K', 'L', 'L', 'M', 'L', 'P', '1'};

vkllm_status logprob_file_create(const char *path, uint32_t n_vocab, uint32_t n_ctx, uint32_t first,
                                 uint32_t n_chunks, const int32_t *tokens, logprob_file *out)
{
    *out = (logprob_file){.path = path, .n_vocab = n_vocab, .n_ctx = n_ctx, .first = first, .n_chunks = n_chunks};
    if (!n_vocab || first + 1 >= n_ctx)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: n_vocab %u, n_ctx %u, first %u", path, n_vocab, n_ctx,
                          first);
    out->f = fopen(path, "wb");
    if (!out->f) return vkllm_fail(VKLLM_ERROR_IO, "%s: cannot create: %s", path, strerror(errno));
    uint32_t head[4] = {n_vocab, n_ctx, first, n_chunks};
    size_t n_tokens = (size_t)n_chunks * n_ctx;
    if (fwrite(magic, 1, 8, out->f) != 8 || fwrite(head, 4, 4, out->f) != 4 ||
        fwrite(tokens, 4, n_tokens, out->f) != n_tokens) {
        fclose(out->f);
        out->f = NULL;
        return vkllm_fail(VKLLM_ERROR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return VKLLM_OK;
}

vkllm_status logprob_file_write(logprob_file *f, const float *rows, size_t n_rows)
{
    size_t n = n_rows * f->n_vocab;
    if (fwrite(rows, 4, n, f->f) != n) return vkllm_fail(VKLLM_ERROR_IO, "%s: write failed: %s", f->path, strerror(errno));
    return VKLLM_OK;
}

vkllm_status logprob_file_open(const char *path, logprob_file *out)
{
    *out = (logprob_file){.path = path};
    out->f = fopen(path, "rb");
    if (!out->f) return vkllm_fail(VKLLM_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    char m[8];
    uint32_t head[4];
    if (fread(m, 1, 8, out->f) != 8 || memcmp(m, magic, 8) || fread(head, 4, 4, out->f) != 4) {
        logprob_file_close(out);
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: not a log-probability file of vkllm perplexity --kl-base "
                          "(magic VKLLMLP1)", path);
    }
    out->n_vocab = head[0], out->n_ctx = head[1], out->first = head[2], out->n_chunks = head[3];
    /* Bounds far above any real run that keep every size below in range. */
    if (!out->n_vocab || out->n_vocab > (1u << 24) || out->n_ctx > (1u << 24) || out->first + 1 >= out->n_ctx ||
        !out->n_chunks || (uint64_t)out->n_chunks * out->n_ctx > (1u << 28)) {
        logprob_file_close(out);
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: impossible header: n_vocab %u, n_ctx %u, first %u, n_chunks %u",
                          path, head[0], head[1], head[2], head[3]);
    }
    size_t n_tokens = (size_t)out->n_chunks * out->n_ctx;
    out->tokens = malloc(n_tokens * sizeof *out->tokens);
    if (!out->tokens) {
        logprob_file_close(out);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "%s: %zu tokens", path, n_tokens);
    }
    if (fread(out->tokens, 4, n_tokens, out->f) != n_tokens) {
        logprob_file_close(out);
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: truncated in its tokens", path);
    }
    return VKLLM_OK;
}

vkllm_status logprob_file_read(logprob_file *f, float *rows, size_t n_rows)
{
    size_t n = n_rows * f->n_vocab;
    if (fread(rows, 4, n, f->f) != n)
        return vkllm_fail(VKLLM_ERROR_BAD_FORMAT, "%s: truncated: fewer log-probability rows than its header says",
                          f->path);
    return VKLLM_OK;
}

vkllm_status logprob_file_close(logprob_file *f)
{
    vkllm_status st = VKLLM_OK;
    if (f->f && fclose(f->f) != 0) st = vkllm_fail(VKLLM_ERROR_IO, "%s: write failed: %s", f->path, strerror(errno));
    free(f->tokens);
    f->f = NULL;
    f->tokens = NULL;
    return st;
}
