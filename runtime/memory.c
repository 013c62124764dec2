/* Sub-allocator: VkDeviceMemory comes in blocks (default 256 MiB, capped by maxMemoryAllocationSize and a
 * quarter of the heap), each bound to one VkBuffer; allocations are first-fit ranges inside a block.
 * An allocation larger than the block size gets a block of its own; none may pass maxMemoryAllocationSize
 * (4 GiB on NVIDIA's H200), which callers meet by chunking (src/ops/matmul/weights.c). */
#include "device_internal.h"
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DEFAULT_BLOCK_BYTES (256ull << 20)
#define STAGING_BYTES (64ull << 20)

typedef struct free_range {
    VkDeviceSize offset, size;
} free_range;

struct vkr_block {
    vkr_block *next;
    VkDeviceMemory memory;
    VkBuffer buffer;
    VkDeviceSize size;
    uint8_t *mapped;       /* NULL unless host-visible */
    vkr_memory_kind kind;
    free_range *free;      /* sorted by offset, coalesced */
    uint32_t free_count, free_capacity;
    uint32_t live;         /* allocations in this block */
};

static VkDeviceSize align_up(VkDeviceSize v, VkDeviceSize a) { return (v + a - 1) / a * a; }
static VkDeviceSize block_size_for(const vkr_device *dev, vkr_memory_kind kind);

/* The first memory type with every `required` flag, best first: with the `preferred` flags and none of the
 * `avoided` ones, then without the avoided ones, then any; -1 if none has the required flags. */
static int find_memory_type(const VkPhysicalDeviceMemoryProperties *mem, VkMemoryPropertyFlags required,
                            VkMemoryPropertyFlags preferred, VkMemoryPropertyFlags avoided)
{
    int best = -1, best_rank = 3;
    for (uint32_t i = 0; i < mem->memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = mem->memoryTypes[i].propertyFlags;
        if ((f & required) != required) continue;
        int rank = (f & avoided) ? 2 : (f & preferred) == preferred ? 0 : 1;
        if (rank < best_rank) best = (int)i, best_rank = rank;
    }
    return best;
}

int vkr_memory_type_for(const VkPhysicalDeviceMemoryProperties *mem, vkr_memory_kind kind, bool uma)
{
    /* On a discrete GPU weights and activations belong in VRAM that the host cannot map (a host-visible
     * device-local type is the PCIe BAR window, meant for small host-written buffers), and staging and
     * read-backs in cached system memory.  Where memory is unified any device-local type will do. */
    if (kind == VKR_MEMORY_DEVICE) {
        int device = find_memory_type(mem, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0,
                                      uma ? 0 : VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
        return device >= 0 ? device : find_memory_type(mem, 0, 0, 0);
    }
    return find_memory_type(mem, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                            VK_MEMORY_PROPERTY_HOST_CACHED_BIT, uma ? 0 : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
}

static vkllm_status choose_memory_types(vkr_device *dev)
{
    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(dev->physical, &mem);
    int device = vkr_memory_type_for(&mem, VKR_MEMORY_DEVICE, dev->caps.uma);
    int host = vkr_memory_type_for(&mem, VKR_MEMORY_HOST, dev->caps.uma);
    if (device < 0 || host < 0)
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "device '%s' has no %s memory type", dev->caps.name,
                          device < 0 ? "device" : "host-visible coherent");
    dev->memory_type[VKR_MEMORY_DEVICE] = (uint32_t)device;
    dev->memory_type[VKR_MEMORY_HOST] = (uint32_t)host;
    vkllm_log(VKLLM_LOG_DEBUG, "memory: device buffers in type %d (flags 0x%x, heap %u), host buffers in type %d "
              "(flags 0x%x, heap %u)", device, mem.memoryTypes[device].propertyFlags, mem.memoryTypes[device].heapIndex,
              host, mem.memoryTypes[host].propertyFlags, mem.memoryTypes[host].heapIndex);
    return VKLLM_OK;
}

vkllm_status vkr_memory_init(vkr_device *dev)
{
    VKLLM_TRY(choose_memory_types(dev));
    VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                         .commandPool = dev->command_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                         .commandBufferCount = 1};
    VKR_CHECK(vkAllocateCommandBuffers(dev->device, &alloc, &dev->transfer_cmd));
    VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VKR_CHECK(vkCreateFence(dev->device, &fence, NULL, &dev->transfer_fence));
    VkDeviceSize staging = STAGING_BYTES, block = block_size_for(dev, VKR_MEMORY_HOST);
    if (staging > block) staging = block; /* within maxMemoryAllocationSize */
    return vkr_buffer_alloc(dev, staging, VKR_MEMORY_HOST, &dev->staging);
}

static void block_destroy(vkr_device *dev, vkr_block *b)
{
    if (b->buffer) vkDestroyBuffer(dev->device, b->buffer, NULL);
    if (b->memory) {
        if (b->mapped) vkUnmapMemory(dev->device, b->memory);
        vkFreeMemory(dev->device, b->memory, NULL);
        dev->bytes_allocated[b->kind] -= b->size;
    }
    free(b->free);
    free(b);
}

void vkr_memory_destroy(vkr_device *dev)
{
    vkr_buffer_free(dev, &dev->staging);
    if (dev->transfer_fence) vkDestroyFence(dev->device, dev->transfer_fence, NULL);
    if (dev->transfer_cmd) vkFreeCommandBuffers(dev->device, dev->command_pool, 1, &dev->transfer_cmd);
    for (int k = 0; k < VKR_MEMORY_KIND_COUNT; k++) {
        while (dev->blocks[k]) {
            vkr_block *next = dev->blocks[k]->next;
            block_destroy(dev, dev->blocks[k]);
            dev->blocks[k] = next;
        }
    }
}

static vkllm_status block_create(vkr_device *dev, vkr_memory_kind kind, VkDeviceSize size, vkr_block **out)
{
    uint64_t cap = dev->caps.max_device_bytes;
    if (kind == VKR_MEMORY_DEVICE && cap && dev->bytes_allocated[kind] + size > cap)
        return vkllm_fail(VKLLM_ERROR_OUT_OF_DEVICE_MEMORY, "a %.1f MiB device-local block on top of the %.1f MiB "
                          "held would pass VKLLM_MAX_DEVICE_MB=%llu", (double)size / 1048576.0,
                          (double)dev->bytes_allocated[kind] / 1048576.0, (unsigned long long)(cap >> 20));
    vkr_block *b = calloc(1, sizeof *b);
    if (!b) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "allocating a memory block record");
    b->kind = kind;
    b->size = size;
    VkBufferCreateInfo buffer_info = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vkCreateBuffer(dev->device, &buffer_info, NULL, &b->buffer);
    VkMemoryRequirements req = {0};
    if (r == VK_SUCCESS) {
        vkGetBufferMemoryRequirements(dev->device, b->buffer, &req);
        if (!(req.memoryTypeBits & (1u << dev->memory_type[kind]))) r = VK_ERROR_FEATURE_NOT_PRESENT;
        /* The driver may pad the buffer's memory; past the device's limit the allocation would fail or,
         * on some drivers, appear to succeed and misbehave. */
        if (dev->caps.max_memory_allocation && req.size > dev->caps.max_memory_allocation) {
            vkDestroyBuffer(dev->device, b->buffer, NULL);
            free(b);
            return vkllm_fail(VKLLM_ERROR_OUT_OF_DEVICE_MEMORY, "a %.1f MiB memory block needs %llu bytes of memory on "
                              "'%s', above its maxMemoryAllocationSize of %llu", (double)size / 1048576.0,
                              (unsigned long long)req.size, dev->caps.name,
                              (unsigned long long)dev->caps.max_memory_allocation);
        }
    }
    if (r == VK_SUCCESS) {
        VkMemoryAllocateInfo alloc = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
            .allocationSize = req.size,
            .memoryTypeIndex = dev->memory_type[kind],
        };
        r = vkr_fault_fires(&dev->faults, VKR_FAULT_ALLOC) ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                                                            : vkAllocateMemory(dev->device, &alloc, NULL, &b->memory);
    }
    if (r == VK_SUCCESS) r = vkBindBufferMemory(dev->device, b->buffer, b->memory, 0);
    if (r == VK_SUCCESS && kind == VKR_MEMORY_HOST) r = vkMapMemory(dev->device, b->memory, 0, VK_WHOLE_SIZE, 0, (void **)&b->mapped);
    if (r != VK_SUCCESS) {
        vkllm_status st = r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY
                              ? VKLLM_ERROR_OUT_OF_DEVICE_MEMORY
                              : VKLLM_ERROR_VULKAN;
        if (b->memory) {
            if (b->mapped) vkUnmapMemory(dev->device, b->memory);
            vkFreeMemory(dev->device, b->memory, NULL);
            b->memory = VK_NULL_HANDLE;
        }
        if (b->buffer) vkDestroyBuffer(dev->device, b->buffer, NULL);
        free(b);
        return vkllm_fail(st, "allocating a %.1f MiB %s memory block on '%s' failed with %s", (double)size / 1048576.0,
                          kind == VKR_MEMORY_DEVICE ? "device-local" : "host-visible", dev->caps.name,
                          vkr_result_name(r));
    }
    b->free = malloc(4 * sizeof *b->free);
    if (!b->free) {
        block_destroy(dev, b);
        return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "allocating a free list");
    }
    b->free_capacity = 4;
    b->free[0] = (free_range){0, size};
    b->free_count = 1;
    dev->bytes_allocated[kind] += size;
    if (kind == VKR_MEMORY_DEVICE && dev->bytes_allocated[kind] > dev->peak_device_bytes)
        dev->peak_device_bytes = dev->bytes_allocated[kind];
    *out = b;
    return VKLLM_OK;
}

/* First fit; returns false if no free range holds size bytes at the alignment. */
static bool block_take(vkr_block *b, VkDeviceSize size, VkDeviceSize *offset)
{
    for (uint32_t i = 0; i < b->free_count; i++) {
        free_range *f = &b->free[i];
        VkDeviceSize start = align_up(f->offset, VKR_ALLOC_ALIGNMENT);
        if (start + size > f->offset + f->size) continue;
        VkDeviceSize end = start + size, f_end = f->offset + f->size;
        /* The alignment gap before start stays free; so does the tail. */
        if (start > f->offset && end < f_end) {
            if (b->free_count == b->free_capacity) {
                free_range *grown = realloc(b->free, 2 * b->free_capacity * sizeof *grown);
                if (!grown) return false;
                b->free = grown;
                b->free_capacity *= 2;
                f = &b->free[i];
            }
            memmove(&b->free[i + 2], &b->free[i + 1], (b->free_count - i - 1) * sizeof *f);
            b->free_count++;
            b->free[i + 1] = (free_range){end, f_end - end};
            f->size = start - f->offset;
        } else if (start > f->offset) {
            f->size = start - f->offset;
        } else if (end < f_end) {
            f->offset = end;
            f->size = f_end - end;
        } else {
            memmove(&b->free[i], &b->free[i + 1], (b->free_count - i - 1) * sizeof *f);
            b->free_count--;
        }
        *offset = start;
        b->live++;
        return true;
    }
    return false;
}

/* Returns the range to the free list, merging with neighbours. */
static void block_give(vkr_block *b, VkDeviceSize offset, VkDeviceSize size)
{
    uint32_t i = 0;
    while (i < b->free_count && b->free[i].offset < offset) i++;
    bool merge_prev = i > 0 && b->free[i - 1].offset + b->free[i - 1].size == offset;
    bool merge_next = i < b->free_count && offset + size == b->free[i].offset;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], (b->free_count - i - 1) * sizeof *b->free);
        b->free_count--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].offset = offset;
        b->free[i].size += size;
    } else {
        if (b->free_count == b->free_capacity) {
            free_range *grown = realloc(b->free, 2 * b->free_capacity * sizeof *grown);
            if (!grown) return; /* leaks the range inside the block, never memory outside it */
            b->free = grown;
            b->free_capacity *= 2;
        }
        memmove(&b->free[i + 1], &b->free[i], (b->free_count - i) * sizeof *b->free);
        b->free[i] = (free_range){offset, size};
        b->free_count++;
    }
    b->live--;
}

static VkDeviceSize block_size_for(const vkr_device *dev, vkr_memory_kind kind)
{
    VkDeviceSize size = DEFAULT_BLOCK_BYTES;
    if (dev->caps.max_memory_allocation && size > dev->caps.max_memory_allocation)
        size = dev->caps.max_memory_allocation / VKR_ALLOC_ALIGNMENT * VKR_ALLOC_ALIGNMENT;
    VkDeviceSize smallest_heap = UINT64_MAX;
    for (uint32_t i = 0; i < dev->caps.heap_count; i++)
        if (dev->caps.heap_size[i] < smallest_heap) smallest_heap = dev->caps.heap_size[i];
    if (smallest_heap != UINT64_MAX && size > smallest_heap / 4) size = align_up(smallest_heap / 4, 1 << 20);
    return size;
}

vkllm_status vkr_buffer_alloc(vkr_device *dev, VkDeviceSize size, vkr_memory_kind kind, vkr_buffer *out)
{
    memset(out, 0, sizeof *out);
    if (size == 0 || (unsigned)kind >= VKR_MEMORY_KIND_COUNT)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkr_buffer_alloc: size %llu, kind %d",
                          (unsigned long long)size, (int)kind);
    VkDeviceSize rounded = align_up(size, VKR_ALLOC_ALIGNMENT);
    if (dev->caps.max_memory_allocation && rounded > dev->caps.max_memory_allocation)
        return vkllm_fail(VKLLM_ERROR_OUT_OF_DEVICE_MEMORY, "a buffer of %llu bytes (%.1f MiB) exceeds "
                          "maxMemoryAllocationSize (%llu bytes%s) of '%s': one allocation cannot hold it",
                          (unsigned long long)size, (double)size / 1048576.0,
                          (unsigned long long)dev->caps.max_memory_allocation,
                          dev->caps.max_memory_allocation_lowered ? ", lowered by VKLLM_MAX_ALLOCATION" : "",
                          dev->caps.name);
    pthread_mutex_lock(&dev->lock);
    vkllm_status st = VKLLM_OK;
    VkDeviceSize offset = 0;
    vkr_block *b = dev->blocks[kind];
    while (b && !block_take(b, rounded, &offset)) b = b->next;
    if (!b) {
        VkDeviceSize block_size = block_size_for(dev, kind);
        if (rounded > block_size) block_size = rounded;
        st = block_create(dev, kind, block_size, &b);
        if (st == VKLLM_OK) {
            b->next = dev->blocks[kind];
            dev->blocks[kind] = b;
            if (!block_take(b, rounded, &offset)) st = vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "free list");
        }
    }
    pthread_mutex_unlock(&dev->lock);
    if (st != VKLLM_OK) return st;
    out->handle = b->buffer;
    out->offset = offset;
    out->size = size;
    out->mapped = b->mapped ? b->mapped + offset : NULL;
    out->block = b;
    return VKLLM_OK;
}

void vkr_buffer_free(vkr_device *dev, vkr_buffer *buffer)
{
    if (!buffer || !buffer->block) return;
    vkr_block *b = buffer->block;
    pthread_mutex_lock(&dev->lock);
    block_give(b, buffer->offset, align_up(buffer->size, VKR_ALLOC_ALIGNMENT));
    if (b->live == 0 && b->size > block_size_for(dev, b->kind)) {
        /* A dedicated oversize block goes back to the driver at once. */
        vkr_block **link = &dev->blocks[b->kind];
        while (*link != b) link = &(*link)->next;
        *link = b->next;
        block_destroy(dev, b);
    }
    pthread_mutex_unlock(&dev->lock);
    memset(buffer, 0, sizeof *buffer);
}

uint64_t vkr_memory_in_use(const vkr_device *dev, vkr_memory_kind kind) { return dev->bytes_allocated[kind]; }
uint64_t vkr_memory_peak_device(const vkr_device *dev) { return dev->peak_device_bytes; }

/* One-shot transfers: the device's one command buffer and fence, reset and re-recorded for each; the caller
 * holds dev->lock.  `what` names the transfer in errors and the debug log. */
typedef void (*record_fn)(VkCommandBuffer cmd, const void *args);

static vkllm_status run_once(vkr_device *dev, record_fn record, const void *args, const char *what)
{
    if (dev->transfer_pending) {
        /* An earlier wait failed (timed out): the command buffer and fence may still be in use. */
        VKLLM_TRY(vkr_fence_wait(dev, dev->transfer_fence, dev->transfer_submitted_at, "an earlier one-shot transfer"));
        dev->transfer_pending = false;
    }
    VkCommandBuffer cmd = dev->transfer_cmd;
    VKR_CHECK(vkResetFences(dev->device, 1, &dev->transfer_fence));
    VKR_CHECK(vkResetCommandBuffer(cmd, 0));
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                      .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VKR_CHECK(vkBeginCommandBuffer(cmd, &begin));
    /* Order after earlier GPU work on the same bytes, and make the result visible to the host. */
    VkMemoryBarrier before = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, NULL, 0, NULL);
    record(cmd, args);
    VkMemoryBarrier after = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                             .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                             .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT};
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &after, 0,
                         NULL, 0, NULL);
    VKR_CHECK(vkEndCommandBuffer(cmd));
    double submitted_at = vkllm_log_clock();
    VKLLM_TRY(vkr_queue_submit(dev, cmd, dev->transfer_fence, what));
    dev->transfer_pending = true;
    dev->transfer_submitted_at = submitted_at;
    VKLLM_TRY(vkr_fence_wait(dev, dev->transfer_fence, submitted_at, what));
    dev->transfer_pending = false;
    return VKLLM_OK;
}

typedef struct copy_args {
    VkBuffer src, dst;
    VkBufferCopy region;
} copy_args;

static void record_copy(VkCommandBuffer cmd, const void *p)
{
    const copy_args *a = p;
    vkCmdCopyBuffer(cmd, a->src, a->dst, 1, &a->region);
}

typedef struct fill_args {
    VkBuffer dst;
    VkDeviceSize offset, size;
    uint32_t word;
} fill_args;

static void record_fill(VkCommandBuffer cmd, const void *p)
{
    const fill_args *a = p;
    vkCmdFillBuffer(cmd, a->dst, a->offset, a->size, a->word);
}

static vkllm_status check_range(const vkr_buffer *b, VkDeviceSize offset, VkDeviceSize size, const char *what)
{
    if (!b || !b->block || offset > b->size || size > b->size - offset)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: range [%llu, +%llu) outside a buffer of %llu bytes",
                          what, (unsigned long long)offset, (unsigned long long)size,
                          (unsigned long long)(b ? b->size : 0));
    return VKLLM_OK;
}

vkllm_status vkr_upload(vkr_device *dev, const vkr_buffer *dst, VkDeviceSize offset, const void *src,
                        VkDeviceSize size)
{
    VKLLM_TRY(check_range(dst, offset, size, "vkr_upload"));
    if (dst->mapped) {
        memcpy(dst->mapped + offset, src, size);
        return VKLLM_OK;
    }
    pthread_mutex_lock(&dev->lock);
    vkllm_status st = VKLLM_OK;
    for (VkDeviceSize done = 0; done < size && st == VKLLM_OK;) {
        VkDeviceSize n = size - done < dev->staging.size ? size - done : dev->staging.size;
        memcpy(dev->staging.mapped, (const uint8_t *)src + done, n);
        copy_args a = {dev->staging.handle, dst->handle, {dev->staging.offset, dst->offset + offset + done, n}};
        char what[64];
        snprintf(what, sizeof what, "one-shot transfer (upload of %.2f MiB)", (double)n / 1048576.0);
        st = run_once(dev, record_copy, &a, what);
        done += n;
    }
    pthread_mutex_unlock(&dev->lock);
    return st;
}

vkllm_status vkr_download(vkr_device *dev, const vkr_buffer *src, VkDeviceSize offset, void *dst,
                          VkDeviceSize size)
{
    VKLLM_TRY(check_range(src, offset, size, "vkr_download"));
    if (src->mapped) {
        memcpy(dst, src->mapped + offset, size);
        return VKLLM_OK;
    }
    pthread_mutex_lock(&dev->lock);
    vkllm_status st = VKLLM_OK;
    for (VkDeviceSize done = 0; done < size && st == VKLLM_OK;) {
        VkDeviceSize n = size - done < dev->staging.size ? size - done : dev->staging.size;
        copy_args a = {src->handle, dev->staging.handle, {src->offset + offset + done, dev->staging.offset, n}};
        char what[64];
        snprintf(what, sizeof what, "one-shot transfer (download of %.2f MiB)", (double)n / 1048576.0);
        st = run_once(dev, record_copy, &a, what);
        if (st == VKLLM_OK) memcpy((uint8_t *)dst + done, dev->staging.mapped, n);
        done += n;
    }
    pthread_mutex_unlock(&dev->lock);
    return st;
}

vkllm_status vkr_fill(vkr_device *dev, const vkr_buffer *dst, VkDeviceSize offset, VkDeviceSize size,
                      uint32_t word)
{
    VKLLM_TRY(check_range(dst, offset, size, "vkr_fill"));
    if (offset % 4 || size % 4)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkr_fill: offset %llu and size %llu must be multiples of 4",
                          (unsigned long long)offset, (unsigned long long)size);
    if (size == 0) return VKLLM_OK;
    pthread_mutex_lock(&dev->lock);
    fill_args a = {dst->handle, dst->offset + offset, size, word};
    vkllm_status st = run_once(dev, record_fill, &a, "one-shot transfer (fill)");
    pthread_mutex_unlock(&dev->lock);
    return st;
}
