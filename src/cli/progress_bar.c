#include "progress_bar.h"

#include <stdio.h>
#include <unistd.h>

void progress_bar_init(progress_bar *bar)
{
    *bar = (progress_bar){.enabled = isatty(STDERR_FILENO) != 0, .last_permille = -1};
}

void progress_bar_update(void *ctx, const char *what, uint64_t done, uint64_t total)
{
    progress_bar *bar = ctx;
    if (!bar->enabled || total == 0) return;
    int permille = (int)(done * 1000 / total);
    if (permille == bar->last_permille) return;
    bar->last_permille = permille;
    enum { WIDTH = 30 };
    char cells[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++) cells[i] = i < permille * WIDTH / 1000 ? '#' : '.';
    cells[WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %5.1f%% %8.1f MiB  %-32.32s", cells, permille / 10.0, (double)done / (1 << 20), what);
    fflush(stderr);
    bar->drawn = true;
}

void progress_bar_finish(progress_bar *bar)
{
    if (bar->drawn) fputc('\n', stderr);
    bar->drawn = false;
}
