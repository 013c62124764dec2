/* vkllm serve: the OpenAI-compatible server (src/server/, docs/serving.md); built when libmicrohttpd and cJSON
 * are installed (scripts/install-deps.sh). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "replicas.h"
#include "server/server.h"

static const char usage_text[] =
    "usage: vkllm serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [--parallel N] [--ctx N] [--kv TYPE]\n"
    "                   [--kv-k TYPE] [--kv-v TYPE] [--kv-rotate on|off] [--kv-center on|off]\n"
    "                   [--kv-pages N] [--api-key KEY] [--template NAME] [--max-waiting N] [--device INDEX|NAME]\n"
    "                   [--max-tokens N] [--no-prefix-cache] [--threads N (as run's)] [--replicas N]\n"
    "  POST /v1/completions, /v1/chat/completions (\"stream\": true for server-sent events); GET /v1/models,\n"
    "  /health, /metrics.  --port 0 picks a free port (printed).  SIGINT/SIGTERM stop it.\n"
    "  --replicas N: N copies of the model, each with its own scheduler, thread and device, sharing --parallel and\n"
    "  --kv-pages; each request goes to the least loaded.  On a CPU device without worker threads (lavapipe,\n"
    "  --threads 1) each copy computes on a core of its own; N times the model's memory.  Default: one per core\n"
    "  (at most --parallel) where the model runs without worker threads, else 1.\n";

static void usage(FILE *out) { fputs(usage_text, out); }

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) { (void)sig, stop_flag = 1; }

int cli_serve(int argc, char **argv)
{
    server_options o = {.port = 8080, .parallel = 8, .default_max_tokens = 256};
    vkllm_model_params mp = vkllm_model_default_params();
    uint32_t replicas = 0; /* cli_auto_replicas */
    char err[256] = "";
    bool off = false;
    cli_options paths = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int64_t n = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_parse_exit("serve", CLI_PARSE_HELP, "", usage);
        if (!strcmp(a, "--no-prefix-cache")) {
            o.no_prefix_cache = 1;
            continue;
        }
        if (i + 1 >= argc) {
            snprintf(err, sizeof err, "%s needs a value (or is unknown)", a);
            return cli_parse_exit("serve", CLI_PARSE_ERROR, err, usage);
        }
        const char *v = argv[++i];
#define INT(lo, hi) (cli_parse_integer(a, v, lo, hi, &n, err, sizeof err) == CLI_PARSE_OK)
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) paths.model = v;
        else if (!strcmp(a, "--host")) o.host = v;
        else if (!strcmp(a, "--api-key")) o.api_key = v;
        else if (!strcmp(a, "--template")) o.chat_template = v;
        else if (!strcmp(a, "--device")) mp.device = v;
        else if (!strcmp(a, "--port") && INT(0, 65535)) o.port = (uint16_t)n;
        else if (!strcmp(a, "--parallel") && INT(1, 256)) o.parallel = (uint32_t)n;
        else if (!strcmp(a, "--threads") && INT(0, 1024)) mp.cpu_threads = (int)n;
        else if (!strcmp(a, "--replicas") && INT(1, CLI_MAX_REPLICAS)) replicas = (uint32_t)n;
        else if ((!strcmp(a, "--ctx") || !strcmp(a, "-c")) && INT(0, CLI_MAX_CTX)) o.n_ctx = (uint32_t)n;
        else if (!strcmp(a, "--kv-pages") && INT(0, 1 << 24)) o.n_kv_pages = (uint32_t)n;
        else if (!strcmp(a, "--max-waiting") && INT(0, 1 << 20)) o.max_waiting = (uint32_t)n;
        else if (!strcmp(a, "--max-tokens") && INT(1, 1 << 24)) o.default_max_tokens = (uint32_t)n;
        else if ((!strcmp(a, "--kv") || !strcmp(a, "--kv-k") || !strcmp(a, "--kv-v")) &&
                 cli_parse_kv_option(a, v, &o.type_k, &o.type_v, err, sizeof err) == CLI_PARSE_OK) {
        } else if ((!strcmp(a, "--kv-rotate") || !strcmp(a, "--kv-center")) &&
                   cli_parse_kv_on_off(a, v, &off, err, sizeof err) == CLI_PARSE_OK) {
            *(!strcmp(a, "--kv-rotate") ? &o.no_rotate_k : &o.no_center_k) = off;
        }
        else {
            if (!err[0]) snprintf(err, sizeof err, "unknown flag or bad value: %s %s", a, v);
            return cli_parse_exit("serve", CLI_PARSE_ERROR, err, usage);
        }
#undef INT
    }
    if (replicas > o.parallel) {
        snprintf(err, sizeof err, "--replicas %u leaves a replica without requests of --parallel %u", replicas,
                 o.parallel);
        return cli_parse_exit("serve", CLI_PARSE_ERROR, err, usage);
    }
    o.model_path = cli_model_path(&paths);
    if (!o.model_path) return 1;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    vkllm_model *models[CLI_MAX_REPLICAS];
    uint32_t n_models = 0;
    vkllm_status st = cli_load_replicas(o.model_path, &mp, replicas, o.parallel, models, &n_models);
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm serve: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        return 1;
    }
    int rc = server_run(&o, models, n_models, &stop_flag);
    cli_free_replicas(models, n_models);
    return rc;
}
