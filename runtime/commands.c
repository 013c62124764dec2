#include "commands.h"

#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "queue.h"
#include "log.h"
#include "shader_checks.h"

#define SETS_PER_POOL 256
#define QUERIES_PER_POOL 512

typedef struct access {
    VkBuffer buffer;
    VkDeviceSize begin, end;
    bool write;
} access;

typedef struct profile_label {
    char text[48];
} profile_label;

struct vkr_sequence {
    vkr_device *dev;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    bool recording, recorded, in_flight;
    double submitted_at;  /* vkllm_log_clock() at the last submit */
    char label[64];       /* what the owner calls it (vkr_sequence_set_label), for errors and the log */
    char first_dispatch[48]; /* the label of the first dispatch recorded, to tell unnamed sequences apart */
    char last_dispatch[48];  /* and of the last: where a hang or fault most likely is */

    VkDescriptorPool *descriptor_pools;
    uint32_t descriptor_pool_count, descriptor_pool_used;

    VkBufferView *views; /* of the texel-buffer bindings recorded; live until the next begin */
    uint32_t view_count, view_capacity;

    access *accesses; /* since the last barrier */
    uint32_t access_count, access_capacity;

    uint32_t dispatches, barriers;

    bool timed;               /* vkr_sequence_set_timed: timestamps 0 and 1 of timer_pool bracket the sequence */
    VkQueryPool timer_pool;

    /* Profiling: timestamp i+1 ends command i; labels[i] names it. */
    VkQueryPool *query_pools;
    uint32_t query_pool_count;
    uint32_t queries;
    profile_label *labels;
    uint32_t label_capacity;
};

vkllm_status vkr_sequence_create(vkr_device *dev, vkr_sequence **out)
{
    *out = NULL;
    vkr_sequence *seq = calloc(1, sizeof *seq);
    if (!seq) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "allocating a sequence");
    seq->dev = dev;
    VkCommandPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                    .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                    .queueFamilyIndex = dev->caps.queue_family};
    VkResult r = vkCreateCommandPool(dev->device, &pool, NULL, &seq->pool);
    if (r == VK_SUCCESS) {
        VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                             .commandPool = seq->pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                             .commandBufferCount = 1};
        r = vkAllocateCommandBuffers(dev->device, &alloc, &seq->cmd);
    }
    if (r == VK_SUCCESS) {
        VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        r = vkCreateFence(dev->device, &fence, NULL, &seq->fence);
    }
    if (r != VK_SUCCESS) {
        vkr_sequence_destroy(seq);
        return vkr_fail_vk(r, "creating a command sequence", __FILE__, __LINE__);
    }
    *out = seq;
    return VKLLM_OK;
}

static void destroy_views(vkr_sequence *seq)
{
    for (uint32_t i = 0; i < seq->view_count; i++) vkDestroyBufferView(seq->dev->device, seq->views[i], NULL);
    seq->view_count = 0;
}

void vkr_sequence_destroy(vkr_sequence *seq)
{
    if (!seq) return;
    VkDevice d = seq->dev->device;
    if (seq->in_flight) {
        /* Destroying reports nothing: the caller's error message stays whatever the wait says. */
        char earlier_error[1024];
        snprintf(earlier_error, sizeof earlier_error, "%s", vkllm_last_error());
        if (vkr_sequence_wait(seq) != VKLLM_OK)
            vkllm_log(VKLLM_LOG_INFO, "destroying a sequence: %s", vkllm_last_error());
        vkllm_fail(VKLLM_OK, "%s", earlier_error);
    }
    if (seq->in_flight) {
        /* Still running (or the device is lost): its Vulkan objects may be in use, so they are left to the
         * device's destruction rather than freed under the GPU's feet. */
        free(seq->descriptor_pools), free(seq->views), free(seq->query_pools), free(seq->accesses), free(seq->labels);
        free(seq);
        return;
    }
    for (uint32_t i = 0; i < seq->descriptor_pool_count; i++) vkDestroyDescriptorPool(d, seq->descriptor_pools[i], NULL);
    destroy_views(seq);
    for (uint32_t i = 0; i < seq->query_pool_count; i++) vkDestroyQueryPool(d, seq->query_pools[i], NULL);
    if (seq->timer_pool) vkDestroyQueryPool(d, seq->timer_pool, NULL);
    if (seq->fence) vkDestroyFence(d, seq->fence, NULL);
    if (seq->pool) vkDestroyCommandPool(d, seq->pool, NULL);
    free(seq->descriptor_pools);
    free(seq->views);
    free(seq->query_pools);
    free(seq->accesses);
    free(seq->labels);
    free(seq);
}

static vkllm_status add_descriptor_pool(vkr_sequence *seq)
{
    VkDescriptorPool *grown = realloc(seq->descriptor_pools, (seq->descriptor_pool_count + 1) * sizeof *grown);
    if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "descriptor pool list");
    seq->descriptor_pools = grown;
    VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VKR_MAX_BINDINGS},
                                     {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, SETS_PER_POOL * VKR_MAX_BINDINGS}};
    VkDescriptorPoolCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                       .maxSets = SETS_PER_POOL, .poolSizeCount = 2, .pPoolSizes = sizes};
    VKR_CHECK(vkCreateDescriptorPool(seq->dev->device, &info, NULL, &seq->descriptor_pools[seq->descriptor_pool_count]));
    seq->descriptor_pool_count++;
    return VKLLM_OK;
}

static vkllm_status allocate_set(vkr_sequence *seq, VkDescriptorSetLayout layout, VkDescriptorSet *set)
{
    for (;;) {
        if (seq->descriptor_pool_used == seq->descriptor_pool_count) VKLLM_TRY(add_descriptor_pool(seq));
        VkDescriptorSetAllocateInfo info = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                            .descriptorPool = seq->descriptor_pools[seq->descriptor_pool_used],
                                            .descriptorSetCount = 1, .pSetLayouts = &layout};
        VkResult r = vkAllocateDescriptorSets(seq->dev->device, &info, set);
        if (r == VK_SUCCESS) return VKLLM_OK;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
            return vkr_fail_vk(r, "vkAllocateDescriptorSets", __FILE__, __LINE__);
        seq->descriptor_pool_used++;
    }
}

/* Profiling: the query slot for timestamp i, creating (and resetting, in the command buffer) pools. */
static vkllm_status query_slot(vkr_sequence *seq, uint32_t i, VkQueryPool *pool, uint32_t *slot)
{
    uint32_t p = i / QUERIES_PER_POOL;
    if (p == seq->query_pool_count) {
        VkQueryPool *grown = realloc(seq->query_pools, (p + 1) * sizeof *grown);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "query pool list");
        seq->query_pools = grown;
        VkQueryPoolCreateInfo info = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                      .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = QUERIES_PER_POOL};
        VKR_CHECK(vkCreateQueryPool(seq->dev->device, &info, NULL, &seq->query_pools[p]));
        seq->query_pool_count++;
    }
    if (i % QUERIES_PER_POOL == 0) vkCmdResetQueryPool(seq->cmd, seq->query_pools[p], 0, QUERIES_PER_POOL);
    *pool = seq->query_pools[p];
    *slot = i % QUERIES_PER_POOL;
    return VKLLM_OK;
}

static vkllm_status write_timestamp(vkr_sequence *seq, const char *text)
{
    VkQueryPool pool = VK_NULL_HANDLE;
    uint32_t slot = 0;
    VKLLM_TRY(query_slot(seq, seq->queries, &pool, &slot));
    vkCmdWriteTimestamp(seq->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool, slot);
    if (seq->queries > 0) {
        uint32_t l = seq->queries - 1;
        if (l >= seq->label_capacity) {
            uint32_t cap = seq->label_capacity ? 2 * seq->label_capacity : 256;
            profile_label *grown = realloc(seq->labels, cap * sizeof *grown);
            if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "profile labels");
            seq->labels = grown;
            seq->label_capacity = cap;
        }
        snprintf(seq->labels[l].text, sizeof seq->labels[l].text, "%s", text);
    }
    seq->queries++;
    return VKLLM_OK;
}

static void barrier(vkr_sequence *seq);

vkllm_status vkr_sequence_begin(vkr_sequence *seq)
{
    if (seq->in_flight) VKLLM_TRY(vkr_sequence_wait(seq));
    VKR_CHECK(vkResetCommandBuffer(seq->cmd, 0));
    for (uint32_t i = 0; i < seq->descriptor_pool_count; i++)
        VKR_CHECK(vkResetDescriptorPool(seq->dev->device, seq->descriptor_pools[i], 0));
    seq->descriptor_pool_used = 0;
    destroy_views(seq); /* the command buffer that used them was reset above */
    seq->access_count = 0;
    seq->dispatches = 0;
    seq->barriers = 0;
    seq->queries = 0;
    seq->recorded = false;
    seq->first_dispatch[0] = '\0';
    seq->last_dispatch[0] = '\0';
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    VKR_CHECK(vkBeginCommandBuffer(seq->cmd, &begin));
    seq->recording = true;
    if (seq->dev->profiling) VKLLM_TRY(write_timestamp(seq, ""));
    if (seq->timed && seq->dev->caps.timestamps) {
        if (!seq->timer_pool) {
            VkQueryPoolCreateInfo info = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                          .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2};
            VKR_CHECK(vkCreateQueryPool(seq->dev->device, &info, NULL, &seq->timer_pool));
        }
        vkCmdResetQueryPool(seq->cmd, seq->timer_pool, 0, 2);
        /* Once the earlier work's compute is done (the sequence's own starts then): the time of the sequence, not
         * of the wait for what was submitted before it. */
        vkCmdWriteTimestamp(seq->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, seq->timer_pool, 0);
    }
    return VKLLM_OK;
}

void vkr_sequence_set_timed(vkr_sequence *seq, bool timed) { seq->timed = timed; }

bool vkr_sequence_gpu_us(vkr_sequence *seq, double *us)
{
    uint64_t t[2] = {0, 0};
    if (!seq->timed || !seq->timer_pool || seq->in_flight || !seq->recorded) return false;
    if (vkGetQueryPoolResults(seq->dev->device, seq->timer_pool, 0, 2, sizeof t, t, sizeof t[0],
                              VK_QUERY_RESULT_64_BIT) != VK_SUCCESS)
        return false;
    *us = (double)(t[1] - t[0]) * seq->dev->caps.timestamp_period_ns * 1e-3;
    return t[1] >= t[0];
}

vkllm_status vkr_sequence_barrier(vkr_sequence *seq)
{
    if (!seq->recording) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkr_sequence_barrier: not recording");
    barrier(seq);
    return VKLLM_OK;
}

static void barrier(vkr_sequence *seq)
{
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                         .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                          VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(seq->cmd, stages, stages, 0, 1, &b, 0, NULL, 0, NULL);
    seq->access_count = 0;
    seq->barriers++;
}

static bool conflicts(const vkr_sequence *seq, const access *a)
{
    for (uint32_t i = 0; i < seq->access_count; i++) {
        const access *e = &seq->accesses[i];
        if (e->buffer == a->buffer && (e->write || a->write) && a->begin < e->end && e->begin < a->end) return true;
    }
    return false;
}

static vkllm_status track(vkr_sequence *seq, const access *list, uint32_t n)
{
    bool need = false;
    for (uint32_t i = 0; i < n && !need; i++) need = conflicts(seq, &list[i]);
    if (need) barrier(seq);
    if (seq->access_count + n > seq->access_capacity) {
        uint32_t cap = seq->access_capacity ? 2 * seq->access_capacity : 64;
        while (cap < seq->access_count + n) cap *= 2;
        access *grown = realloc(seq->accesses, cap * sizeof *grown);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "barrier tracking");
        seq->accesses = grown;
        seq->access_capacity = cap;
    }
    memcpy(seq->accesses + seq->access_count, list, n * sizeof *list);
    seq->access_count += n;
    return VKLLM_OK;
}

/* Bytes per texel of the formats texel bindings use; 0 for others. */
static uint32_t texel_bytes(VkFormat format)
{
    switch (format) {
    case VK_FORMAT_R32G32B32A32_UINT:
    case VK_FORMAT_R32G32B32A32_SFLOAT: return 16;
    case VK_FORMAT_R32G32_UINT: return 8;
    case VK_FORMAT_R32_UINT:
    case VK_FORMAT_R32_SFLOAT: return 4;
    default: return 0;
    }
}

static bool whole_texels(const vkr_device *dev, const vkr_range *r, VkFormat format)
{
    uint32_t bytes = texel_bytes(format);
    return bytes && r->size % bytes == 0 && r->size / bytes <= dev->caps.max_texel_buffer_elements;
}

static bool texel_offset_aligned(const vkr_device *dev, const vkr_range *r)
{
    return (r->buffer->offset + r->offset) % dev->caps.min_texel_offset_alignment == 0;
}

bool vkr_texel_range_fits(const vkr_device *dev, const vkr_range *r, VkFormat format)
{
    return whole_texels(dev, r, format) && texel_offset_aligned(dev, r);
}

static vkllm_status check_texel_range(const vkr_device *dev, const vkr_range *r, VkFormat format, const char *label,
                                      uint32_t i)
{
    if (!whole_texels(dev, r, format))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: texel binding %u spans %llu bytes: not whole texels of "
                          "format %d or above maxTexelBufferElements %u", label, i, (unsigned long long)r->size,
                          (int)format, dev->caps.max_texel_buffer_elements);
    if (!texel_offset_aligned(dev, r))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: texel binding %u offset %llu is not a multiple of %llu",
                          label, i, (unsigned long long)r->offset, (unsigned long long)dev->caps.min_texel_offset_alignment);
    return VKLLM_OK;
}

static vkllm_status add_view(vkr_sequence *seq, const vkr_range *r, VkFormat format, VkBufferView *view)
{
    if (seq->view_count == seq->view_capacity) {
        uint32_t cap = seq->view_capacity ? 2 * seq->view_capacity : 64;
        VkBufferView *grown = realloc(seq->views, cap * sizeof *grown);
        if (!grown) return vkllm_fail(VKLLM_ERROR_OUT_OF_HOST_MEMORY, "buffer view list");
        seq->views = grown;
        seq->view_capacity = cap;
    }
    VkBufferViewCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO, .buffer = r->buffer->handle,
                                   .format = format, .offset = r->buffer->offset + r->offset, .range = r->size};
    VKR_CHECK(vkCreateBufferView(seq->dev->device, &info, NULL, view));
    seq->views[seq->view_count++] = *view;
    return VKLLM_OK;
}

static vkllm_status check_range(const vkr_device *dev, const vkr_range *r, const char *label, uint32_t i,
                                bool binding)
{
    if (!r->buffer || !r->buffer->block || r->size == 0 || r->offset > r->buffer->size ||
        r->size > r->buffer->size - r->offset)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: range %u [%llu, +%llu) is empty or outside its buffer (%llu bytes)",
                          label, i, (unsigned long long)r->offset, (unsigned long long)r->size,
                          (unsigned long long)(r->buffer ? r->buffer->size : 0));
    if (binding && r->size > dev->caps.max_storage_buffer_range)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: binding %u spans %llu bytes, above maxStorageBufferRange %llu",
                          label, i, (unsigned long long)r->size, (unsigned long long)dev->caps.max_storage_buffer_range);
    if (binding && (r->buffer->offset + r->offset) % dev->caps.min_storage_offset_alignment)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: binding %u offset %llu is not a multiple of %llu",
                          label, i, (unsigned long long)r->offset, (unsigned long long)dev->caps.min_storage_offset_alignment);
    return VKLLM_OK;
}

vkllm_status vkr_sequence_dispatch(vkr_sequence *seq, const vkr_pipeline *pipeline, const vkr_range *bindings,
                                   const void *push, const uint32_t groups[3], const char *label)
{
    const vkr_device *dev = seq->dev;
    if (!seq->recording) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: sequence is not recording", label);
    const vkr_pipeline_desc *d = &pipeline->desc;
    for (int k = 0; k < 3; k++)
        if (groups[k] == 0 || groups[k] > dev->caps.max_workgroup_count[k])
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: %u workgroups in dimension %d (limit %u)", label,
                              groups[k], k, dev->caps.max_workgroup_count[k]);
    access list[VKR_MAX_BINDINGS];
    VkDescriptorBufferInfo infos[VKR_MAX_BINDINGS];
    VkBufferView views[VKR_MAX_BINDINGS];
    VkWriteDescriptorSet writes[VKR_MAX_BINDINGS];
    VkDescriptorSet set;
    VKLLM_TRY(allocate_set(seq, pipeline->set_layout, &set));
    for (uint32_t i = 0; i < d->n_bindings; i++) {
        const vkr_range *r = &bindings[i];
        bool texel = d->texel_format[i] != VK_FORMAT_UNDEFINED;
        VKLLM_TRY(check_range(dev, r, label, i, !texel));
        VkDeviceSize begin = r->buffer->offset + r->offset;
        list[i] = (access){r->buffer->handle, begin, begin + r->size, !texel && !(d->readonly_mask & (1u << i))};
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                                           .dstBinding = i, .descriptorCount = 1,
                                           .descriptorType = vkr_descriptor_type(d, i)};
        if (texel) {
            VKLLM_TRY(check_texel_range(dev, r, d->texel_format[i], label, i));
            VKLLM_TRY(add_view(seq, r, d->texel_format[i], &views[i]));
            writes[i].pTexelBufferView = &views[i];
        } else {
            infos[i] = (VkDescriptorBufferInfo){r->buffer->handle, begin, r->size};
            writes[i].pBufferInfo = &infos[i];
        }
    }
    vkUpdateDescriptorSets(dev->device, d->n_bindings, writes, 0, NULL);
    VKLLM_TRY(track(seq, list, d->n_bindings));
    vkCmdBindPipeline(seq->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->pipeline);
    vkCmdBindDescriptorSets(seq->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->layout, 0, 1, &set, 0, NULL);
    if (vkr_shader_checks_enabled()) vkr_shader_checks_bind(seq->dev, seq->cmd, pipeline->layout);
    if (d->push_size) vkCmdPushConstants(seq->cmd, pipeline->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, d->push_size, push);
    vkCmdDispatch(seq->cmd, groups[0], groups[1], groups[2]);
    if (seq->dispatches++ == 0) snprintf(seq->first_dispatch, sizeof seq->first_dispatch, "%s", label);
    snprintf(seq->last_dispatch, sizeof seq->last_dispatch, "%s", label);
    if (seq->dev->profiling) VKLLM_TRY(write_timestamp(seq, label));
    return VKLLM_OK;
}

vkllm_status vkr_sequence_copy(vkr_sequence *seq, vkr_range src, vkr_range dst)
{
    if (!seq->recording) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "copy: sequence is not recording");
    VKLLM_TRY(check_range(seq->dev, &src, "copy", 0, false));
    VKLLM_TRY(check_range(seq->dev, &dst, "copy", 1, false));
    if (src.size != dst.size)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "copy: source has %llu bytes, destination %llu",
                          (unsigned long long)src.size, (unsigned long long)dst.size);
    VkDeviceSize s = src.buffer->offset + src.offset, t = dst.buffer->offset + dst.offset;
    access list[2] = {{src.buffer->handle, s, s + src.size, false}, {dst.buffer->handle, t, t + dst.size, true}};
    VKLLM_TRY(track(seq, list, 2));
    VkBufferCopy region = {s, t, src.size};
    vkCmdCopyBuffer(seq->cmd, src.buffer->handle, dst.buffer->handle, 1, &region);
    if (seq->dev->profiling) VKLLM_TRY(write_timestamp(seq, "copy"));
    return VKLLM_OK;
}

vkllm_status vkr_sequence_end(vkr_sequence *seq)
{
    if (!seq->recording) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkr_sequence_end: not recording");
    /* Results become visible to host reads of mapped memory once the fence signals. */
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                         .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(seq->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &b, 0, NULL, 0, NULL);
    if (seq->timed && seq->timer_pool)
        vkCmdWriteTimestamp(seq->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, seq->timer_pool, 1);
    seq->recording = false;
    VKR_CHECK(vkEndCommandBuffer(seq->cmd));
    seq->recorded = true;
    return VKLLM_OK;
}

void vkr_sequence_set_label(vkr_sequence *seq, const char *label)
{
    snprintf(seq->label, sizeof seq->label, "%s", label ? label : "");
}

/* "sequence 'decode 1 token' (37 dispatches from 'get_rows' to 'argmax')" for errors and the log: a timeout or a
 * lost device names the recording and its last dispatch, where the GPU most likely stopped. */
static const char *describe(const vkr_sequence *seq, char *out, size_t size)
{
    snprintf(out, size, "sequence '%s' (%u dispatch%s from '%s' to '%s')", seq->label[0] ? seq->label : "unnamed",
             seq->dispatches, seq->dispatches == 1 ? "" : "es", seq->dispatches ? seq->first_dispatch : "none",
             seq->dispatches ? seq->last_dispatch : "none");
    return out;
}

vkllm_status vkr_sequence_submit(vkr_sequence *seq) { return vkr_sequence_submit_signal(seq, VK_NULL_HANDLE, 0); }

vkllm_status vkr_sequence_submit_signal(vkr_sequence *seq, VkSemaphore timeline, uint64_t value)
{
    if (!seq->recorded) return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "vkr_sequence_submit: nothing recorded");
    if (seq->in_flight) VKLLM_TRY(vkr_sequence_wait(seq));
    VKR_CHECK(vkResetFences(seq->dev->device, 1, &seq->fence));
    char what[256];
    describe(seq, what, sizeof what);
    pthread_mutex_lock(&seq->dev->lock);
    seq->submitted_at = vkllm_log_clock();
    vkllm_status st = vkr_queue_submit_signal(seq->dev, seq->cmd, seq->fence, timeline, value, what);
    pthread_mutex_unlock(&seq->dev->lock);
    if (st != VKLLM_OK) return st;
    seq->in_flight = true;
    return VKLLM_OK;
}

static void collect_profile(vkr_sequence *seq)
{
    uint64_t previous = 0;
    double ns = seq->dev->caps.timestamp_period_ns;
    for (uint32_t i = 0; i < seq->queries; i++) {
        uint64_t t = 0;
        VkResult r = vkGetQueryPoolResults(seq->dev->device, seq->query_pools[i / QUERIES_PER_POOL],
                                           i % QUERIES_PER_POOL, 1, sizeof t, &t, sizeof t, VK_QUERY_RESULT_64_BIT);
        if (r != VK_SUCCESS) return;
        if (i > 0) vkr_profile_add(seq->dev, seq->labels[i - 1].text, (double)(t - previous) * ns * 1e-6);
        previous = t;
    }
}

vkllm_status vkr_sequence_wait(vkr_sequence *seq)
{
    if (!seq->in_flight) return VKLLM_OK;
    char what[256];
    VKLLM_TRY(vkr_fence_wait(seq->dev, seq->fence, seq->submitted_at, describe(seq, what, sizeof what)));
    seq->in_flight = false;
    if (seq->dev->profiling) {
        collect_profile(seq);
        vkr_profile_count(seq->dev, seq->dispatches, seq->barriers);
    }
    /* A guard's record may come from another sequence that finished meanwhile; most callers run one at a time. */
    VKLLM_TRY(vkr_shader_checks_collect(seq->dev, what));
    return VKLLM_OK;
}

vkllm_status vkr_sequence_poll(vkr_sequence *seq, bool *done)
{
    *done = true;
    if (!seq->in_flight) return VKLLM_OK;
    VkResult r = vkGetFenceStatus(seq->dev->device, seq->fence);
    if (r == VK_NOT_READY) {
        *done = false;
        return VKLLM_OK;
    }
    if (r != VK_SUCCESS) {
        char what[256];
        return vkllm_fail(VKLLM_ERROR_VULKAN, "polling %s: vkGetFenceStatus returned %s (the device may be lost)",
                          describe(seq, what, sizeof what), vkr_result_name(r));
    }
    return vkr_sequence_wait(seq); /* signalled: returns at once, after the bookkeeping */
}

vkllm_status vkr_sequence_run(vkr_sequence *seq)
{
    VKLLM_TRY(vkr_sequence_submit(seq));
    return vkr_sequence_wait(seq);
}

uint32_t vkr_sequence_dispatch_count(const vkr_sequence *seq) { return seq->dispatches; }
uint32_t vkr_sequence_barrier_count(const vkr_sequence *seq) { return seq->barriers; }

void vkr_groups_1d(const vkr_device *dev, uint32_t n, uint32_t groups[3])
{
    uint32_t max_x = dev->caps.max_workgroup_count[0];
    groups[0] = n < max_x ? (n ? n : 1) : max_x;
    groups[1] = vkr_div_up(n ? n : 1, groups[0]);
    groups[2] = 1;
}

vkllm_status vkr_timeline_create(vkr_device *dev, VkSemaphore *out)
{
    VkSemaphoreTypeCreateInfo type = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO,
                                      .semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE, .initialValue = 0};
    VkSemaphoreCreateInfo info = {.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO, .pNext = &type};
    VKR_CHECK(vkCreateSemaphore(dev->device, &info, NULL, out));
    return VKLLM_OK;
}

void vkr_timeline_destroy(vkr_device *dev, VkSemaphore timeline)
{
    if (!timeline) return;
    /* Mesa 22.3's emulated timelines (lavapipe) release a submission's timeline points in the queue thread after its
     * fence signals: destroyed before that, the semaphore's memory is used after it is freed (an intermittent
     * "free(): invalid pointer" in tests that free contexts).  The empty submission behind them settles it; a
     * failure there (a lost device) still destroys the semaphore. */
    (void)vkr_queue_drain(dev, "the queue's work before destroying a timeline semaphore");
    /* Reading the value first lets lavapipe collect the points signalled since the last read: destroyed with them
     * pending, it leaks them (LeakSanitizer). */
    uint64_t value = 0;
    (void)vkGetSemaphoreCounterValue(dev->device, timeline, &value);
    vkDestroySemaphore(dev->device, timeline, NULL);
}
