/* Device memory: a sub-allocator over large VkDeviceMemory blocks, each bound to one VkBuffer, so that a
 * vkllm buffer is (VkBuffer, offset, size).  Buffers may be larger than maxStorageBufferRange; a shader
 * binding may not, so ops bind sub-ranges (see vkr_range). */
#ifndef VKLLM_RUNTIME_MEMORY_H
#define VKLLM_RUNTIME_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#include <volk.h>

#include "error.h"

typedef struct vkr_device vkr_device;
typedef struct vkr_block vkr_block;

typedef enum vkr_memory_kind {
    VKR_MEMORY_DEVICE = 0, /* device-local: weights, activations, KV cache */
    VKR_MEMORY_HOST,       /* host-visible and coherent, preferably cached: staging, read-backs */
    VKR_MEMORY_KIND_COUNT
} vkr_memory_kind;

typedef struct vkr_buffer {
    VkBuffer handle;       /* the block's buffer */
    VkDeviceSize offset;   /* of this allocation inside handle */
    VkDeviceSize size;     /* bytes requested */
    uint8_t *mapped;       /* host pointer to offset 0 of this allocation, or NULL if not host-visible */
    vkr_block *block;
} vkr_buffer;

/* A part of a buffer bound to a shader or copied: offset is relative to the buffer. */
typedef struct vkr_range {
    const vkr_buffer *buffer;
    VkDeviceSize offset;
    VkDeviceSize size;
} vkr_range;

static inline vkr_range vkr_whole(const vkr_buffer *b) { return (vkr_range){b, 0, b->size}; }
static inline vkr_range vkr_sub(const vkr_buffer *b, VkDeviceSize offset, VkDeviceSize size)
{
    return (vkr_range){b, offset, size};
}

/* Alignment of every allocation's offset (multiple of minStorageBufferOffsetAlignment). */
#define VKR_ALLOC_ALIGNMENT 256u

vkllm_status vkr_buffer_alloc(vkr_device *dev, VkDeviceSize size, vkr_memory_kind kind, vkr_buffer *out);
void vkr_buffer_free(vkr_device *dev, vkr_buffer *buffer); /* zeroes *buffer; NULL-safe */

/* Synchronous copies between host memory and a buffer (through the staging buffer when the buffer is
 * not host-visible).  Not to be called while a sequence that writes the same bytes is in flight. */
vkllm_status vkr_upload(vkr_device *dev, const vkr_buffer *dst, VkDeviceSize offset, const void *src,
                        VkDeviceSize size);
vkllm_status vkr_download(vkr_device *dev, const vkr_buffer *src, VkDeviceSize offset, void *dst,
                          VkDeviceSize size);
/* Fills size bytes at offset with a repeated 32-bit word (offset and size multiples of 4). */
vkllm_status vkr_fill(vkr_device *dev, const vkr_buffer *dst, VkDeviceSize offset, VkDeviceSize size,
                      uint32_t word);

/* VkDeviceMemory held now and the peak of device-local bytes since creation. */
uint64_t vkr_memory_in_use(const vkr_device *dev, vkr_memory_kind kind);
uint64_t vkr_memory_peak_device(const vkr_device *dev);

/* The device's lifetime (device_create.c): memory types chosen, staging and one-shot transfer state; every block
 * freed. */
vkllm_status vkr_memory_init(vkr_device *dev);
void vkr_memory_destroy(vkr_device *dev);
/* The memory type buffers of `kind` are allocated from, -1 if none fits. */
int vkr_memory_type_for(const VkPhysicalDeviceMemoryProperties *mem, vkr_memory_kind kind, bool uma);

#endif
