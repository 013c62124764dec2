/* SPIR-V embedded in the library at build time (see cmake/shaders.cmake and shaders/variants.cmake). */
#ifndef VKLLM_RUNTIME_SHADERS_H
#define VKLLM_RUNTIME_SHADERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct vkr_shader_blob {
    const char *name;     /* variant name from shaders/variants.cmake */
    const uint32_t *code; /* SPIR-V words */
    size_t size;          /* bytes */
} vkr_shader_blob;

/* NULL if no variant has that name. */
const vkr_shader_blob *vkr_shader_find(const char *name);
size_t vkr_shader_count(void);
const vkr_shader_blob *vkr_shader_at(size_t index);

#endif
