/* The HTTP side of vkllm serve (libmicrohttpd, a thread per connection): routes, bodies, API key, errors,
 * server-sent events.  The engine (engine.c) does the work; openai.c speaks the JSON. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "openai.h"
#include "server.h"

#define MAX_BODY (1u << 20)
#define GRACE_SECONDS 5.0

typedef struct server {
    const server_options *o;
    engine *engine;
    char model_name[256];
    uint64_t next_id;
    pthread_mutex_t id_lock;
    long started;
} server;

typedef struct connection_state {
    char *body;
    size_t len;
    bool too_large;
} connection_state;

/* A streaming response's state: the job and the bytes of the chunk being written. */
typedef struct stream {
    server *srv;
    job *j;
    bool chat, first, finished, done_sent;
    char id[48];
    long created;
    size_t text_sent;    /* bytes of j->text already in chunks */
    size_t lp_sent;      /* entries of j->lp already in chunks */
    char *chunk;         /* pending bytes to write */
    size_t chunk_len, chunk_off;
} stream;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, char *text)
{
    if (!text) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *message, const char *type,
                                  const char *code)
{
    return send_text(c, status, "application/json", openai_error(message, type, code));
}

static void next_id(server *s, bool chat, char *out, size_t n)
{
    pthread_mutex_lock(&s->id_lock);
    uint64_t id = ++s->next_id;
    pthread_mutex_unlock(&s->id_lock);
    snprintf(out, n, "%s-%llu-%llu", chat ? "chatcmpl" : "cmpl", (unsigned long long)s->started,
             (unsigned long long)id);
}

/* Fills the stream's pending chunk from the job: new text, the final chunk, then [DONE]; blocks until there is
 * something.  false at the end of the stream.  With log-probabilities each chunk carries one token's entry and
 * that token's text (as OpenAI's and llama-server's streams do), however many tokens the engine has produced
 * since the last chunk; text a stop string holds back follows with a later token or on its own. */
static bool refill(stream *st)
{
    engine *e = st->srv->engine;
    engine_lock(e);
    engine_wait(e, st->j, st->text_sent, st->lp_sent, 1.0);
    job *j = st->j;
    char *chunk = NULL;
    if (j->n_lp > st->lp_sent) {
        const size_t k = st->lp_sent;
        size_t end = k + 1 < j->n_lp ? j->lp[k + 1].text_offset : j->lp_text_len;
        if (end > j->text_len) end = j->text_len;
        if (end < st->text_sent) end = st->text_sent;
        chunk = openai_chunk(st->chat, st->id, st->srv->model_name, st->created, j->text + st->text_sent,
                             end - st->text_sent, VKLLM_FINISH_NONE, st->first, NULL, j, k, k + 1);
        st->text_sent = end;
        st->lp_sent = k + 1;
        st->first = false;
    } else if (j->text_len > st->text_sent) {
        chunk = openai_chunk(st->chat, st->id, st->srv->model_name, st->created, j->text + st->text_sent,
                             j->text_len - st->text_sent, VKLLM_FINISH_NONE, st->first, NULL, j, st->lp_sent, j->n_lp);
        st->text_sent = j->text_len;
        st->lp_sent = j->n_lp;
        st->first = false;
    } else if (j->done && !st->finished) {
        if (j->error != VKLLM_OK) {
            char *err = openai_error(j->error_message, "server_error", vkllm_status_name(j->error));
            size_t n = err ? strlen(err) + 9 : 0;
            chunk = err ? malloc(n) : NULL;
            if (chunk) snprintf(chunk, n, "data: %s\n\n", err);
            free(err);
        } else {
            chunk = openai_chunk(st->chat, st->id, st->srv->model_name, st->created, "", 0,
                                 j->finish ? j->finish : VKLLM_FINISH_STOP, st->first, j, j, st->lp_sent, j->n_lp);
            st->lp_sent = j->n_lp;
        }
        st->finished = true;
    } else if (st->finished && !st->done_sent) {
        chunk = strdup("data: [DONE]\n\n");
        st->done_sent = true;
    }
    engine_unlock(e);
    if (!chunk) return !st->done_sent; /* a timeout: call again */
    free(st->chunk);
    st->chunk = chunk;
    st->chunk_len = strlen(chunk);
    st->chunk_off = 0;
    return true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    (void)pos;
    while (st->chunk_off == st->chunk_len) {
        if (st->done_sent || !refill(st)) return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->chunk_off == st->chunk_len && engine_stopping(st->srv->engine) && st->j->done && st->done_sent)
            return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = st->chunk_len - st->chunk_off < max ? st->chunk_len - st->chunk_off : max;
    memcpy(buf, st->chunk + st->chunk_off, n);
    st->chunk_off += n;
    return (ssize_t)n;
}

/* The response is gone: finished, or the client hung up (the request is then cancelled). */
static void stream_free(void *cls)
{
    stream *st = cls;
    engine_release(st->srv->engine, st->j);
    free(st->chunk);
    free(st);
}

static enum MHD_Result completion(server *s, struct MHD_Connection *c, bool chat, const connection_state *cs)
{
    job *j = job_new();
    if (!j) return send_error(c, 500, "out of memory", "server_error", NULL);
    bool streaming = false;
    char err[512];
    if (!openai_parse_request(cs->body ? cs->body : "", cs->len, chat, s->o->default_max_tokens, j, &streaming, err,
                              sizeof err)) {
        engine_release(s->engine, j);
        return send_error(c, 400, err, "invalid_request_error", NULL);
    }
    vkllm_status st = engine_submit(s->engine, j);
    if (st != VKLLM_OK) {
        engine_release(s->engine, j);
        return st == VKLLM_ERROR_BUFFER_TOO_SMALL
                   ? send_error(c, 429, "too many requests are queued; try again later", "rate_limit_error", NULL)
                   : send_error(c, 503, "the server is shutting down", "server_error", NULL);
    }
    if (!streaming) {
        engine_lock(s->engine);
        while (!j->done) engine_wait(s->engine, j, (size_t)-1, (size_t)-1, 1.0);
        engine_unlock(s->engine);
        char id[48];
        next_id(s, chat, id, sizeof id);
        enum MHD_Result r;
        if (j->error != VKLLM_OK) {
            unsigned status = j->error == VKLLM_ERROR_CONTEXT_FULL || j->error == VKLLM_ERROR_INVALID_ARGUMENT ||
                                      j->error == VKLLM_ERROR_UNSUPPORTED
                                  ? 400 : 500;
            r = send_error(c, status, j->error_message, status == 400 ? "invalid_request_error" : "server_error",
                           vkllm_status_name(j->error));
        } else {
            r = send_text(c, 200, "application/json", openai_response(j, chat, id, s->model_name, time(NULL)));
        }
        engine_release(s->engine, j);
        return r;
    }
    /* A prompt that fails (too long) fails before the first byte, with its status. */
    engine_lock(s->engine);
    while (!j->done && !j->id) engine_wait(s->engine, j, 0, (size_t)-1, 0.05);
    bool failed = j->done && j->error != VKLLM_OK;
    engine_unlock(s->engine);
    if (failed) {
        enum MHD_Result r = send_error(c, j->error == VKLLM_ERROR_CONTEXT_FULL ? 400 : 500, j->error_message,
                                       "invalid_request_error", vkllm_status_name(j->error));
        engine_release(s->engine, j);
        return r;
    }
    stream *sm = calloc(1, sizeof *sm);
    if (!sm) {
        engine_release(s->engine, j);
        return send_error(c, 500, "out of memory", "server_error", NULL);
    }
    *sm = (stream){.srv = s, .j = j, .chat = chat, .first = true, .created = time(NULL)};
    next_id(s, chat, sm->id, sizeof sm->id);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, sm, stream_free);
    if (!r) {
        stream_free(sm);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result models(server *s, struct MHD_Connection *c)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\",\"created\":%ld,"
             "\"owned_by\":\"vkllm\"}]}", s->model_name, s->started);
    return send_text(c, 200, "application/json", strdup(buf));
}

/* Appends a histogram in Prometheus' text format (cumulative buckets) at b + n; the new length, or -1 if it did not fit. */
static int print_histogram(char *b, size_t cap, size_t n, const char *name, const engine_histogram *h,
                           const double *bounds)
{
    uint64_t cum = 0;
    for (int i = 0; i < ENGINE_HISTOGRAM_BUCKETS; i++) {
        cum += h->buckets[i];
        char le[32];
        if (i < ENGINE_HISTOGRAM_BUCKETS - 1) snprintf(le, sizeof le, "%g", bounds[i]);
        else snprintf(le, sizeof le, "+Inf");
        int k = snprintf(b + n, cap - n, "%s_bucket{le=\"%s\"} %llu\n", name, le, (unsigned long long)cum);
        if (k < 0 || (size_t)k >= cap - n) return -1;
        n += (size_t)k;
    }
    int k = snprintf(b + n, cap - n, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
    if (k < 0 || (size_t)k >= cap - n) return -1;
    return (int)(n + (size_t)k);
}

static enum MHD_Result metrics(server *s, struct MHD_Connection *c)
{
    engine_metrics m;
    engine_get_metrics(s->engine, &m);
    size_t cap = 4096;
    char *b = malloc(cap);
    if (!b) return MHD_NO;
    double hit = m.sched.prefix_queried_tokens ? (double)m.sched.prefix_hit_tokens / (double)m.sched.prefix_queried_tokens : 0;
    int n = snprintf(b, cap,
                     "vkllm_requests_running %u\nvkllm_requests_waiting %u\nvkllm_requests_total %llu\n"
                     "vkllm_requests_failed_total %llu\nvkllm_requests_cancelled_total %llu\n"
                     "vkllm_prompt_tokens_total %llu\nvkllm_generated_tokens_total %llu\n"
                     "vkllm_kv_pages_used %u\nvkllm_kv_pages_cached %u\nvkllm_kv_pages_total %u\n"
                     "vkllm_preemptions_total %llu\nvkllm_steps_total %llu\n"
                     "vkllm_prefix_cache_queried_tokens_total %llu\nvkllm_prefix_cache_hit_tokens_total %llu\n"
                     "vkllm_prefix_cache_hit_rate %.4f\nvkllm_replicas %u\n",
                     m.sched.n_running, m.sched.n_waiting, (unsigned long long)m.requests_total,
                     (unsigned long long)m.requests_failed, (unsigned long long)m.requests_cancelled,
                     (unsigned long long)m.sched.prompt_tokens, (unsigned long long)m.sched.generated_tokens,
                     m.sched.kv_pages_used, m.sched.kv_pages_cached, m.sched.kv_pages_total,
                     (unsigned long long)m.sched.n_preemptions, (unsigned long long)m.sched.n_steps,
                     (unsigned long long)m.sched.prefix_queried_tokens, (unsigned long long)m.sched.prefix_hit_tokens, hit,
                     m.replicas);
    if (n > 0) n = print_histogram(b, cap, (size_t)n, "vkllm_time_to_first_token_seconds", &m.ttft, engine_ttft_bounds);
    if (n > 0) n = print_histogram(b, cap, (size_t)n, "vkllm_inter_token_latency_seconds", &m.itl, engine_itl_bounds);
    return send_text(c, 200, "text/plain; version=0.0.4", b);
}

static bool authorized(server *s, struct MHD_Connection *c)
{
    if (!s->o->api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    return h && !strncmp(h, "Bearer ", 7) && !strcmp(h + 7, s->o->api_key);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    server *s = cls;
    (void)version;
    connection_state *cs = *con_cls;
    if (!cs) {
        if (!(cs = calloc(1, sizeof *cs))) return MHD_NO;
        *con_cls = cs;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cs->len + *upload_size > MAX_BODY) {
            cs->too_large = true;
        } else if (!cs->too_large) {
            char *b = realloc(cs->body, cs->len + *upload_size + 1);
            if (!b) return MHD_NO;
            memcpy(b + cs->len, upload, *upload_size);
            cs->body = b;
            cs->len += *upload_size;
            cs->body[cs->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health") && get) return send_text(c, 200, "application/json", strdup("{\"status\":\"ok\"}"));
    if (!strcmp(url, "/metrics") && get) return metrics(s, c);
    if (!authorized(s, c)) return send_error(c, 401, "a valid API key is required (Authorization: Bearer KEY)",
                                             "invalid_request_error", "invalid_api_key");
    if (!strcmp(url, "/v1/models") && get) return models(s, c);
    bool chat = !strcmp(url, "/v1/chat/completions");
    if (chat || !strcmp(url, "/v1/completions")) {
        if (!post) return send_error(c, 405, "use POST", "invalid_request_error", NULL);
        if (cs->too_large) return send_error(c, 413, "the body is larger than 1 MiB", "invalid_request_error", NULL);
        return completion(s, c, chat, cs);
    }
    char msg[300];
    snprintf(msg, sizeof msg, "no route %s %.200s", method, url);
    return send_error(c, 404, msg, "invalid_request_error", NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    connection_state *cs = *con_cls;
    if (cs) free(cs->body);
    free(cs);
    *con_cls = NULL;
}

int server_run(const server_options *o, vkllm_model *const *models, uint32_t n_reps, volatile sig_atomic_t *stop)
{
    server s = {.o = o, .started = (long)time(NULL)};
    pthread_mutex_init(&s.id_lock, NULL);
    const char *base = strrchr(o->model_path, '/');
    snprintf(s.model_name, sizeof s.model_name, "%s", base ? base + 1 : o->model_path);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(o->port)};
    const char *host = o->host ? o->host : "127.0.0.1";
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "vkllm serve: --host '%s' is not an IPv4 address\n", host);
        return 1;
    }
    vkllm_scheduler_params sp = vkllm_scheduler_default_params();
    sp.n_seq_max = (o->parallel + n_reps - 1) / n_reps;
    sp.n_ctx = o->n_ctx;
    sp.type_k = o->type_k;
    sp.type_v = o->type_v;
    sp.rotate_k = !o->no_rotate_k;
    sp.center_k = !o->no_center_k;
    sp.n_kv_pages = (o->n_kv_pages + n_reps - 1) / n_reps;
    sp.prefix_cache = !o->no_prefix_cache;
    if (sp.token_budget < sp.n_seq_max) sp.token_budget = sp.n_seq_max;
    uint32_t max_waiting = o->max_waiting ? o->max_waiting : 64 * o->parallel;
    vkllm_status st = engine_start(models, n_reps, &sp, o->chat_template, max_waiting, &s.engine);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm serve: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        return 1;
    }
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                                MHD_USE_ERROR_LOG,
                                            0, NULL, NULL, handle, &s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                            MHD_OPTION_NOTIFY_COMPLETED, completed, &s,
                                            MHD_OPTION_CONNECTION_TIMEOUT, 600u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "vkllm serve: cannot listen on %s:%u (in use, or not an address of this machine)\n", host,
                o->port);
        engine_stop(s.engine, 0);
        engine_free(s.engine);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "vkllm serve: %s on http://%s:%u (%u parallel", s.model_name, host, info ? info->port : o->port,
            o->parallel);
    if (n_reps > 1) fprintf(stderr, " over %u replicas", n_reps);
    fprintf(stderr, ")\n");
    fflush(stderr);
    while (!*stop) usleep(100 * 1000);
    fprintf(stderr, "vkllm serve: stopping (running requests get %.0f s)\n", GRACE_SECONDS);
    MHD_quiesce_daemon(d);
    /* The engine finishes or cancels what runs; the streams then end and their threads return. */
    engine_stop(s.engine, GRACE_SECONDS);
    MHD_stop_daemon(d);
    engine_free(s.engine);
    pthread_mutex_destroy(&s.id_lock);
    return 0;
}
