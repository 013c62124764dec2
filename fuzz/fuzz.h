/* libFuzzer targets (fuzz/README in docs/reliability.md).  Each fuzz_*.c defines the two libFuzzer entry points;
 * built with clang -fsanitize=fuzzer they are driven by libFuzzer (-DVKLLM_FUZZ=ON, scripts/fuzz.sh), built
 * by any compiler with fuzz/replay.c they run saved inputs (the seed corpus and every crash reproducer) as
 * ordinary CTest tests. */
#ifndef VKLLM_FUZZ_H
#define VKLLM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the code under test broke: printed, then abort() so that libFuzzer saves the input as a crash
 * (and the replay test fails).  Only in the fuzz programs, never in the library. */
#define FUZZ_CHECK(cond)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);                  \
            abort();                                                                                       \
        }                                                                                                  \
    } while (0)

#endif
