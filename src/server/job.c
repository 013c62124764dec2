/* A server request's memory: created by an HTTP thread, freed by whoever lets go of it last (engine.c's
 * reference count).  On its own so that the OpenAI parser's fuzz target can make and free jobs without an engine. */
#include <stdlib.h>

#include "engine.h"

job *job_new(void)
{
    job *j = calloc(1, sizeof *j);
    if (j) {
        j->params = vkllm_request_default_params();
        j->refs = 1;
    }
    return j;
}

void job_free(job *j)
{
    free(j->prompt);
    for (size_t i = 0; i < j->n_messages; i++) {
        free((char *)j->messages[i].role);
        free((char *)j->messages[i].content);
    }
    free(j->messages);
    for (uint32_t i = 0; j->stop && i < j->params.n_stop; i++) free(j->stop[i]);
    free(j->stop);
    free(j->text);
    for (size_t i = 0; i < j->n_lp; i++) {
        free(j->lp[i].piece);
        for (uint32_t k = 0; k < j->lp[i].n_top; k++) free(j->lp[i].top_piece[k]);
    }
    free(j->lp);
    free(j);
}
