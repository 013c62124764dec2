/* vkllm: LLM inference on any Vulkan 1.2 device.  The one public header.
 *
 * Every function that can fail returns a vkllm_status; on failure, vkllm_last_error() gives a message
 * that names what failed and where (thread-local, valid until the next failing call on the thread).
 *
 * Lifetimes: a model outlives its contexts (free every context before its model).  Strings and arrays the
 * library returns belong to it: vkllm_model_info's strings live as long as the model; vkllm_get_logits' rows
 * until the next vkllm_decode / vkllm_decode_greedy / vkllm_generate on that context or its free; a scheduler's
 * step outputs until its next call; the
 * vkllm_status_name, vkllm_version and template-name strings are static.  Only vkllm_chat_format hands over
 * memory (release it with vkllm_free).
 *
 * Threads: any function may be called from any thread, but one model and its contexts are used by one thread
 * at a time (calls on the same model or any of its contexts or schedulers must not overlap; distinct models are
 * independent).  The device functions (vkllm_device_*) and the status functions are safe everywhere. */

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

typedef struct vkllm_model_params {
    /* The device: its index ("1") or a case-insensitive substring of its name ("H200", "llvmpipe").  NULL or "":
     * the VKLLM_DEVICE variable if set, else the best device (discrete > integrated > virtual > CPU). */
    const char *device;
    /* VKLLM_FEATURE_* bits to turn off; the VKLLM_DISABLE_F16, _STORAGE16, _STORAGE8, _SUBGROUP, _INT_DOT,
     * _TEXEL and _COOPMAT variables add theirs. */
    uint32_t disable_features;
    /* 1: the Khronos validation layer (its errors fail the calls that caused them), 0: off, -1 (default): the
     * VKLLM_VALIDATION variable. */
    int validation;
} vkllm_model_params;

VKLLM_API vkllm_model_params vkllm_model_default_params(void);
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

typedef enum vkllm_kv_type { VKLLM_KV_F16 = 0, VKLLM_KV_F32 = 1 } vkllm_kv_type;

typedef struct vkllm_context_params {
    uint32_t n_ctx;       /* positions per sequence; 0: min(model's training context, 4096) */
    uint32_t n_batch;     /* most tokens in one forward pass; longer prompts go in chunks.  Default 256 */
    uint32_t n_seq_max;   /* sequences sharing the cache.  Default 1 */
    uint32_t n_outputs_max; /* most logits rows one forward pass returns.  Default 8 */
    vkllm_kv_type kv_type;
} vkllm_context_params;

VKLLM_API vkllm_context_params vkllm_context_default_params(void);
VKLLM_API vkllm_status vkllm_context_create(vkllm_model *model, const vkllm_context_params *params,
                                            vkllm_context **out);
VKLLM_API void vkllm_context_free(vkllm_context *ctx);

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
/* The same forward pass with greedy sampling on the GPU: only the argmax token of each output row comes
 * back (tokens[i] for the i-th row that asked), not the logits. */
VKLLM_API vkllm_status vkllm_decode_greedy(vkllm_context *ctx, const vkllm_batch *batch, vkllm_token *tokens);
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
    uint32_t n_decode;             /* single-token forward passes during generation */
    double prompt_ms, generate_ms; /* wall time of prompt processing (to the first token) and of the rest */
    int stopped_by_eog;
} vkllm_generate_stats;

/* Tokenizes prompt (with BOS as the vocabulary asks; parse_special as given), evaluates it in sequence 0
 * (reusing the cached tokens it shares with the previous call's prompt and output, so a chat re-sends its
 * whole conversation at the cost of the new part only), and generates up to n_predict tokens (stopping at end of
 * generation), streaming pieces to on_piece.  stats may be NULL.  VKLLM_ERROR_CONTEXT_FULL if the context fills
 * first (stats still set). */
VKLLM_API vkllm_status vkllm_generate(vkllm_context *ctx, const char *prompt, int parse_special, uint32_t n_predict,
                            const vkllm_sampling *sampling, vkllm_piece_fn on_piece, void *user,
                            vkllm_generate_stats *stats);

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
    vkllm_kv_type kv_type;
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
} vkllm_request_params;

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
