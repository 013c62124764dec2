/* vkllm: LLM inference on any Vulkan 1.2 device.  The one public header.
 *
 * Every function that can fail returns a vkllm_status; on failure, vkllm_last_error() gives a message
 * that names what failed and where (thread-local, valid until the next failing call on the thread).
 *
 * Lifetimes: a model outlives its contexts (free every context before its model).  Strings and arrays the
 * library returns belong to it: vkllm_model_info's strings live as long as the model; vkllm_get_logits' rows
 * until the next vkllm_decode / vkllm_decode_greedy / vkllm_decode_submit / vkllm_generate / vkllm_generate_begin or
 * _step on that context or its free (after vkllm_decode_submit, once its ticket is done); a scheduler's step
 * outputs until its next call; the
 * vkllm_status_name, vkllm_version and template-name strings are static.  Only vkllm_chat_format hands over
 * memory (release it with vkllm_free).
 *
 * Threads: any function may be called from any thread, but one model and its contexts are used by one thread
 * at a time (calls on the same model or any of its contexts or schedulers must not overlap; distinct models are
 * independent; models on one host device (vkllm_host_device) count as distinct, their submissions to the shared
 * queue going through the host's queue lock).  The device functions (vkllm_device_*) and the status functions
 * are safe everywhere.  Embedding in a render loop (the host's own VkDevice, asynchronous decoding, frame
 * budgets): docs/embedding.md. */

/* The status part comes first and on its own: vkllm's runtime includes it alone (with VKLLM_STATUS_ONLY defined),
 * as the runtime knows nothing of models.  Embedders include the whole header. */
#ifndef VKLLM_H_STATUS
#define VKLLM_H_STATUS

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; vkllm_version() gives the library's. */
#define VKLLM_VERSION_MAJOR 0
#define VKLLM_VERSION_MINOR 1
#define VKLLM_VERSION_PATCH 0
#define VKLLM_VERSION_STRING "0.1.0"

/* Marks the library's exported functions: the library is built with hidden visibility, so only these are in
 * the shared library's dynamic symbol table. */
#if defined(__GNUC__) || defined(__clang__)
#define VKLLM_API __attribute__((visibility("default")))
#else
#define VKLLM_API
#endif

typedef enum vkllm_status {
    VKLLM_OK = 0,
    VKLLM_ERROR_INVALID_ARGUMENT,    /* a caller passed something out of range or inconsistent */
    VKLLM_ERROR_OUT_OF_HOST_MEMORY,  /* malloc failed */
    VKLLM_ERROR_OUT_OF_DEVICE_MEMORY,/* the Vulkan device has no room left */
    VKLLM_ERROR_NO_DEVICE,           /* no Vulkan 1.2 device, or none matching VKLLM_DEVICE */
    VKLLM_ERROR_VULKAN,              /* a Vulkan call failed; the message names the call and VkResult */
    VKLLM_ERROR_UNSUPPORTED,         /* valid input that vkllm cannot handle (type, architecture, feature) */
    VKLLM_ERROR_IO,                  /* a file could not be opened, read, mapped or written */
    VKLLM_ERROR_BAD_FORMAT,          /* a file is malformed or truncated */
    VKLLM_ERROR_CONTEXT_FULL,        /* a prompt or generation does not fit the context */
    VKLLM_ERROR_VALIDATION,          /* the validation layer, or a shader check (VKLLM_SHADER_CHECKS), found an error */
    VKLLM_ERROR_BUFFER_TOO_SMALL,    /* a caller's buffer cannot hold the result; the size needed is returned */
    VKLLM_STATUS_COUNT
} vkllm_status;

/* "VKLLM_ERROR_IO" etc.: a static string ("VKLLM_STATUS_UNKNOWN" for a value out of range). */
VKLLM_API const char *vkllm_status_name(vkllm_status status);
/* Message of the last failure on this thread ("" if none): valid until the next failing call on the thread. */
VKLLM_API const char *vkllm_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* VKLLM_H_STATUS */

#if !defined(VKLLM_H) && !defined(VKLLM_STATUS_ONLY)
#define VKLLM_H

#ifdef __cplusplus
extern "C" {
#endif

/* "0.1.0": the version of the library linked (the header's is VKLLM_VERSION_STRING); a static string. */
VKLLM_API const char *vkllm_version(void);

/* ---- Models ---- */

typedef struct vkllm_model vkllm_model;
typedef struct vkllm_context vkllm_context;
typedef int32_t vkllm_token;

/* ---- Devices ---- */

/* One Vulkan device vkllm can run on (Vulkan 1.2 and a compute queue). */
typedef struct vkllm_device_properties {
    char name[256];              /* "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)" */
    const char *type;            /* "discrete GPU", "integrated GPU", "virtual GPU", "CPU" or "other" (static) */
    const char *vendor;          /* "NVIDIA", "AMD", "Intel", "Apple", "Mesa CPU (lavapipe)", ... (static) */
    uint32_t vendor_id, device_id;
    uint64_t device_local_bytes; /* the device-local heaps together */
    int uma;                     /* device memory is the host's (integrated GPU or CPU) */
    uint32_t subgroup_size;
    const char *cooperative_matrix; /* the kind vkllm would use: "KHR", "NV" or "none" (static) */
    int is_default;              /* the device a model loads onto by default (VKLLM_DEVICE, else the best by type) */
} vkllm_device_properties;

/* How many devices there are (the indices of vkllm_device_info and vkllm_model_params.device). */
VKLLM_API vkllm_status vkllm_device_count(uint32_t *count);
VKLLM_API vkllm_status vkllm_device_info(uint32_t index, vkllm_device_properties *properties);
/* Every capability vkllm reads from device `index`, as the lines `vkllm devices` prints: written to buf with a
 * NUL, *n_bytes the length without it; VKLLM_ERROR_BUFFER_TOO_SMALL if capacity <= *n_bytes (buf NULL and
 * capacity 0 to ask). */
VKLLM_API vkllm_status vkllm_device_describe(uint32_t index, char *buf, size_t capacity, size_t *n_bytes);

/* ---- Models ---- */

/* Features that can be turned off, so the model runs the fallback path as if the device lacked them. */
typedef enum vkllm_feature {
    VKLLM_FEATURE_F16 = 1u << 0,       /* f16 arithmetic in shaders */
    VKLLM_FEATURE_STORAGE16 = 1u << 1, /* 16-bit storage buffers */
    VKLLM_FEATURE_STORAGE8 = 1u << 2,  /* 8-bit storage buffers */
    VKLLM_FEATURE_SUBGROUP = 1u << 3,  /* subgroup operations */
    VKLLM_FEATURE_INT_DOT = 1u << 4,   /* integer dot product */
    VKLLM_FEATURE_TEXEL = 1u << 5,     /* RGBA32 uniform texel buffers */
    VKLLM_FEATURE_COOPMAT = 1u << 6,   /* cooperative matrices (tensor cores) */
} vkllm_feature;

/* A Vulkan function pointer of any type, e.g. (vkllm_vk_function)vkGetInstanceProcAddr. */
typedef void (*vkllm_vk_function)(void);

/* The host's own Vulkan device, for vkllm to run on (a game engine's or any application's: see
 * docs/embedding.md).  Handles are passed as void * so that this header needs no Vulkan header: VkInstance,
 * VkPhysicalDevice, VkDevice and VkQueue are all pointers.  vkllm loads every Vulkan function it calls from
 * get_instance_proc_addr, creates only objects of its own on the device (command pools, buffers and memory,
 * pipelines, fences, a timeline semaphore per context) and destroys them with the model and its contexts; it
 * never destroys, waits idle or changes anything of the host's.  The host keeps instance, device and queue alive
 * until every model loaded on them is freed.  Several models (and their contexts) may share one device and queue.
 *
 * What the host must enable (docs/embedding.md lists it all): Vulkan 1.2 (api_version and the device), a queue
 * family with VK_QUEUE_COMPUTE_BIT, and the feature timelineSemaphore (without it the load fails naming it).  Every
 * other feature vkllm uses is optional: left off, vkllm runs the same fallback as VKLLM_FEATURE_* would select --
 * shaderFloat16, shaderInt8, storageBuffer16BitAccess, storageBuffer8BitAccess, shaderIntegerDotProduct,
 * subgroupSizeControl + computeFullSubgroups (with VK_EXT_subgroup_size_control / VK_KHR_shader_integer_dot_product
 * below 1.3), and cooperativeMatrix with vulkanMemoryModel (VK_KHR_ or VK_NV_cooperative_matrix).  vkllm reads
 * what was enabled from enabled_features and enabled_extensions, which must be what the host gave vkCreateDevice.
 *
 * The queue needs external synchronization: vkllm calls queue_lock / queue_unlock (with queue_lock_user) around
 * each vkQueueSubmit it makes, from the thread making the vkllm call.  Both NULL: vkllm's submissions to host
 * queues are serialized by a mutex of its own, and the host must not use the queue during a vkllm call. */
typedef struct vkllm_host_device {
    void *instance;              /* VkInstance */
    void *physical_device;       /* VkPhysicalDevice the device was created on */
    void *device;                /* VkDevice */
    uint32_t queue_family;       /* the queue's family: must have VK_QUEUE_COMPUTE_BIT */
    void *queue;                 /* VkQueue of queue_family that vkllm submits to (may be the host's render queue) */
    vkllm_vk_function get_instance_proc_addr; /* PFN_vkGetInstanceProcAddr of the loader the instance came from */
    uint32_t api_version;        /* VkApplicationInfo.apiVersion the instance was created with: at least 1.2 */
    const void *enabled_features; /* VkDeviceCreateInfo.pNext given to vkCreateDevice: VkPhysicalDeviceFeatures2,
                                     VkPhysicalDeviceVulkan11/12/13Features or the individual feature structures */
    const char *const *enabled_extensions; /* VkDeviceCreateInfo.ppEnabledExtensionNames */
    uint32_t n_enabled_extensions;
    void (*queue_lock)(void *user);   /* both or neither */
    void (*queue_unlock)(void *user);
    void *queue_lock_user;
} vkllm_host_device;

typedef struct vkllm_model_params {
    /* The device: its index ("1") or a case-insensitive substring of its name ("H200", "llvmpipe").  NULL or "":
     * the VKLLM_DEVICE variable if set, else the best device (discrete > integrated > virtual > CPU). */
    const char *device;
    /* VKLLM_FEATURE_* bits to turn off; the VKLLM_DISABLE_F16, _STORAGE16, _STORAGE8, _SUBGROUP, _INT_DOT,
     * _TEXEL and _COOPMAT variables add theirs. */
    uint32_t disable_features;
    /* 1: the Khronos validation layer (its errors fail the calls that caused them), 0: off, -1 (default): the
     * VKLLM_VALIDATION variable.  Ignored with host_device (the host's instance has its own layers). */
    int validation;
    /* NULL (default): vkllm creates an instance and a device of its own for the model (device above chooses it).
     * Else the model runs on the host's device (device is ignored); the structure is read during the load only. */
    const vkllm_host_device *host_device;
    /* Threads a CPU device (lavapipe) computes on.  1: the thread that submits, no worker threads (lavapipe hands
     * every dispatch to its workers and waits, which costs more than a small model's work); n > 1: n worker
     * threads; 0: lavapipe's default (LP_NUM_THREADS, else one worker per core).  -1 (default): the
     * VKLLM_CPU_THREADS variable if set, else 0 where LP_NUM_THREADS is set, else 1 for models whose layers are
     * small (vkllm_cpu_threads_auto) and 0 for the others: a choice for decoding (work on long prompts, as
     * perplexity, is faster with the workers even for a small model).  Lavapipe reads LP_NUM_THREADS when its
     * device is enumerated, so the load sets it in the process environment while it creates its instance, then
     * restores it (a thread of the host reading the environment meanwhile races with it: pass 0 to leave the
     * environment alone).  No effect on GPUs or with host_device. */
    int cpu_threads;
} vkllm_model_params;

VKLLM_API vkllm_model_params vkllm_model_default_params(void);
/* The automatic choice of cpu_threads for a model of width n_embd and feed-forward width n_ff: 1 (no worker
 * threads) where its largest per-layer matrix is small enough that handing a dispatch to worker threads costs
 * more than the work it would split, else 0 (lavapipe's default). */
VKLLM_API int vkllm_cpu_threads_auto(uint32_t n_embd, uint32_t n_ff);
/* Loads a GGUF model onto the device params name (NULL: the defaults); the weights stay quantized in device
 * memory.  Errors name the file and what is wrong with it, or the device asked for and the ones there are. */
VKLLM_API vkllm_status vkllm_model_load_params(const char *path, const vkllm_model_params *params, vkllm_model **out);
/* vkllm_model_load_params with the defaults. */
VKLLM_API vkllm_status vkllm_model_load(const char *path, vkllm_model **out);
VKLLM_API void vkllm_model_free(vkllm_model *model);

typedef struct vkllm_model_info {
    const char *architecture; /* "llama", "qwen2" */
    const char *device;       /* name of the Vulkan device it runs on */
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx_train;
    uint64_t n_params;        /* weights in the file */
    uint64_t file_bytes;      /* bytes of tensor data */
    const char *chat_template;/* tokenizer.chat_template, "" if none */
    uint32_t cpu_threads;     /* threads a CPU device computes the model on (1: none but its queue's, lavapipe without
                                 worker threads); 0 on a GPU */
} vkllm_model_info;
VKLLM_API void vkllm_model_get_info(const vkllm_model *model, vkllm_model_info *info);
/* Device-local memory the model's device holds now (weights, and the caches of its contexts) and its peak. */
VKLLM_API void vkllm_model_memory(const vkllm_model *model, uint64_t *device_bytes, uint64_t *peak_device_bytes);

/* ---- Tokens ---- */

VKLLM_API vkllm_token vkllm_token_bos(const vkllm_model *model);
VKLLM_API vkllm_token vkllm_token_eos(const vkllm_model *model);
/* End of generation: EOS, end-of-turn and the like. */
VKLLM_API int vkllm_token_is_eog(const vkllm_model *model, vkllm_token token);

/* Text to tokens.  add_special: BOS (and EOS) as the vocabulary asks; parse_special: "<s>"-style control
 * tokens written in the text become their ids.  *n_tokens gets the count; a capacity too small gives
 * VKLLM_ERROR_BUFFER_TOO_SMALL with the count needed (call with tokens NULL, capacity 0 to ask). */
VKLLM_API vkllm_status vkllm_tokenize(const vkllm_model *model, const char *text, size_t len, int add_special,
                            int parse_special, vkllm_token *tokens, size_t capacity, size_t *n_tokens);
/* The bytes of one token (possibly part of a UTF-8 character), same capacity contract; no NUL written. */
VKLLM_API vkllm_status vkllm_token_to_piece(const vkllm_model *model, vkllm_token token, char *buf, size_t capacity,
                                  size_t *n_bytes);
/* Tokens back to text; writes a NUL if there is room past *n_bytes. */
VKLLM_API vkllm_status vkllm_detokenize(const vkllm_model *model, const vkllm_token *tokens, size_t n_tokens, char *buf,
                              size_t capacity, size_t *n_bytes);

/* ---- Contexts: a KV cache and the buffers of a forward pass ---- */

/* Element type of the KV cache.  Q8_0 and Q4_0 are ggml's blocks of 32 values with an f16 scale (34 and 18 bytes
 * per 32 values, against 64 for F16), cut along each token's K (or V) row: within a head when the head size is a
 * multiple of 32, across heads otherwise, so the row n_head_kv * head_dim must be a multiple of 32. */
typedef enum vkllm_kv_type { VKLLM_KV_F16 = 0, VKLLM_KV_F32 = 1, VKLLM_KV_Q8_0 = 2, VKLLM_KV_Q4_0 = 3 } vkllm_kv_type;
/* "f16", "f32", "q8_0", "q4_0" (static), or NULL for a value out of range. */
VKLLM_API const char *vkllm_kv_type_name(vkllm_kv_type type);
/* The type a name of vkllm_kv_type_name names (case-insensitive); VKLLM_ERROR_INVALID_ARGUMENT otherwise. */
VKLLM_API vkllm_status vkllm_kv_type_parse(const char *name, vkllm_kv_type *type);

typedef struct vkllm_context_params {
    uint32_t n_ctx;       /* positions per sequence; 0: min(model's training context, 4096) */
    uint32_t n_batch;     /* most tokens in one forward pass; longer prompts go in chunks.  Default 256 */
    uint32_t n_seq_max;   /* sequences sharing the cache.  Default 1 */
    uint32_t n_outputs_max; /* most logits rows one forward pass returns.  Default 8 */
    vkllm_kv_type type_k; /* element type of the keys' cache.  Default VKLLM_KV_F16 */
    vkllm_kv_type type_v; /* and of the values' cache.  Default VKLLM_KV_F16 */
    int rotate_k;         /* with a Q8_0 or Q4_0 K cache: 1 (default) passes keys and queries through a Walsh-Hadamard
                             transform within each head before the keys are quantized (q.k unchanged; outliers
                             spread over 32 values, so the blocks' scales fit the typical value), 0 does not.
                             Ignored for F16 and F32 keys.  docs/kv-cache.md has the measurements. */
    int center_k;         /* with a Q8_0 or Q4_0 K cache: 1 (default) stores each key minus the model's mean key at
                             its position in the lowest-frequency RoPE pairs, where trained models' keys share a large
                             part that would set every block's scale, and attention adds it back (exact: q.k
                             unchanged); the mean is estimated once per model by a 128-token pass when the first such
                             context is created.  0 does not.  Ignored for F16 and F32 keys. */
    /* Frame budget: 0 (default) submits each forward pass at once.  N > 0 splits a pass into submissions of
     * whole layers, each meant to keep the queue busy at most about N microseconds of GPU time, the split chosen
     * from each submission's measured GPU time (timestamps; one layer per submission until measured, and always
     * on a device without timestamps) and adjusted as it runs; one layer that alone takes longer is still one
     * submission.  The next submission is made only once the previous one finished, by vkllm_ticket_poll /
     * vkllm_ticket_wait / vkllm_generate_step, so the host's submissions in between run between them. */
    uint32_t max_submit_us;
    /* 1: every forward pass also returns each output row's hidden state (the last layer's, after the final norm:
     * what the LM head multiplies) through vkllm_get_hidden; 0 (default) does not (no extra copy).  Medusa heads
     * (docs/speculative.md) are trained on it. */
    int output_hidden;
} vkllm_context_params;

VKLLM_API vkllm_context_params vkllm_context_default_params(void);
VKLLM_API vkllm_status vkllm_context_create(vkllm_model *model, const vkllm_context_params *params,
                                            vkllm_context **out);
VKLLM_API void vkllm_context_free(vkllm_context *ctx);
/* Device bytes of the context's KV cache, every layer, K and V; *bytes_per_token (if not NULL) those one
 * position of one sequence takes (F16: 4 n_layer n_head_kv head_dim; Q8_0 34/64 of it, Q4_0 18/64). */
VKLLM_API uint64_t vkllm_context_kv_bytes(const vkllm_context *ctx, uint64_t *bytes_per_token);

/* A batch: token i goes to sequence seq[i] at position pos[i]; rows with want_logits[i] != 0 get logits
 * (at most n_outputs_max).  Positions of a sequence must continue its cache (0 for a new sequence). */
typedef struct vkllm_batch {
    uint32_t n_tokens;
    const vkllm_token *tokens;
    const int32_t *pos;
    const int32_t *seq;
    const int8_t *want_logits;
} vkllm_batch;

/* Runs one forward pass (one GPU submission).  VKLLM_ERROR_CONTEXT_FULL if a sequence would pass n_ctx. */
VKLLM_API vkllm_status vkllm_decode(vkllm_context *ctx, const vkllm_batch *batch);
/* Logits (n_vocab floats) of the i-th row that asked for them in the last vkllm_decode; NULL if none.  Owned by
 * the context: valid until its next decode or generate call. */
VKLLM_API const float *vkllm_get_logits(vkllm_context *ctx, uint32_t i);
/* Hidden state (n_embd floats: the last layer's output after the final norm) of the i-th output row of the last
 * pass (vkllm_decode or vkllm_decode_greedy), on a context created with output_hidden = 1; NULL otherwise or if
 * there is no such row.  Lives as long as vkllm_get_logits' rows. */
VKLLM_API const float *vkllm_get_hidden(vkllm_context *ctx, uint32_t i);
/* The same forward pass with greedy sampling on the GPU: only the argmax token of each output row comes
 * back (tokens[i] for the i-th row that asked), not the logits. */
VKLLM_API vkllm_status vkllm_decode_greedy(vkllm_context *ctx, const vkllm_batch *batch, vkllm_token *tokens);
/* ---- Asynchronous decoding (docs/embedding.md) ---- */

/* A forward pass submitted by vkllm_decode_submit: done when the context's timeline semaphore reaches value. */
typedef struct vkllm_ticket {
    vkllm_context *ctx;
    uint64_t value;
} vkllm_ticket;

/* vkllm_decode without waiting: validates and stages the batch, records (or replays) the pass and submits it (its
 * first submission under max_submit_us), then returns.  One pass is in flight per context: a pass still pending
 * is waited for first.  Results (vkllm_get_logits) are readable once vkllm_ticket_poll reported it done or
 * vkllm_ticket_wait returned; the batch's arrays are not used after the call. */
VKLLM_API vkllm_status vkllm_decode_submit(vkllm_context *ctx, const vkllm_batch *batch, vkllm_ticket *ticket);
/* Never blocks: *done = 1 once the pass finished and its results were read back (a ticket older than the pending
 * pass is done).  Under max_submit_us each call also submits the pass's next part when the previous one finished:
 * call it (or vkllm_generate_step) once per frame or more often. */
VKLLM_API vkllm_status vkllm_ticket_poll(const vkllm_ticket *ticket, int *done);
/* Blocks until the pass finished (submitting its remaining parts), at most the fence timeout per part
 * (VKLLM_FENCE_TIMEOUT_MS). */
VKLLM_API vkllm_status vkllm_ticket_wait(const vkllm_ticket *ticket);
/* The context's timeline semaphore: writes its VkSemaphore to *(VkSemaphore *)semaphore.  A ticket's pass signals
 * it to ticket.value with its last submission; the host may wait on that value in its own submissions (a GPU-side
 * wait) once that submission was made -- with max_submit_us 0 by vkllm_decode_submit itself, else once
 * vkllm_ticket_poll has returned done, since a wait on the same queue for a value not yet submitted would block
 * the queue.  Owned by the context: destroyed by vkllm_context_free (after its passes finished). */
VKLLM_API vkllm_status vkllm_context_timeline(vkllm_context *ctx, void *semaphore);

/* Forgets positions >= pos of a sequence (pos 0: the whole sequence). */
VKLLM_API vkllm_status vkllm_seq_truncate(vkllm_context *ctx, int32_t seq, uint32_t pos);

/* ---- Sampling and generation ---- */

/* The sampler chain, llama.cpp's order and defaults: penalties over the last repeat_last_n tokens, top-k, top-p,
 * min-p, temperature, then a seeded draw.  Every float must be finite. */
typedef struct vkllm_sampling {
    float temperature;       /* <= 0: greedy (argmax on the GPU).  Default 0.8 */
    int32_t top_k;           /* keep the k highest logits; <= 0: off.  Default 40 */
    float top_p;             /* keep the smallest most-likely set with probability >= top_p; >= 1: off.  Default 0.95 */
    float min_p;             /* keep tokens with probability >= min_p * the highest; <= 0: off.  Default 0.05 */
    float repeat_penalty;    /* > 0: a repeated token's logit > 0 divided by it, else multiplied; 1: off (default) */
    int32_t repeat_last_n;   /* >= 0: the window of tokens the penalties look at; 0: off.  Default 64 */
    uint64_t seed;           /* same seed, same text.  Default 0x5eed: the library never picks a random one */
    float frequency_penalty; /* subtracted once per occurrence in the window; 0: off (default) */
    float presence_penalty;  /* subtracted once if the token is in the window at all; 0: off (default) */
} vkllm_sampling;

VKLLM_API vkllm_sampling vkllm_sampling_default(void);

/* Called with each piece of generated text as it is made; return 0 to stop. */
typedef int (*vkllm_piece_fn)(const char *piece, size_t len, void *user);

typedef struct vkllm_generate_stats {
    uint32_t n_prompt, n_generated;
    uint32_t n_decode;             /* tokens the forward passes of generation produced (after the prompt's first);
                                      without speculation one pass each */
    double prompt_ms, generate_ms; /* wall time of prompt processing (to the first token) and of the rest */
    int stopped_by_eog;
    /* Speculative decoding (vkllm_context_set_speculation); 0 without it */
    uint32_t n_drafted;            /* tokens the drafter proposed */
    uint32_t n_accepted;           /* drafted tokens the model kept */
    uint32_t n_verify;             /* verification passes (each one forward pass of the input and its drafts) */
} vkllm_generate_stats;

/* Tokenizes prompt (with BOS as the vocabulary asks; parse_special as given), evaluates it in sequence 0
 * (reusing the cached tokens it shares with the previous call's prompt and output, so a chat re-sends its
 * whole conversation at the cost of the new part only), and generates up to n_predict tokens (stopping at end of
 * generation), streaming pieces to on_piece.  stats may be NULL.  VKLLM_ERROR_CONTEXT_FULL if the context fills
 * first (stats still set). */
VKLLM_API vkllm_status vkllm_generate(vkllm_context *ctx, const char *prompt, int parse_special, uint32_t n_predict,
                            const vkllm_sampling *sampling, vkllm_piece_fn on_piece, void *user,
                            vkllm_generate_stats *stats);

/* Step-wise generation for a render loop: vkllm_generate_begin takes what vkllm_generate takes (with the same
 * prompt cache in sequence 0), submits nothing and returns; each vkllm_generate_step then advances the generation
 * without blocking on the GPU: it finishes what completed, submits what comes next (the next chunk of the prompt,
 * the next token, or under max_submit_us the next part of a pass) and returns once it would have to wait or after
 * budget_us microseconds of its own wall time (0: one pass over the work, never waiting).  The text of the tokens
 * it produced comes back in *step (owned by the context, valid until the next step, begin, generate or free). */
typedef struct vkllm_generate_step_result {
    const char *text;     /* the pieces produced by this step, concatenated (not NUL-terminated); "" if none */
    size_t len;
    uint32_t n_tokens;    /* tokens produced by this step */
    int done;             /* the generation ended (n_predict, end of generation, or an error returned) */
    vkllm_generate_stats stats; /* so far (prompt_ms: to the first token; generate_ms: since) */
} vkllm_generate_step_result;

VKLLM_API vkllm_status vkllm_generate_begin(vkllm_context *ctx, const char *prompt, int parse_special,
                                            uint32_t n_predict, const vkllm_sampling *sampling);
VKLLM_API vkllm_status vkllm_generate_step(vkllm_context *ctx, uint32_t budget_us, vkllm_generate_step_result *step);

/* ---- Speculative decoding ----
 *
 * A drafter proposes the next few tokens; one forward pass over the sequence's next input and the drafts
 * ("verification") gives the model's own choice after each, and the longest prefix of drafts that matches is
 * kept.  Greedy output is token for token that of plain greedy decoding: a verification pass computes each row
 * in the reduction order of a one-token pass (batch-invariant logits).  With temperature > 0 the speculative
 * sampling rule keeps the output distribution exactly the sampler's (drafts accepted with probability
 * min(1, p/q), else a token drawn from max(0, p - q) renormalized; a lookup draft counts as q one-hot); the
 * random stream is used differently, so a seed gives other text than without speculation. */

/* Verifies k drafted tokens of sequence seq in one forward pass: `input` (the sequence's next token) at the
 * sequence's length pos, then draft[i] at pos + 1 + i.  target[i] (k + 1 entries) receives the model's greedy
 * choice after position pos + i; *n_accepted the number of leading drafts equal to their target.  The cache keeps
 * positions up to pos + *n_accepted (the input and the accepted drafts) and forgets the rest by bookkeeping only
 * (no copy); target[*n_accepted] is the sequence's next input.  k + 1 must fit n_outputs_max and the context
 * (VKLLM_ERROR_CONTEXT_FULL otherwise); k may be 0 (a plain greedy step). */
VKLLM_API vkllm_status vkllm_verify_greedy(vkllm_context *ctx, int32_t seq, vkllm_token input, const vkllm_token *draft,
                                           uint32_t k, vkllm_token *target, uint32_t *n_accepted);

/* The same pass returning logits (for a sampling rule of the caller's): rows 0..k through vkllm_get_logits, bitwise
 * those single-token decoding gives at each position.  The cache then holds every position through pos + k: keep the
 * accepted ones with vkllm_seq_truncate(ctx, seq, pos + 1 + accepted) (bookkeeping only). */
VKLLM_API vkllm_status vkllm_verify_logits(vkllm_context *ctx, int32_t seq, vkllm_token input, const vkllm_token *draft,
                                           uint32_t k);

typedef struct vkllm_speculation {
    uint32_t lookup_ngram;   /* > 0: prompt lookup: the latest earlier occurrence of the last lookup_ngram tokens
                                (then shorter ones, down to 1) in prompt + output proposes what followed it.  0: off */
    vkllm_context *draft;    /* a draft model's context (its own cache; sequence 0 is used), or NULL.  Its model must
                                have the target's vocabulary; it must outlive its use; the thread rule covers both */
    uint32_t draft_max;      /* most tokens drafted per pass (1..64, also bounded by n_outputs_max - 1).  Default 7 */
    float draft_min_p;       /* the draft model stops drafting when its top probability falls below this.  Default 0 */
    int adaptive;            /* stop drafting for a while when acceptance is too low to pay.  Default 1 */
    const char *medusa;      /* a Medusa heads file (`vkllm medusa-train`, docs/speculative.md), or NULL: its heads
                                draft from the model's last hidden state, head i the token i + 2 ahead (top-1 of each,
                                one candidate per depth; at most draft_max of them).  The context must have been
                                created with output_hidden = 1; heads trained on another model are refused */
    const char *medusa_tree; /* with medusa: verify a tree of the heads' top candidates in each pass instead of a
                                chain: "default" (24 nodes) or nodes as paths of ranks, "0,1,0.0,0.1,0.0.0" (0.1: head
                                1's second choice after head 0's first; a node after its parent).  Needs
                                n_outputs_max >= heads + 1 + nodes and an F16 or F32 KV cache.  NULL: the chain */
} vkllm_speculation;

VKLLM_API vkllm_speculation vkllm_speculation_default(void);
/* Turns speculation on for vkllm_generate on ctx (spec NULL, or no drafter: off).  A draft context whose
 * vocabulary differs is VKLLM_ERROR_INVALID_ARGUMENT naming the first differing token id.  The settings are
 * copied; the draft context is not owned. */
VKLLM_API vkllm_status vkllm_context_set_speculation(vkllm_context *ctx, const vkllm_speculation *spec);

/* ---- Chat ---- */

typedef struct vkllm_chat_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} vkllm_chat_message;

/* Formats a conversation with the model's chat template (llama2, llama3, chatml or zephyr, recognised from
 * tokenizer.chat_template) or the family named by template_name ("llama3", ...; NULL: the model's).  With
 * add_assistant the text ends where the assistant's reply begins.  *out is malloc'd: release it with
 * vkllm_free().  VKLLM_ERROR_UNSUPPORTED when the model's template is none of the supported families. */
VKLLM_API vkllm_status vkllm_chat_format(const vkllm_model *model, const char *template_name,
                                         const vkllm_chat_message *messages, size_t n_messages, int add_assistant,
                                         char **out);
/* The family vkllm_chat_format would use ("llama3", ...), or NULL if none. */
VKLLM_API const char *vkllm_chat_template_name(const vkllm_model *model, const char *template_name);
VKLLM_API void vkllm_free(void *p);


/* ---- Serving: a scheduler of many requests over one paged KV cache ---- */

/* A scheduler owns a context of n_seq_max sequences and runs continuous batching over it: each
 * vkllm_scheduler_step is one forward pass holding one decode token of every running request plus chunks of
 * the prompts of waiting ones (chunked prefill), at most token_budget tokens in all.  Requests are admitted in
 * arrival order while a sequence slot and the KV pages of their next chunk are free; when the pages run out, the
 * newest running request is preempted (its pages freed; it is recomputed from its prompt and the tokens it had
 * generated when it runs again).  Cancelling frees a request's pages at once.
 *
 * Prefix caching: full pages of a finished or cancelled request stay cached, keyed by a hash of their tokens and
 * of every token before them; a new request whose prompt starts with cached pages maps them instead of
 * recomputing them (reference counts; unreferenced cached pages are evicted least recently used first).
 *
 * Threads: a scheduler is used by one thread at a time, like its model (the server serialises its calls).  It
 * must be freed before its model.  Results: a request's greedy output equals vkllm_generate's with the same
 * prompt as long as the forward pass gives a row the same logits whatever else is in the batch (docs/serving.md
 * says where that holds). */
typedef struct vkllm_scheduler vkllm_scheduler;

typedef struct vkllm_scheduler_params {
    uint32_t n_ctx;        /* positions per request (prompt and output); 0: min(model's training context, 4096) */
    uint32_t n_seq_max;    /* requests running at once.  Default 8 */
    uint32_t token_budget; /* most tokens in one step (the context's n_batch).  Default 256 */
    uint32_t n_kv_pages;   /* KV pages of 16 positions the scheduler may use; 0: n_seq_max full contexts */
    uint32_t max_waiting;  /* requests waiting at most (submit fails beyond); 0: no limit */
    int prefix_cache;      /* reuse cached full pages of earlier prompts.  Default 1 */
    vkllm_kv_type type_k, type_v; /* the KV cache's types, as in vkllm_context_params.  Default VKLLM_KV_F16 */
    int rotate_k;          /* as in vkllm_context_params.  Default 1 */
    int center_k;          /* as in vkllm_context_params.  Default 1 */
} vkllm_scheduler_params;

VKLLM_API vkllm_scheduler_params vkllm_scheduler_default_params(void);
VKLLM_API vkllm_status vkllm_scheduler_create(vkllm_model *model, const vkllm_scheduler_params *params,
                                              vkllm_scheduler **out);
VKLLM_API void vkllm_scheduler_free(vkllm_scheduler *sched);

typedef struct vkllm_request_params {
    vkllm_sampling sampling;   /* per request, its own seed */
    uint32_t max_tokens;       /* tokens to generate at most (0: until end of generation or the context is full) */
    const char *const *stop;   /* n_stop strings that end the output where they first appear (not included); copied */
    uint32_t n_stop;
    int logprobs;              /* 1: each step output carries the sampled token's log-probability under the model
                                  (log-softmax of the logits, before temperature and the other sampling settings) */
    uint32_t top_logprobs;     /* with logprobs: also the most likely tokens and theirs, up to
                                  VKLLM_MAX_TOP_LOGPROBS */
} vkllm_request_params;

#define VKLLM_MAX_TOP_LOGPROBS 20

VKLLM_API vkllm_request_params vkllm_request_default_params(void);

/* Queues a request (its tokens are copied) and gives its id (never 0).  VKLLM_ERROR_CONTEXT_FULL if the prompt
 * leaves no room for one token in n_ctx; VKLLM_ERROR_BUFFER_TOO_SMALL if max_waiting requests wait already. */
VKLLM_API vkllm_status vkllm_scheduler_submit(vkllm_scheduler *sched, const vkllm_token *prompt, size_t n_prompt,
                                              const vkllm_request_params *params, uint64_t *id);
/* Drops a request, waiting or running, and frees its KV pages now; it reports nothing more.  An unknown or
 * finished id is VKLLM_ERROR_INVALID_ARGUMENT. */
VKLLM_API vkllm_status vkllm_scheduler_cancel(vkllm_scheduler *sched, uint64_t id);

typedef enum vkllm_finish_reason {
    VKLLM_FINISH_NONE = 0,  /* still running */
    VKLLM_FINISH_STOP,      /* end-of-generation token or a stop string */
    VKLLM_FINISH_LENGTH,    /* max_tokens, or the context (or the whole KV pool) is full */
} vkllm_finish_reason;

/* What one request gained in a step: a token (or none: a prefill chunk, or text held back while it may begin a
 * stop string), its new text, and whether it finished (the request is then forgotten). */
typedef struct vkllm_step_output {
    uint64_t id;
    vkllm_token token;        /* the token sampled this step; -1 if none */
    const char *text;         /* text_len bytes (no NUL) of new output text */
    size_t text_len;
    vkllm_finish_reason finish;
    uint32_t n_prompt, n_generated;
    uint32_t n_cached_prompt; /* prompt tokens taken from the prefix cache when the request was admitted */
    /* With vkllm_request_params.logprobs and a token: its log-probability, and n_top of the most likely tokens
     * (most likely first; ties by the lower id) with theirs.  The arrays are the scheduler's, like text. */
    float logprob;
    uint32_t n_top;
    const vkllm_token *top_tokens;
    const float *top_logprobs;
} vkllm_step_output;

/* Runs one forward pass (nothing when no request is queued: *n_outputs 0).  *outputs lists the requests that
 * produced a token or finished; owned by the scheduler, valid until its next step, submit, cancel or free. */
VKLLM_API vkllm_status vkllm_scheduler_step(vkllm_scheduler *sched, const vkllm_step_output **outputs,
                                            size_t *n_outputs);

typedef struct vkllm_scheduler_stats {
    uint32_t n_running, n_waiting;
    uint32_t kv_pages_used, kv_pages_cached, kv_pages_total; /* held by requests; cached and unreferenced; pool */
    uint64_t n_steps, n_preemptions;
    uint64_t prompt_tokens, generated_tokens;                /* evaluated prompt tokens; sampled tokens */
    uint64_t prefix_queried_tokens, prefix_hit_tokens;       /* prompt tokens looked up, and found cached */
} vkllm_scheduler_stats;
VKLLM_API void vkllm_scheduler_get_stats(const vkllm_scheduler *sched, vkllm_scheduler_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* VKLLM_H */
