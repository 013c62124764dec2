#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static size_t dtype_bytes(th_dtype t) { return t == TH_F16 ? 2 : 4; }

static void default_init(th_dtype type, void *data, size_t n, th_rng *rng)
{
    if (type == TH_I32) {
        memset(data, 0, n * 4);
        return;
    }
    float *tmp = malloc(n * sizeof *tmp);
    assert_non_null(tmp);
    th_fill_uniform(rng, tmp, n, -1.0f, 1.0f);
    if (type == TH_F32) memcpy(data, tmp, n * 4);
    else th_f32_to_f16(tmp, data, n);
    free(tmp);
}

static void shape_text(const th_shape *s, char *buf, size_t size)
{
    snprintf(buf, size, "[%u %u %u %u %u %u | %g %g %g %g | %d]", s->d[0], s->d[1], s->d[2], s->d[3], s->d[4],
             s->d[5], (double)s->f[0], (double)s->f[1], (double)s->f[2], (double)s->f[3], s->flag);
}

static void check_one(const th_op *op, const th_shape *s, uint64_t seed)
{
    size_t in_n[TH_MAX_INPUTS] = {0}, out_n = 0;
    op->sizes(s, in_n, &out_n);
    th_rng rng = {seed};
    void *in[TH_MAX_INPUTS] = {0};
    vkr_buffer in_buf[TH_MAX_INPUTS] = {0};
    vkr_range in_range[TH_MAX_INPUTS] = {0};
    for (uint32_t i = 0; i < op->n_inputs; i++) {
        size_t bytes = in_n[i] * dtype_bytes(op->input_type[i]);
        in[i] = calloc(in_n[i] ? in_n[i] : 1, dtype_bytes(op->input_type[i]));
        assert_non_null(in[i]);
        if (op->init) op->init(s, i, in[i], in_n[i], &rng);
        else default_init(op->input_type[i], in[i], in_n[i], &rng);
        in_buf[i] = th_upload(in[i], bytes ? bytes : 4);
        in_range[i] = vkr_whole(&in_buf[i]);
    }
    size_t out_bytes = out_n * dtype_bytes(op->output_type);
    /* NaN-poisoned, so an element the op forgets to write fails the comparison. */
    vkr_buffer out_buf = th_alloc((out_bytes + 3) / 4 * 4);
    th_check_status(vkr_fill(th_device(), &out_buf, 0, out_buf.size, 0x7fc07fc0u), "poison output");

    vkr_sequence *seq = th_begin();
    th_check_status(op->record(th_ops(), seq, s, in_range, vkr_whole(&out_buf)), op->name);
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    vkr_sequence_destroy(seq);

    float *ref = calloc(out_n ? out_n : 1, sizeof *ref);
    float *got = calloc(out_n ? out_n : 1, sizeof *got);
    void *raw = calloc(out_n ? out_n : 1, dtype_bytes(op->output_type));
    assert_true(ref && got && raw);
    th_download(&out_buf, raw, out_bytes);
    if (op->output_type == TH_F32) memcpy(got, raw, out_n * 4);
    else if (op->output_type == TH_F16) th_f16_to_f32(raw, got, out_n);
    else for (size_t i = 0; i < out_n; i++) got[i] = (float)((const int32_t *)raw)[i];
    op->reference(s, (const void *const *)in, ref);

    char text[160];
    shape_text(s, text, sizeof text);
    double e = th_nmse(ref, got, out_n);
    printf("  %-16s %-60s nmse %.3g\n", op->name, text, e);
    char what[256];
    snprintf(what, sizeof what, "%s %s", op->name, text);
    th_assert_nmse(what, ref, got, out_n, op->max_nmse);

    free(ref), free(got), free(raw);
    th_free(&out_buf);
    for (uint32_t i = 0; i < op->n_inputs; i++) {
        th_free(&in_buf[i]);
        free(in[i]);
    }
}

void th_check_op(const th_op *op, const th_shape *shapes, size_t n_shapes)
{
    for (size_t i = 0; i < n_shapes; i++) check_one(op, &shapes[i], 1000 + i);
}

void th_check_op_wg(const th_op *op, const th_shape *shapes, size_t n_shapes, uint32_t wg)
{
    ops_context *ops = th_ops();
    const op_tuning *saved = ops->tuning;
    static op_tuning tuning; /* static: stays valid if a failed check leaves it installed */
    tuning = *saved;
    tuning.elementwise_wg = tuning.row_wg = wg;
    ops->tuning = &tuning;
    printf("  (workgroup size %u)\n", wg);
    th_check_op(op, shapes, n_shapes);
    ops->tuning = saved;
}
