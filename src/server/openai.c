/* OpenAI request parsing and response building with cJSON (Debian's libcjson-dev). */
#include "openai.h"

#include <cjson/cJSON.h>
#include "tokenizer/utf8.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STOP 4

static bool bad(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return false;
}

/* A number field in [lo, hi] if present (null counts as absent). */
static bool number(const cJSON *o, const char *name, double lo, double hi, bool integer, double *out, bool *present,
                   char *err, size_t err_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *present = false;
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad(err, err_len, "'%s' must be a number", name);
    if (v->valuedouble < lo || v->valuedouble > hi || (integer && v->valuedouble != floor(v->valuedouble)))
        return bad(err, err_len, "'%s' must be %s in [%g, %g]; got %g", name, integer ? "an integer" : "a number", lo,
                   hi, v->valuedouble);
    *out = v->valuedouble;
    *present = true;
    return true;
}

static bool parse_stop(const cJSON *o, job *j, char *err, size_t err_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (!v || cJSON_IsNull(v)) return true;
    const cJSON *items[MAX_STOP];
    uint32_t n = 0;
    if (cJSON_IsString(v)) {
        items[n++] = v;
    } else if (cJSON_IsArray(v)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            if (n == MAX_STOP) return bad(err, err_len, "'stop' holds at most %d strings", MAX_STOP);
            if (!cJSON_IsString(it)) return bad(err, err_len, "'stop' must be a string or an array of strings");
            items[n++] = it;
        }
    } else {
        return bad(err, err_len, "'stop' must be a string or an array of strings");
    }
    j->stop = calloc(n ? n : 1, sizeof *j->stop);
    if (!j->stop) return bad(err, err_len, "out of memory");
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++)
        if (items[i]->valuestring[0] && !(j->stop[kept] = strdup(items[i]->valuestring)))
            return bad(err, err_len, "out of memory");
        else if (items[i]->valuestring[0])
            kept++;
    j->params.stop = (const char *const *)j->stop;
    j->params.n_stop = kept;
    return true;
}

static bool parse_messages(const cJSON *o, job *j, char *err, size_t err_len)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) == 0)
        return bad(err, err_len, "'messages' must be a non-empty array of {\"role\", \"content\"}");
    size_t n = (size_t)cJSON_GetArraySize(m);
    j->messages = calloc(n, sizeof *j->messages);
    if (!j->messages) return bad(err, err_len, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, m)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content))
            return bad(err, err_len, "messages[%zu] must have string 'role' and 'content'", j->n_messages);
        if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") &&
            strcmp(role->valuestring, "assistant"))
            return bad(err, err_len, "messages[%zu].role must be system, user or assistant; got '%s'", j->n_messages,
                       role->valuestring);
        vkllm_chat_message *msg = &j->messages[j->n_messages++];
        msg->role = strdup(role->valuestring);
        msg->content = strdup(content->valuestring);
        if (!msg->role || !msg->content) return bad(err, err_len, "out of memory");
    }
    return true;
}

/* Completions: "logprobs": N (0..20) asks for the sampled token's log-probability and N alternatives.  Chat:
 * "logprobs": true, with "top_logprobs": N (0..20) alternatives. */
static bool parse_logprobs(const cJSON *o, bool chat, job *j, char *err, size_t err_len)
{
    double v;
    bool has;
    const int max = VKLLM_MAX_TOP_LOGPROBS;
    if (!chat) {
        if (!number(o, "logprobs", 0, max, true, &v, &has, err, err_len)) return false;
        j->params.logprobs = has;
        j->params.top_logprobs = has ? (uint32_t)v : 0;
        return true;
    }
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(o, "logprobs");
    if (lp && !cJSON_IsNull(lp) && !cJSON_IsBool(lp)) return bad(err, err_len, "'logprobs' must be true or false");
    j->params.logprobs = cJSON_IsTrue(lp);
    if (!number(o, "top_logprobs", 0, max, true, &v, &has, err, err_len)) return false;
    if (has && !j->params.logprobs) return bad(err, err_len, "'top_logprobs' needs 'logprobs': true");
    j->params.top_logprobs = has ? (uint32_t)v : 0;
    return true;
}

bool openai_parse_request(const char *body, size_t len, bool chat, uint32_t default_max_tokens, job *j,
                          bool *stream, char *err, size_t err_len)
{
    *stream = false;
    j->chat = chat;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) return bad(err, err_len, "the body is not valid JSON (near byte %zu)",
                       cJSON_GetErrorPtr() ? (size_t)(cJSON_GetErrorPtr() - body) : (size_t)0);
    bool ok = true;
    if (!cJSON_IsObject(o)) ok = bad(err, err_len, "the body must be a JSON object");
    if (ok && chat) {
        ok = parse_messages(o, j, err, err_len);
    } else if (ok) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(cJSON_GetArrayItem(p, 0)))
            p = cJSON_GetArrayItem(p, 0);
        if (!cJSON_IsString(p)) ok = bad(err, err_len, "'prompt' must be a string");
        else if (!(j->prompt = strdup(p->valuestring))) ok = bad(err, err_len, "out of memory");
    }
    double v;
    bool has;
    vkllm_sampling *s = &j->params.sampling;
    const char *max_name = chat && cJSON_GetObjectItemCaseSensitive(o, "max_completion_tokens") ? "max_completion_tokens"
                                                                                                 : "max_tokens";
    j->params.max_tokens = default_max_tokens;
    if (ok && (ok = number(o, max_name, 1, 1 << 24, true, &v, &has, err, err_len)) && has) j->params.max_tokens = (uint32_t)v;
    if (ok && (ok = number(o, "temperature", 0, 100, false, &v, &has, err, err_len)) && has) s->temperature = (float)v;
    if (ok && (ok = number(o, "top_p", 0, 1, false, &v, &has, err, err_len)) && has) s->top_p = (float)v;
    if (ok && (ok = number(o, "min_p", 0, 1, false, &v, &has, err, err_len)) && has) s->min_p = (float)v;
    if (ok && (ok = number(o, "top_k", -1, 1 << 30, true, &v, &has, err, err_len)) && has) s->top_k = (int32_t)v;
    if (ok && (ok = number(o, "seed", -9.2e18, 1.8e19, true, &v, &has, err, err_len)) && has)
        s->seed = v < 0 ? (uint64_t)(int64_t)v : (uint64_t)v;
    if (ok && (ok = number(o, "frequency_penalty", -2, 2, false, &v, &has, err, err_len)) && has) s->frequency_penalty = (float)v;
    if (ok && (ok = number(o, "presence_penalty", -2, 2, false, &v, &has, err, err_len)) && has) s->presence_penalty = (float)v;
    if (ok && (ok = number(o, "n", 1, 1, true, &v, &has, err, err_len))) {}
    if (ok) ok = parse_stop(o, j, err, err_len);
    const cJSON *st = ok ? cJSON_GetObjectItemCaseSensitive(o, "stream") : NULL;
    if (st && !cJSON_IsNull(st)) {
        if (!cJSON_IsBool(st)) ok = bad(err, err_len, "'stream' must be true or false");
        else *stream = cJSON_IsTrue(st);
    }
    if (ok) ok = parse_logprobs(o, chat, j, err, err_len);
    cJSON_Delete(o);
    return ok;
}

const char *openai_finish_name(vkllm_finish_reason f)
{
    return f == VKLLM_FINISH_STOP ? "stop" : f == VKLLM_FINISH_LENGTH ? "length" : NULL;
}

static cJSON *base(bool chat, bool chunk, const char *id, const char *model, long created)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", model);
    return o;
}

static void add_usage(cJSON *o, const job *j)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", j->n_generated);
    cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt + j->n_generated);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", j->n_cached_prompt);
}

/* JSON strings must be valid UTF-8; a model can emit any bytes, so malformed ones become U+FFFD. */
static cJSON *string_n(const char *text, size_t len)
{
    if (!text) len = 0;
    char *copy = malloc(3 * len + 1);
    if (!copy) return cJSON_CreateString("");
    utf8_sanitize(text ? text : "", len, copy);
    cJSON *s = cJSON_CreateString(copy);
    free(copy);
    return s;
}

static cJSON *utf8_bytes(const char *s)
{
    cJSON *a = cJSON_CreateArray();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) cJSON_AddItemToArray(a, cJSON_CreateNumber(*p));
    return a;
}

/* The "logprobs" object of a choice for lp[0, n): the completions API's parallel arrays, or the chat API's
 * "content" list.  NULL (JSON null) when the request asked for none. */
static cJSON *logprobs_json(bool chat, const job_logprob *lp, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    if (chat) {
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        for (size_t i = 0; i < n; i++) {
            cJSON *t = cJSON_CreateObject();
            cJSON_AddItemToObject(t, "token", string_n(lp[i].piece, strlen(lp[i].piece)));
            cJSON_AddNumberToObject(t, "logprob", lp[i].logprob);
            cJSON_AddItemToObject(t, "bytes", utf8_bytes(lp[i].piece));
            cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
            for (uint32_t k = 0; k < lp[i].n_top; k++) {
                cJSON *a = cJSON_CreateObject();
                cJSON_AddItemToObject(a, "token", string_n(lp[i].top_piece[k], strlen(lp[i].top_piece[k])));
                cJSON_AddNumberToObject(a, "logprob", lp[i].top_logprob[k]);
                cJSON_AddItemToObject(a, "bytes", utf8_bytes(lp[i].top_piece[k]));
                cJSON_AddItemToArray(top, a);
            }
            cJSON_AddItemToArray(content, t);
        }
        return o;
    }
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens"), *values = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs"), *offsets = cJSON_AddArrayToObject(o, "text_offset");
    for (size_t i = 0; i < n; i++) {
        cJSON_AddItemToArray(tokens, string_n(lp[i].piece, strlen(lp[i].piece)));
        cJSON_AddItemToArray(values, cJSON_CreateNumber(lp[i].logprob));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)lp[i].text_offset));
        cJSON *top = cJSON_CreateObject();
        for (uint32_t k = 0; k < lp[i].n_top; k++)
            cJSON_AddItemToObject(top, lp[i].top_piece[k], cJSON_CreateNumber(lp[i].top_logprob[k]));
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

static void add_logprobs(cJSON *choice, bool chat, const job *j, size_t from, size_t to)
{
    if (!j || !j->params.logprobs) {
        cJSON_AddNullToObject(choice, "logprobs");
        return;
    }
    cJSON_AddItemToObject(choice, "logprobs", logprobs_json(chat, to > from ? j->lp + from : NULL, to - from));
}

/* A response or chunk object with its one choice (index 0). */
static cJSON *with_choice(cJSON *o, cJSON **choice)
{
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    *choice = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, *choice);
    cJSON_AddNumberToObject(*choice, "index", 0);
    return o;
}

static void add_finish(cJSON *choice, vkllm_finish_reason f)
{
    const char *name = openai_finish_name(f);
    if (name) cJSON_AddStringToObject(choice, "finish_reason", name);
    else cJSON_AddNullToObject(choice, "finish_reason");
}

char *openai_response(const job *j, bool chat, const char *id, const char *model, long created)
{
    cJSON *c, *o = with_choice(base(chat, false, id, model, created), &c);
    if (chat) {
        cJSON *m = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddItemToObject(m, "content", string_n(j->text, j->text_len));
    } else {
        cJSON_AddItemToObject(c, "text", string_n(j->text, j->text_len));
    }
    add_logprobs(c, chat, j, 0, j->n_lp);
    add_finish(c, j->finish);
    add_usage(o, j);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *openai_chunk(bool chat, const char *id, const char *model, long created, const char *text, size_t len,
                   vkllm_finish_reason finish, bool first, const job *usage_of, const job *lp_of, size_t lp_from,
                   size_t lp_to)
{
    cJSON *c, *o = with_choice(base(chat, true, id, model, created), &c);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (first) cJSON_AddStringToObject(d, "role", "assistant");
        if (len || !finish) cJSON_AddItemToObject(d, "content", string_n(text, len));
    } else {
        cJSON_AddItemToObject(c, "text", string_n(text, len));
    }
    add_logprobs(c, chat, lp_of, lp_from, lp_to);
    add_finish(c, finish);
    if (usage_of) add_usage(o, usage_of);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json) return NULL;
    size_t n = strlen(json) + 9;
    char *s = malloc(n);
    if (s) snprintf(s, n, "data: %s\n\n", json);
    free(json);
    return s;
}

char *openai_error(const char *message, const char *type, const char *code)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
