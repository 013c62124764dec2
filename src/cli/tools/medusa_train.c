/* vkllm medusa-train: Medusa heads trained on the model's own output (src/medusa/train.c). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "medusa/medusa.h"
#include "options.h"

static void medusa_train_usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm medusa-train [-m M.gguf] -o HEADS.gguf [--heads 4] [--tokens N] [--seed S] [--calib TEXT]\n"
            "                          [--epochs 3] [--batch 64] [--lr 0.003] [--temp 0] [--device D]\n"
            "  self-distillation: the model generates N tokens of its own text on the GPU (greedy, or sampled at --temp,\n"
            "  continuing pieces of TEXT, else BOS), and K heads learn on the CPU to predict its tokens 2..K+1\n"
            "  ahead from the last hidden state (Adam on cross-entropy, the base output matrix frozen); a tenth of\n"
            "  the text is held out for the accuracy reported.  The same seed gives the same file.\n");
}

typedef struct train_view {
    bool tty;
    double last;   /* seconds of the last redraw */
    double start;
} train_view;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_top1(const medusa_train_report *r)
{
    fprintf(stderr, " top-1");
    for (uint32_t i = 0; i < r->n_heads; i++) fprintf(stderr, " %.3f", (double)r->top1[i]);
}

/* A bar redrawn at most 10 times a second on a terminal; elsewhere one line per epoch. */
static void on_progress(void *user, const medusa_train_report *r)
{
    train_view *v = user;
    double t = now_s();
    if (r->phase == 2) {
        if (v->tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "epoch %u/%u: held-out loss %.4f", r->epoch, r->epochs, (double)r->loss);
        print_top1(r);
        fprintf(stderr, " (%.1f s)\n", t - v->start);
        return;
    }
    if (!v->tty || (t - v->last < 0.1 && r->done != r->total)) return;
    v->last = t;
    int width = 30, filled = r->total ? (int)((uint64_t)width * r->done / r->total) : 0;
    fprintf(stderr, "\r\033[K%s [%.*s%*s] %llu/%llu", r->phase == 0 ? "generating" : "training",
            filled, "##############################", width - filled, "", (unsigned long long)r->done,
            (unsigned long long)r->total);
    if (r->phase == 1) {
        fprintf(stderr, " epoch %u/%u loss %.4f", r->epoch, r->epochs, (double)r->loss);
        print_top1(r);
    }
}

int cli_medusa_train(int argc, char **argv)
{
    cli_medusa_train_options o;
    char err[256];
    cli_parse_result parsed = cli_parse_medusa_train_options(argc, argv, &o, err, sizeof err);
    if (parsed != CLI_PARSE_OK) return cli_parse_exit("medusa-train", parsed, err, medusa_train_usage);
    cli_options ro = {.model = o.model};
    const char *path = cli_model_path(&ro);
    if (!path) return 1;
    vkllm_model_params mp = vkllm_model_default_params();
    mp.device = o.device;
    medusa_train_params p = medusa_train_default_params();
    p.n_heads = o.heads;
    p.n_tokens = o.tokens;
    p.seed = (uint32_t)o.seed;
    p.epochs = o.epochs;
    p.batch = o.batch;
    p.lr = o.lr;
    p.temperature = o.temp;
    p.calib = o.calib;
    train_view view = {.tty = isatty(2), .start = now_s()};
    medusa_train_report final = {0};
    vkllm_status st = medusa_train(path, &mp, &p, o.out, on_progress, &view, &final);
    if (view.tty) fprintf(stderr, "\r\033[K");
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm medusa-train: %s: %s\n", vkllm_status_name(st), vkllm_last_error());
        return 1;
    }
    printf("wrote %s: %u heads, %u tokens, %.1f s; held-out top-1", o.out, p.n_heads, p.n_tokens,
           now_s() - view.start);
    for (uint32_t i = 0; i < final.n_heads; i++) printf(" %.3f", (double)final.top1[i]);
    printf("\n");
    return 0;
}
