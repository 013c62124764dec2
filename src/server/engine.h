/* The server's engine: one thread per replica of the model owns that copy and its scheduler (include/vkllm.h
 * allows one thread per model) and runs steps while it holds a request; HTTP threads hand the engine jobs, the least
 * loaded replica takes each, and the HTTP threads wait for their text. */
#ifndef VKLLM_SERVER_ENGINE_H
#define VKLLM_SERVER_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vkllm.h"

typedef struct engine engine;

/* One generated token's log-probability, as the response reports it (vkllm_request_params.logprobs). */
typedef struct job_logprob {
    char *piece;                     /* the token's text (owned) */
    size_t text_offset;              /* where the piece begins in the generated text */
    float logprob;
    uint32_t n_top;
    char *top_piece[VKLLM_MAX_TOP_LOGPROBS]; /* the most likely tokens' texts (owned) and theirs */
    float top_logprob[VKLLM_MAX_TOP_LOGPROBS];
} job_logprob;

/* Replicas route a request to the one that served the longest prefix of its text (its prefix cache holds it):
 * the text is hashed at every whole block of this many bytes, up to this many blocks. */
#define ENGINE_PREFIX_BYTES 128
#define ENGINE_PREFIX_BLOCKS 32

/* A request from an HTTP thread.  Filled by the thread (prompt or messages, params), then shared with the engine
 * under the engine's lock until both let go (engine_release). */
typedef struct job {
    /* input, set before engine_submit */
    bool chat;
    char *prompt;                    /* completions: the prompt */
    vkllm_chat_message *messages;    /* chat: the conversation (strings owned by the job) */
    size_t n_messages;
    vkllm_request_params params;
    char **stop;                     /* params.stop's strings, owned */
    /* output, under the engine's lock */
    char *text;                      /* text so far (NUL-terminated) */
    size_t text_len, text_cap;
    uint32_t n_prompt, n_generated, n_cached_prompt;
    job_logprob *lp;                 /* [n_lp] with params.logprobs: one per generated token */
    size_t n_lp, cap_lp, lp_text_len;
    vkllm_finish_reason finish;
    bool done;                       /* finished, failed or cancelled */
    vkllm_status error;              /* VKLLM_OK, or why it failed (message in error_message) */
    char error_message[512];
    double submitted, first_token, last_token; /* seconds (monotonic) */
    /* engine side */
    uint64_t prefix_hash[ENGINE_PREFIX_BLOCKS]; /* the request's text hashed up to each ENGINE_PREFIX_BYTES-byte block */
    uint32_t n_prefix_hash;          /* whole blocks hashed (engine_submit) */
    uint64_t id;                     /* the scheduler's, 0 until submitted */
    bool cancel;                     /* the client went away */
    int refs;
    struct job *next;
} job;

/* A latency histogram as Prometheus keeps one: counts per upper bound (not cumulative here), sum and count. */
#define ENGINE_HISTOGRAM_BUCKETS 8
typedef struct engine_histogram {
    double sum;                      /* seconds */
    uint64_t count;
    uint64_t buckets[ENGINE_HISTOGRAM_BUCKETS]; /* by the bounds below, the last one +inf */
} engine_histogram;

extern const double engine_ttft_bounds[ENGINE_HISTOGRAM_BUCKETS - 1]; /* 0.05 .. 5 s */
extern const double engine_itl_bounds[ENGINE_HISTOGRAM_BUCKETS - 1];  /* 0.005 .. 0.5 s */

typedef struct engine_metrics {
    vkllm_scheduler_stats sched;     /* summed over the replicas */
    uint32_t replicas;
    uint64_t requests_total, requests_failed, requests_cancelled;
    engine_histogram ttft;           /* submission to first token */
    engine_histogram itl;            /* between two tokens of one request */
} engine_metrics;

/* models: n_models >= 1 copies of one model (the same file loaded n_models times), each with a scheduler of params
 * and a thread of its own.  The engine does not free them. */
vkllm_status engine_start(vkllm_model *const *models, uint32_t n_models, const vkllm_scheduler_params *params,
                          const char *chat_template, uint32_t max_waiting, engine **out);
/* Refuses new jobs, finishes what runs (cancels it after grace_s seconds) and stops the thread; every job is
 * done then.  engine_free afterwards, once no HTTP thread holds a job. */
void engine_stop(engine *e, double grace_s);
void engine_free(engine *e);

job *job_new(void);
/* Frees a job and everything it owns (engine.c calls it when the last reference goes). */
void job_free(job *j);
/* Hands the job to the engine (which takes a reference); VKLLM_ERROR_BUFFER_TOO_SMALL if the queue is full. */
vkllm_status engine_submit(engine *e, job *j);
/* Waits until the job has text past `have` bytes or log-probabilities past `have_lp` entries, or is done, or
 * timeout_s passes; under the engine's lock. */
void engine_wait(engine *e, job *j, size_t have, size_t have_lp, double timeout_s);
void engine_lock(engine *e);
void engine_unlock(engine *e);
/* The caller lets go of the job; if it has not finished it is cancelled (its KV pages freed at once). */
void engine_release(engine *e, job *j);
void engine_get_metrics(engine *e, engine_metrics *m);
bool engine_stopping(engine *e);
double engine_now(void);

#endif
