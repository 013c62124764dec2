/* A game engine's frame loop with an LLM beside it: a headless renderer (a graphics pipeline drawing a few thousand
 * triangles into an offscreen image each frame) owns the Vulkan instance, device and queue, hands them to vkllm
 * (vkllm_host_device), and while it renders, generates text through vkllm_generate_step, one step per frame.
 *
 *   sample-render-loop MODEL.gguf [--budget-us N] [--frames N] [--triangles N] [--size PIXELS]
 *
 * Three runs of --frames frames each: rendering alone, with generation on a context without a budget (each
 * forward pass one submission), and with generation on a context with max_submit_us N (passes split into
 * submissions of whole layers of about N us of GPU time).  It prints the frame times' percentiles and the
 * generation's speed:
 *   frames alone: p50 A ms, p95 B ms, p99 C ms
 *   frames with generation, no budget: p50 A ms, p95 B ms, p99 C ms, T tokens/s
 *   frames with generation, budget N us: p50 A ms, p95 B ms, p99 C ms, T tokens/s
 * A frame's time runs from the start of its recording to its fence, the step of generation included.  With
 * VKLLM_VALIDATION=1 the instance has the Khronos validation layer and its errors are printed (and counted).
 *
 * Vulkan is loaded at run time (dlopen) into a table of this file's own: the names of a static libvkllm's volk
 * are never met.  See docs/embedding.md. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vulkan/vulkan.h>

#include "vkllm.h"

static const uint32_t vert_spv[] =
#include "render_loop_vert.spv.inc"
    ;
static const uint32_t frag_spv[] =
#include "render_loop_frag.spv.inc"
    ;

/* ---- Vulkan, loaded by hand ---- */

#define VK_FUNCTIONS(X)                                                                                               \
    X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties)                              \
    X(vkGetPhysicalDeviceQueueFamilyProperties) X(vkGetPhysicalDeviceFeatures2) X(vkGetPhysicalDeviceMemoryProperties) \
    X(vkCreateDevice) X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkCreateDebugUtilsMessengerEXT)                       \
    X(vkDestroyDebugUtilsMessengerEXT) X(vkCreateImage) X(vkDestroyImage) X(vkGetImageMemoryRequirements)           \
    X(vkAllocateMemory) X(vkFreeMemory) X(vkBindImageMemory) X(vkCreateImageView) X(vkDestroyImageView)               \
    X(vkCreateRenderPass) X(vkDestroyRenderPass) X(vkCreateFramebuffer) X(vkDestroyFramebuffer)                       \
    X(vkCreateShaderModule) X(vkDestroyShaderModule) X(vkCreatePipelineLayout) X(vkDestroyPipelineLayout)             \
    X(vkCreateGraphicsPipelines) X(vkDestroyPipeline) X(vkCreateCommandPool) X(vkDestroyCommandPool)                   \
    X(vkAllocateCommandBuffers) X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkResetCommandBuffer)                 \
    X(vkCmdBeginRenderPass) X(vkCmdEndRenderPass) X(vkCmdBindPipeline) X(vkCmdPushConstants) X(vkCmdDraw)            \
    X(vkCreateFence) X(vkDestroyFence) X(vkResetFences) X(vkWaitForFences) X(vkQueueSubmit) X(vkDeviceWaitIdle)

static struct {
    PFN_vkGetInstanceProcAddr GetInstanceProcAddr;
    PFN_vkCreateInstance CreateInstance;
    PFN_vkEnumerateInstanceLayerProperties EnumerateInstanceLayerProperties;
#define DECLARE(name) PFN_##name name;
    VK_FUNCTIONS(DECLARE)
#undef DECLARE
} vk;

static int fail(const char *what, VkResult r)
{
    fprintf(stderr, "sample-render-loop: %s failed (VkResult %d)\n", what, (int)r);
    return 1;
}

#define VK_TRY(call)                                                                                                  \
    do {                                                                                                              \
        VkResult r_ = (call);                                                                                         \
        if (r_ != VK_SUCCESS) return fail(#call, r_);                                                                 \
    } while (0)

static int load_vulkan(void)
{
    void *lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "sample-render-loop: no Vulkan loader (libvulkan.so.1): %s\n", dlerror());
        return 1;
    }
    *(void **)&vk.GetInstanceProcAddr = dlsym(lib, "vkGetInstanceProcAddr");
    if (!vk.GetInstanceProcAddr) return fail("dlsym(vkGetInstanceProcAddr)", VK_ERROR_INITIALIZATION_FAILED);
    vk.CreateInstance = (PFN_vkCreateInstance)vk.GetInstanceProcAddr(NULL, "vkCreateInstance");
    vk.EnumerateInstanceLayerProperties =
        (PFN_vkEnumerateInstanceLayerProperties)vk.GetInstanceProcAddr(NULL, "vkEnumerateInstanceLayerProperties");
    return 0;
}

static void load_instance(VkInstance instance)
{
#define LOAD(name) vk.name = (PFN_##name)vk.GetInstanceProcAddr(instance, #name);
    VK_FUNCTIONS(LOAD)
#undef LOAD
}

/* ---- The renderer ---- */

typedef struct renderer {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical;
    VkDevice device;
    uint32_t family;
    VkQueue queue;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    VkPhysicalDeviceFeatures2 features;
    pthread_mutex_t queue_lock;
    VkImage image;
    VkDeviceMemory memory;
    VkImageView view;
    VkRenderPass pass;
    VkFramebuffer framebuffer;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    uint32_t size, triangles;
} renderer;

static unsigned validation_errors;

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT types,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)types, (void)user;
    if (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        validation_errors++;
        fprintf(stderr, "sample-render-loop: validation error: %s\n", data->pMessage);
    }
    return VK_FALSE;
}

static void lock_queue(void *user) { pthread_mutex_lock(&((renderer *)user)->queue_lock); }
static void unlock_queue(void *user) { pthread_mutex_unlock(&((renderer *)user)->queue_lock); }

/* Instance (validation when VKLLM_VALIDATION asks), the first device with a graphics + compute queue family, and
 * a device with that one queue and every feature vkllm can use that the device has. */
static int open_device(renderer *R)
{
    const char *v = getenv("VKLLM_VALIDATION");
    int validate = v && *v && strcmp(v, "0") != 0;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "sample-render-loop",
                             .apiVersion = VK_API_VERSION_1_2};
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *extensions[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VkDebugUtilsMessengerCreateInfoEXT messenger = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT,
        .pfnUserCallback = on_message};
    VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pNext = validate ? &messenger : NULL,
                                 .pApplicationInfo = &app, .enabledLayerCount = validate ? 1 : 0,
                                 .ppEnabledLayerNames = layers, .enabledExtensionCount = validate ? 1 : 0,
                                 .ppEnabledExtensionNames = extensions};
    VK_TRY(vk.CreateInstance(&info, NULL, &R->instance));
    load_instance(R->instance);
    if (validate) VK_TRY(vk.vkCreateDebugUtilsMessengerEXT(R->instance, &messenger, NULL, &R->messenger));
    uint32_t n = 8;
    VkPhysicalDevice pds[8];
    VkResult r = vk.vkEnumeratePhysicalDevices(R->instance, &n, pds);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) return fail("vkEnumeratePhysicalDevices", r);
    for (uint32_t i = 0; i < n && !R->physical; i++) {
        VkPhysicalDeviceProperties props;
        vk.vkGetPhysicalDeviceProperties(pds[i], &props);
        if (props.apiVersion < VK_API_VERSION_1_2) continue;
        uint32_t nf = 16;
        VkQueueFamilyProperties fam[16];
        vk.vkGetPhysicalDeviceQueueFamilyProperties(pds[i], &nf, fam);
        for (uint32_t f = 0; f < nf && !R->physical; f++)
            if ((fam[f].queueFlags & VK_QUEUE_GRAPHICS_BIT) && (fam[f].queueFlags & VK_QUEUE_COMPUTE_BIT))
                R->physical = pds[i], R->family = f;
    }
    if (!R->physical) return fail("finding a Vulkan 1.2 device with a graphics and compute queue", VK_ERROR_UNKNOWN);
    VkPhysicalDeviceVulkan12Features s12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features s11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &s12};
    VkPhysicalDeviceFeatures2 supported = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s11};
    vk.vkGetPhysicalDeviceFeatures2(R->physical, &supported);
    R->f12 = (VkPhysicalDeviceVulkan12Features){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .storageBuffer8BitAccess = s12.storageBuffer8BitAccess,
        .uniformAndStorageBuffer8BitAccess = s12.uniformAndStorageBuffer8BitAccess,
        .shaderFloat16 = s12.shaderFloat16, .shaderInt8 = s12.shaderInt8,
        .vulkanMemoryModel = s12.vulkanMemoryModel, .vulkanMemoryModelDeviceScope = s12.vulkanMemoryModelDeviceScope,
        .timelineSemaphore = s12.timelineSemaphore};
    R->f11 = (VkPhysicalDeviceVulkan11Features){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &R->f12,
        .storageBuffer16BitAccess = s11.storageBuffer16BitAccess,
        .uniformAndStorageBuffer16BitAccess = s11.uniformAndStorageBuffer16BitAccess};
    R->features = (VkPhysicalDeviceFeatures2){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &R->f11};
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = R->family,
                                     .queueCount = 1, .pQueuePriorities = &priority};
    VkDeviceCreateInfo dinfo = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &R->features,
                                .queueCreateInfoCount = 1, .pQueueCreateInfos = &queue};
    VK_TRY(vk.vkCreateDevice(R->physical, &dinfo, NULL, &R->device));
    vk.vkGetDeviceQueue(R->device, R->family, 0, &R->queue);
    pthread_mutex_init(&R->queue_lock, NULL);
    return 0;
}

static int memory_type(renderer *R, uint32_t bits, VkMemoryPropertyFlags want)
{
    VkPhysicalDeviceMemoryProperties mem;
    vk.vkGetPhysicalDeviceMemoryProperties(R->physical, &mem);
    for (uint32_t i = 0; i < mem.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (mem.memoryTypes[i].propertyFlags & want) == want) return (int)i;
    return -1;
}

/* The offscreen colour image, its render pass and framebuffer, the pipeline, a command buffer and a fence. */
static int create_scene(renderer *R)
{
    const VkFormat format = VK_FORMAT_R8G8B8A8_UNORM;
    VkImageCreateInfo image = {.sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO, .imageType = VK_IMAGE_TYPE_2D,
                               .format = format, .extent = {R->size, R->size, 1}, .mipLevels = 1, .arrayLayers = 1,
                               .samples = VK_SAMPLE_COUNT_1_BIT, .tiling = VK_IMAGE_TILING_OPTIMAL,
                               .usage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT,
                               .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED};
    VK_TRY(vk.vkCreateImage(R->device, &image, NULL, &R->image));
    VkMemoryRequirements req;
    vk.vkGetImageMemoryRequirements(R->device, R->image, &req);
    int type = memory_type(R, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    if (type < 0) type = memory_type(R, req.memoryTypeBits, 0);
    VkMemoryAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                  .memoryTypeIndex = (uint32_t)type};
    VK_TRY(vk.vkAllocateMemory(R->device, &alloc, NULL, &R->memory));
    VK_TRY(vk.vkBindImageMemory(R->device, R->image, R->memory, 0));
    VkImageViewCreateInfo view = {.sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO, .image = R->image,
                                  .viewType = VK_IMAGE_VIEW_TYPE_2D, .format = format,
                                  .subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1}};
    VK_TRY(vk.vkCreateImageView(R->device, &view, NULL, &R->view));
    VkAttachmentDescription colour = {.format = format, .samples = VK_SAMPLE_COUNT_1_BIT,
                                      .loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR, .storeOp = VK_ATTACHMENT_STORE_OP_STORE,
                                      .stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
                                      .stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
                                      .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
                                      .finalLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL};
    VkAttachmentReference ref = {0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
    VkSubpassDescription subpass = {.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS, .colorAttachmentCount = 1,
                                    .pColorAttachments = &ref};
    VkRenderPassCreateInfo pass = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO, .attachmentCount = 1,
                                   .pAttachments = &colour, .subpassCount = 1, .pSubpasses = &subpass};
    VK_TRY(vk.vkCreateRenderPass(R->device, &pass, NULL, &R->pass));
    VkFramebufferCreateInfo fb = {.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO, .renderPass = R->pass,
                                  .attachmentCount = 1, .pAttachments = &R->view, .width = R->size,
                                  .height = R->size, .layers = 1};
    VK_TRY(vk.vkCreateFramebuffer(R->device, &fb, NULL, &R->framebuffer));

    VkShaderModuleCreateInfo vs = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = sizeof vert_spv,
                                   .pCode = vert_spv};
    VkShaderModuleCreateInfo fs = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = sizeof frag_spv,
                                   .pCode = frag_spv};
    VkShaderModule modules[2];
    VK_TRY(vk.vkCreateShaderModule(R->device, &vs, NULL, &modules[0]));
    VK_TRY(vk.vkCreateShaderModule(R->device, &fs, NULL, &modules[1]));
    VkPushConstantRange push = {VK_SHADER_STAGE_VERTEX_BIT, 0, 8};
    VkPipelineLayoutCreateInfo layout = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                         .pushConstantRangeCount = 1, .pPushConstantRanges = &push};
    VK_TRY(vk.vkCreatePipelineLayout(R->device, &layout, NULL, &R->layout));
    VkPipelineShaderStageCreateInfo stages[2] = {
        {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_VERTEX_BIT,
         .module = modules[0], .pName = "main"},
        {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_FRAGMENT_BIT,
         .module = modules[1], .pName = "main"}};
    VkPipelineVertexInputStateCreateInfo input = {.sType = VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO};
    VkPipelineInputAssemblyStateCreateInfo assembly = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO,
        .topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST};
    VkViewport viewport = {0, 0, (float)R->size, (float)R->size, 0, 1};
    VkRect2D scissor = {{0, 0}, {R->size, R->size}};
    VkPipelineViewportStateCreateInfo vp = {.sType = VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO,
                                            .viewportCount = 1, .pViewports = &viewport, .scissorCount = 1,
                                            .pScissors = &scissor};
    VkPipelineRasterizationStateCreateInfo raster = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO, .polygonMode = VK_POLYGON_MODE_FILL,
        .cullMode = VK_CULL_MODE_NONE, .frontFace = VK_FRONT_FACE_COUNTER_CLOCKWISE, .lineWidth = 1.0f};
    VkPipelineMultisampleStateCreateInfo ms = {.sType = VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO,
                                               .rasterizationSamples = VK_SAMPLE_COUNT_1_BIT};
    VkPipelineColorBlendAttachmentState blend_att = {.colorWriteMask = 0xf};
    VkPipelineColorBlendStateCreateInfo blend = {.sType = VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO,
                                                 .attachmentCount = 1, .pAttachments = &blend_att};
    VkGraphicsPipelineCreateInfo pipeline = {
        .sType = VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO, .stageCount = 2, .pStages = stages,
        .pVertexInputState = &input, .pInputAssemblyState = &assembly, .pViewportState = &vp,
        .pRasterizationState = &raster, .pMultisampleState = &ms, .pColorBlendState = &blend, .layout = R->layout,
        .renderPass = R->pass, .subpass = 0};
    VkResult r = vk.vkCreateGraphicsPipelines(R->device, VK_NULL_HANDLE, 1, &pipeline, NULL, &R->pipeline);
    vk.vkDestroyShaderModule(R->device, modules[0], NULL);
    vk.vkDestroyShaderModule(R->device, modules[1], NULL);
    if (r != VK_SUCCESS) return fail("vkCreateGraphicsPipelines", r);

    VkCommandPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                    .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                    .queueFamilyIndex = R->family};
    VK_TRY(vk.vkCreateCommandPool(R->device, &pool, NULL, &R->pool));
    VkCommandBufferAllocateInfo cmd = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = R->pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VK_TRY(vk.vkAllocateCommandBuffers(R->device, &cmd, &R->cmd));
    VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_TRY(vk.vkCreateFence(R->device, &fence, NULL, &R->fence));
    return 0;
}

static void close_device(renderer *R)
{
    if (!R->device) return;
    vk.vkDeviceWaitIdle(R->device);
    vk.vkDestroyFence(R->device, R->fence, NULL);
    vk.vkDestroyCommandPool(R->device, R->pool, NULL);
    vk.vkDestroyPipeline(R->device, R->pipeline, NULL);
    vk.vkDestroyPipelineLayout(R->device, R->layout, NULL);
    vk.vkDestroyFramebuffer(R->device, R->framebuffer, NULL);
    vk.vkDestroyRenderPass(R->device, R->pass, NULL);
    vk.vkDestroyImageView(R->device, R->view, NULL);
    vk.vkDestroyImage(R->device, R->image, NULL);
    vk.vkFreeMemory(R->device, R->memory, NULL);
    vk.vkDestroyDevice(R->device, NULL);
    if (R->messenger) vk.vkDestroyDebugUtilsMessengerEXT(R->instance, R->messenger, NULL);
    vk.vkDestroyInstance(R->instance, NULL);
    pthread_mutex_destroy(&R->queue_lock);
}

/* One frame: record, submit (under the queue lock vkllm uses too), signal the fence. */
static int submit_frame(renderer *R, float time)
{
    VK_TRY(vk.vkResetCommandBuffer(R->cmd, 0));
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                      .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(vk.vkBeginCommandBuffer(R->cmd, &begin));
    VkClearValue clear = {.color = {{0.05f, 0.05f, 0.1f, 1.0f}}};
    VkRenderPassBeginInfo pass = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO, .renderPass = R->pass,
                                  .framebuffer = R->framebuffer, .renderArea = {{0, 0}, {R->size, R->size}},
                                  .clearValueCount = 1, .pClearValues = &clear};
    vk.vkCmdBeginRenderPass(R->cmd, &pass, VK_SUBPASS_CONTENTS_INLINE);
    vk.vkCmdBindPipeline(R->cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, R->pipeline);
    struct { float time; uint32_t n; } push = {time, R->triangles};
    vk.vkCmdPushConstants(R->cmd, R->layout, VK_SHADER_STAGE_VERTEX_BIT, 0, sizeof push, &push);
    vk.vkCmdDraw(R->cmd, 3 * R->triangles, 1, 0, 0);
    vk.vkCmdEndRenderPass(R->cmd);
    VK_TRY(vk.vkEndCommandBuffer(R->cmd));
    VK_TRY(vk.vkResetFences(R->device, 1, &R->fence));
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &R->cmd};
    lock_queue(R);
    VkResult r = vk.vkQueueSubmit(R->queue, 1, &submit, R->fence);
    unlock_queue(R);
    if (r != VK_SUCCESS) return fail("vkQueueSubmit (frame)", r);
    return 0;
}

/* ---- The frame loop ---- */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, uint32_t n, double p)
{
    uint32_t i = (uint32_t)(p * (n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static const char prompt[] = "Once upon a time";
#define WARM_FRAMES 10

/* Frames rendered while ctx (NULL: none) generates one step per frame; restarts the generation when it ends.
 * Prints the line `label`; *tokens_per_s gets the generation's speed. */
static int run_frames(renderer *R, vkllm_context *ctx, uint32_t frames, const char *label, double *times)
{
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    vkllm_status st = VKLLM_OK;
    if (ctx) st = vkllm_generate_begin(ctx, prompt, 0, 64, &greedy);
    uint64_t tokens = 0;
    double started = now_ms();
    /* WARM_FRAMES frames first, untimed: the first frames after a change of load are not the steady state. */
    for (uint32_t f = 0; f < frames + WARM_FRAMES && st == VKLLM_OK; f++) {
        if (f == WARM_FRAMES) started = now_ms(), tokens = 0;
        double t0 = now_ms();
        if (submit_frame(R, (float)f * 0.016f)) return 1;
        if (ctx) {
            vkllm_generate_step_result step;
            st = vkllm_generate_step(ctx, 0, &step);
            tokens += step.n_tokens;
            if (st == VKLLM_OK && step.done) st = vkllm_generate_begin(ctx, prompt, 0, 64, &greedy);
        }
        VkResult r = vk.vkWaitForFences(R->device, 1, &R->fence, VK_TRUE, UINT64_MAX);
        if (r != VK_SUCCESS) return fail("vkWaitForFences (frame)", r);
        if (f >= WARM_FRAMES) times[f - WARM_FRAMES] = now_ms() - t0;
    }
    double seconds = (now_ms() - started) * 1e-3;
    if (st != VKLLM_OK) {
        fprintf(stderr, "sample-render-loop: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        return 1;
    }
    qsort(times, frames, sizeof *times, by_value);
    printf("%s: p50 %.2f ms, p95 %.2f ms, p99 %.2f ms", label, percentile(times, frames, 0.50),
           percentile(times, frames, 0.95), percentile(times, frames, 0.99));
    if (ctx) printf(", %.1f tokens/s", (double)tokens / seconds);
    printf("\n");
    fflush(stdout);
    return 0;
}

static int parse_count(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end = NULL;
    if (!s || *s < '0' || *s > '9') return 1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v < lo || v > hi) return 1;
    *out = (uint32_t)v;
    return 0;
}

/* A context's recordings (prompt and one-token passes) and pipelines, made before any frame is timed. */
static vkllm_status warm_up(vkllm_context *ctx)
{
    vkllm_sampling greedy = vkllm_sampling_default();
    greedy.temperature = 0;
    return vkllm_generate(ctx, prompt, 0, 8, &greedy, NULL, NULL, NULL);
}

int main(int argc, char **argv)
{
    uint32_t budget = 1000, frames = 300, triangles = 4096, size = 512;
    int bad = argc < 2;
    for (int i = 2; i < argc && !bad; i += 2) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--budget-us") == 0) bad = parse_count(value, 1, 10000000, &budget);
        else if (strcmp(argv[i], "--frames") == 0) bad = parse_count(value, 10, 1000000, &frames);
        else if (strcmp(argv[i], "--triangles") == 0) bad = parse_count(value, 1, 10000000, &triangles);
        else if (strcmp(argv[i], "--size") == 0) bad = parse_count(value, 16, 8192, &size);
        else bad = 1;
    }
    if (bad) {
        fprintf(stderr, "usage: %s MODEL.gguf [--budget-us N (1..10000000, default 1000)] [--frames N (10..1000000, "
                        "default 300)] [--triangles N (default 4096)] [--size PIXELS (16..8192, default 512)]\n",
                argv[0]);
        return 2;
    }
    renderer R = {.size = size, .triangles = triangles};
    double *times = malloc(frames * sizeof *times);
    if (!times || load_vulkan() || open_device(&R) || create_scene(&R)) {
        close_device(&R);
        free(times);
        return 1;
    }
    vkllm_host_device host = {
        .instance = R.instance, .physical_device = R.physical, .device = R.device, .queue_family = R.family,
        .queue = R.queue, .get_instance_proc_addr = (vkllm_vk_function)vk.GetInstanceProcAddr,
        .api_version = VK_API_VERSION_1_2, .enabled_features = &R.features, .queue_lock = lock_queue,
        .queue_unlock = unlock_queue, .queue_lock_user = &R};
    vkllm_model_params mp = vkllm_model_default_params();
    mp.host_device = &host;
    vkllm_model *model = NULL;
    vkllm_context *plain = NULL, *budgeted = NULL;
    vkllm_context_params cp = vkllm_context_default_params();
    cp.n_ctx = 256;
    vkllm_status st = vkllm_model_load_params(argv[1], &mp, &model);
    if (st == VKLLM_OK) st = vkllm_context_create(model, &cp, &plain);
    cp.max_submit_us = budget;
    if (st == VKLLM_OK) st = vkllm_context_create(model, &cp, &budgeted);
    if (st == VKLLM_OK) st = warm_up(plain);
    if (st == VKLLM_OK) st = warm_up(budgeted);
    int rc = st != VKLLM_OK;
    if (rc) fprintf(stderr, "sample-render-loop: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
    char label[96];
    snprintf(label, sizeof label, "frames with generation, budget %u us", budget);
    if (!rc) rc = run_frames(&R, NULL, frames, "frames alone", times);
    if (!rc) rc = run_frames(&R, plain, frames, "frames with generation, no budget", times);
    if (!rc) rc = run_frames(&R, budgeted, frames, label, times);
    vkllm_context_free(plain);
    vkllm_context_free(budgeted);
    vkllm_model_free(model);
    close_device(&R);
    free(times);
    if (validation_errors) fprintf(stderr, "sample-render-loop: %u validation errors\n", validation_errors);
    return rc || validation_errors;
}
