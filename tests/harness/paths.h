/* The folders tests read and write: compiled in by tests/CMakeLists.txt (VKLLM_SHARED_DIR: ../shared beside
 * the checkout; VKLLM_TEST_DATA: tests/data; VKLLM_BINARY_DIR: the build tree), each overridden by the
 * environment variable of the same name, so a build carried to another machine or path (bench/gpu-check.sh)
 * finds them.  A header, not harness.c: the macros are defined per test program. */
#ifndef VKLLM_TEST_PATHS_H
#define VKLLM_TEST_PATHS_H

#include <stdio.h>
#include <stdlib.h>

static inline const char *th_dir_(const char *env, const char *compiled)
{
    const char *v = getenv(env);
    return v && *v ? v : compiled;
}

static inline const char *th_shared_dir(void) { return th_dir_("VKLLM_SHARED_DIR", VKLLM_SHARED_DIR); }
static inline const char *th_test_data_dir(void) { return th_dir_("VKLLM_TEST_DATA", VKLLM_TEST_DATA); }
static inline const char *th_binary_dir(void) { return th_dir_("VKLLM_BINARY_DIR", VKLLM_BINARY_DIR); }

/* dir/rel in one of 8 static buffers used in turn (a call may hold up to 8 such paths at once). */
static inline const char *th_join_(const char *dir, const char *rel)
{
    static char buffers[8][4096];
    static unsigned next;
    char *b = buffers[next++ % 8];
    snprintf(b, sizeof buffers[0], "%s/%s", dir, rel);
    return b;
}

/* A file under the shared folder ("models/stories260K.gguf"), under tests/data ("quant/x.bin"). */
static inline const char *th_shared_path(const char *rel) { return th_join_(th_shared_dir(), rel); }
static inline const char *th_data_path(const char *rel) { return th_join_(th_test_data_dir(), rel); }

#endif
