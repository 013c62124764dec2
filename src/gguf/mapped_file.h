/* A whole file mapped read-only into memory (the GGUF reader and the llama2.c importer share it). */
#ifndef VKLLM_MAPPED_FILE_H
#define VKLLM_MAPPED_FILE_H

#include <stdint.h>

#include "runtime/error.h"

typedef struct mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    uint64_t size;       /* bytes */
} mapped_file;

/* VKLLM_ERROR_IO (message names the path and the errno text) if it cannot be opened or mapped. */
vkllm_status mapped_file_open(const char *path, mapped_file *out);
void mapped_file_close(mapped_file *file);

#endif
