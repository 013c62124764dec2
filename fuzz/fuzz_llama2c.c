/* Fuzz target `llama2c`: llama2.c's legacy files through the importer's readers, which take a path: the fuzz
 * input (less its first byte or two) is written to a scratch file (one per process) and read back.
 * The first byte picks the reader:
 *   0  the checkpoint (llama2c_model_open); an accepted one has every weight array inside the file
 *   1  the tokenizer for a model of data[1] tokens (llama2c_vocab_load)
 *   2  the tokenizer as a SentencePiece vocabulary (tokenizer_create_from_llama2c), then a text through it */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "tokenizer/tokenizer.h"
#include "tools/llama2c.h"

static char path[4096];
static int fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* $TMPDIR, else /dev/shm: in memory, where a disk's truncate-and-write made each run ~70x slower. */
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/vkllm-fuzz-llama2c-XXXXXX", dir);
    fd = mkstemp(path);
    if (fd < 0) {
        perror("fuzz_llama2c: mkstemp");
        exit(1);
    }
    return 0;
}

/* The scratch file goes when the process ends normally (libFuzzer's -runs, the replay test). */
__attribute__((destructor)) static void remove_scratch(void)
{
    if (fd >= 0) unlink(path);
}

static void write_file(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    for (size_t done = 0; done < size;) {
        const ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        FUZZ_CHECK(n > 0);
        done += (size_t)n;
    }
}

static volatile float sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    const int mode = data[0] % 3;
    if (mode == 0) {
        write_file(data + 1, size - 1);
        llama2c_model *m = NULL;
        if (llama2c_model_open(path, &m) != VKLLM_OK) return 0;
        const llama2c_config *c = &m->config;
        const float *end = (const float *)(m->map + m->map_size);
        const uint64_t kv_dim = (uint64_t)c->dim * c->n_kv_heads / c->n_heads;
        FUZZ_CHECK(m->rms_final + c->dim <= end);
        FUZZ_CHECK(m->wcls + (uint64_t)c->vocab_size * c->dim <= end);
        FUZZ_CHECK(m->wv + (uint64_t)c->n_layers * kv_dim * c->dim <= end);
        sink = m->rms_final[c->dim - 1] + m->wcls[(uint64_t)c->vocab_size * c->dim - 1] + m->token_embedding[0];
        llama2c_model_close(m);
    } else if (mode == 1) {
        write_file(data + 2, size - 2);
        llama2c_vocab *v = NULL;
        if (llama2c_vocab_load(path, data[1], &v) != VKLLM_OK) return 0;
        FUZZ_CHECK(v->n_tokens == data[1]);
        for (uint32_t i = 0; i < v->n_tokens; i++) FUZZ_CHECK(v->text[i][v->len[i]] == '\0');
        llama2c_vocab_free(v);
    } else {
        write_file(data + 1, size - 1);
        tokenizer *t = NULL;
        if (tokenizer_create_from_llama2c(path, &t) != VKLLM_OK) return 0;
        static const char text[] = "Once upon a time, <s> there was \xe2\x96\x81 a </s> cat\xff.";
        int32_t ids[256];
        size_t n = 0;
        if (tokenizer_encode(t, text, sizeof text - 1, true, true, ids, 256, &n) == VKLLM_OK) {
            for (size_t i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && (uint32_t)ids[i] < tokenizer_n_vocab(t));
            char out[2048];
            size_t got = 0;
            (void)tokenizer_decode(t, ids, n, true, true, out, sizeof out, &got);
        }
        tokenizer_free(t);
    }
    return 0;
}
