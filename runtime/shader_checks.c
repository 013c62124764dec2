#include "shader_checks.h"

#include <string.h>

#include "device_internal.h"
#include "pipeline.h"

/* What a guard writes (ShaderChecks in shaders/common.glsl). */
typedef struct check_record {
    uint32_t fired;  /* 0 until a guard fires */
    uint32_t shader; /* SHADER_CHECK_ID of the first guard to fire: the pipeline's number, 1-based */
    uint32_t line;   /* its __LINE__ (in the shader source or the included .glsl it sits in) */
    uint32_t limit;  /* the bound it passed */
} check_record;

#if VKR_SHADER_CHECKS

vkllm_status vkr_shader_checks_init(vkr_device *dev)
{
    /* Host-visible, so the check after a wait is a read of mapped memory and no transfer. */
    VKLLM_TRY(vkr_buffer_alloc(dev, sizeof(check_record), VKR_MEMORY_HOST, &dev->checks_buffer));
    memset(dev->checks_buffer.mapped, 0, sizeof(check_record));
    VkDescriptorSetLayoutBinding binding = {.binding = 0, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                            .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo layout = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                              .bindingCount = 1, .pBindings = &binding};
    VKR_CHECK(vkCreateDescriptorSetLayout(dev->device, &layout, NULL, &dev->checks_layout));
    VkDescriptorPoolSize size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1};
    VkDescriptorPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 1,
                                       .poolSizeCount = 1, .pPoolSizes = &size};
    VKR_CHECK(vkCreateDescriptorPool(dev->device, &pool, NULL, &dev->checks_pool));
    VkDescriptorSetAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                         .descriptorPool = dev->checks_pool, .descriptorSetCount = 1,
                                         .pSetLayouts = &dev->checks_layout};
    VKR_CHECK(vkAllocateDescriptorSets(dev->device, &alloc, &dev->checks_set));
    VkDescriptorBufferInfo info = {dev->checks_buffer.handle, dev->checks_buffer.offset, sizeof(check_record)};
    VkWriteDescriptorSet write = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = dev->checks_set,
                                  .dstBinding = 0, .descriptorCount = 1,
                                  .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &info};
    vkUpdateDescriptorSets(dev->device, 1, &write, 0, NULL);
    return VKLLM_OK;
}

void vkr_shader_checks_destroy(vkr_device *dev)
{
    if (dev->checks_pool) vkDestroyDescriptorPool(dev->device, dev->checks_pool, NULL);
    if (dev->checks_layout) vkDestroyDescriptorSetLayout(dev->device, dev->checks_layout, NULL);
    vkr_buffer_free(dev, &dev->checks_buffer);
}

VkDescriptorSetLayout vkr_shader_checks_layout(const vkr_device *dev) { return dev->checks_layout; }

void vkr_shader_checks_bind(const vkr_device *dev, VkCommandBuffer cmd, VkPipelineLayout layout)
{
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 1, 1, &dev->checks_set, 0, NULL);
}

vkllm_status vkr_shader_checks_collect(vkr_device *dev, const char *what)
{
    check_record r;
    memcpy(&r, dev->checks_buffer.mapped, sizeof r);
    if (!r.fired) return VKLLM_OK;
    memset(dev->checks_buffer.mapped, 0, sizeof r); /* the next submission starts clean */
    pthread_mutex_lock(&dev->lock);
    const char *shader = r.shader >= 1 && r.shader <= dev->pipeline_count ? dev->pipelines[r.shader - 1]->shader_name
                                                                          : "(unknown pipeline)";
    pthread_mutex_unlock(&dev->lock);
    return vkllm_fail(VKLLM_ERROR_VALIDATION, "shader check: a loop of shader '%s' (line %u of its .comp or of an "
                      "included .glsl) ran past its bound of %u iterations in %s: the guard broke out of it, so the "
                      "results are wrong; unguarded, a GPU would run the loop on (perhaps for ever) and lavapipe would "
                      "cut it at 65,535 iterations without a word", shader, r.line, r.limit, what);
}

#else

vkllm_status vkr_shader_checks_init(vkr_device *dev) { return VKLLM_OK; }
void vkr_shader_checks_destroy(vkr_device *dev) {}
VkDescriptorSetLayout vkr_shader_checks_layout(const vkr_device *dev) { return VK_NULL_HANDLE; }
void vkr_shader_checks_bind(const vkr_device *dev, VkCommandBuffer cmd, VkPipelineLayout layout) {}
vkllm_status vkr_shader_checks_collect(vkr_device *dev, const char *what) { return VKLLM_OK; }

#endif
