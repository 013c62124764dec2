#include "ref_attention.h"

#include <math.h>
#include <stdlib.h>

#include "quant/quant.h"

void ref_shuffled_page_table(th_rng *rng, const ops_kv_layout *kv, int32_t *table)
{
    uint32_t n = kv->n_seqs * kv->max_pages_per_seq;
    int32_t *pages = malloc(sizeof *pages * kv->n_pages);
    assert_non_null(pages);
    assert_true(kv->n_pages >= n);
    for (uint32_t i = 0; i < kv->n_pages; i++) pages[i] = (int32_t)i;
    for (uint32_t i = kv->n_pages - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(th_next(rng) % (i + 1));
        int32_t swap = pages[i];
        pages[i] = pages[j];
        pages[j] = swap;
    }
    for (uint32_t i = 0; i < n; i++) table[i] = pages[i];
    free(pages);
}

void ref_kv_store(const ops_kv_layout *kv, const int32_t *table, void *cache, uint32_t seq, uint32_t pos,
                  const float *row)
{
    uint32_t page = (uint32_t)table[seq * kv->max_pages_per_seq + pos / kv->page_size];
    for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
        size_t at = (((size_t)page * kv->n_kv_heads + h) * kv->page_size + pos % kv->page_size) * kv->head_dim;
        const float *src = row + (size_t)h * kv->head_dim;
        if (kv->k_type == OPS_KV_F16)
            th_f32_to_f16(src, (uint16_t *)cache + at, kv->head_dim);
        else
            memcpy((float *)cache + at, src, sizeof(float) * kv->head_dim);
    }
}

void ref_kv_store_typed(const ops_kv_layout *kv, ops_kv_type type, const int32_t *table, void *cache, uint32_t seq,
                        uint32_t pos, const float *row, float *decoded)
{
    uint32_t n = kv->n_kv_heads * kv->head_dim;
    if (!ops_kv_type_quantized(type)) {
        ops_kv_layout plain = *kv;
        plain.k_type = plain.v_type = type;
        ref_kv_store(&plain, table, cache, seq, pos, row);
        if (decoded && type == OPS_KV_F16) {
            uint16_t *h = malloc(sizeof *h * n);
            assert_non_null(h);
            th_f32_to_f16(row, h, n);
            th_f16_to_f32(h, decoded, n);
            free(h);
        } else if (decoded) {
            memcpy(decoded, row, sizeof *decoded * n);
        }
        return;
    }
    assert_true(n % 32 == 0);
    quant_type qt = type == OPS_KV_Q8_0 ? QUANT_Q8_0 : QUANT_Q4_0;
    size_t block = quant_row_size(qt, 32), qs = block - 2, n_blocks = n / 32;
    size_t rec_words = n_blocks * qs / 4 + (n_blocks + 1) / 2;
    uint8_t *blocks = malloc(block * n_blocks);
    assert_non_null(blocks);
    th_check_status(quant_quantize_row(qt, row, blocks, n), "quantize K/V row");
    if (decoded) th_check_status(quant_dequantize_row(qt, blocks, decoded, n), "dequantize K/V row");
    uint32_t page = (uint32_t)table[seq * kv->max_pages_per_seq + pos / kv->page_size];
    uint8_t *rec = (uint8_t *)cache + ((size_t)page * kv->page_size + pos % kv->page_size) * rec_words * 4;
    uint16_t *scales = (uint16_t *)(rec + n_blocks * qs);
    memset(rec, 0, rec_words * 4);
    for (size_t b = 0; b < n_blocks; b++) {
        memcpy(&scales[b], blocks + b * block, 2); /* ggml's block: the f16 scale first, then the quants */
        memcpy(rec + b * qs, blocks + b * block + 2, qs);
    }
    free(blocks);
}

void ref_hadamard_segments(float *v, uint32_t n, uint32_t r)
{
    for (uint32_t h = 1; h < r; h *= 2)
        for (uint32_t i = 0; i < n; i++)
            if (!(i & h)) {
                float a = v[i], b = v[i + h];
                v[i] = a + b;
                v[i + h] = a - b;
            }
    uint32_t lg = 0;
    while ((1u << lg) < r) lg++;
    float s = 1.0f / (float)(1u << (lg / 2));
    for (uint32_t i = 0; i < n; i++) {
        v[i] *= s;
        if (lg & 1) v[i] *= 0.70710678118654752f;
    }
}

uint32_t ref_rotation_segment(uint32_t head_dim)
{
    uint32_t low = head_dim & (~head_dim + 1u);
    return low < 32 ? low : 32;
}

void ref_key_center_row(const float *center, uint32_t pairs, uint32_t n_kv_heads, uint32_t head_dim, uint32_t n_rot,
                        double freq_base, double freq_scale, uint32_t pos, uint32_t r, float *row)
{
    for (uint32_t i = 0; i < n_kv_heads * head_dim; i++) row[i] = 0;
    for (uint32_t h = 0; h < n_kv_heads; h++)
        for (uint32_t i = 0; i < pairs; i++) {
            uint32_t j = n_rot / 2 - pairs + i;
            double theta = pos * pow(freq_base, -2.0 * j / n_rot) * freq_scale, c = cos(theta), s = sin(theta);
            double x = center[(h * pairs + i) * 2], y = center[(h * pairs + i) * 2 + 1];
            row[h * head_dim + 2 * j] = (float)(x * c - y * s);
            row[h * head_dim + 2 * j + 1] = (float)(x * s + y * c);
        }
    if (r) ref_hadamard_segments(row, n_kv_heads * head_dim, r);
}

void ref_attention(const float *q, const float *k, const float *v, uint32_t context, uint32_t n_heads,
                   uint32_t n_kv_heads, uint32_t head_dim, double scale, float *out)
{
    double *score = malloc(sizeof *score * context);
    double *acc = malloc(sizeof *acc * head_dim);
    assert_non_null(score);
    assert_non_null(acc);
    uint32_t group = n_heads / n_kv_heads;
    for (uint32_t h = 0; h < n_heads; h++) {
        const float *qh = q + (size_t)h * head_dim;
        uint32_t kvh = h / group;
        double max = -INFINITY, sum = 0;
        for (uint32_t j = 0; j < context; j++) {
            const float *kj = k + ((size_t)j * n_kv_heads + kvh) * head_dim;
            double dot = 0;
            for (uint32_t d = 0; d < head_dim; d++) dot += (double)qh[d] * kj[d];
            score[j] = dot * scale;
            if (score[j] > max) max = score[j];
        }
        for (uint32_t d = 0; d < head_dim; d++) acc[d] = 0;
        for (uint32_t j = 0; j < context; j++) {
            double w = exp(score[j] - max);
            sum += w;
            const float *vj = v + ((size_t)j * n_kv_heads + kvh) * head_dim;
            for (uint32_t d = 0; d < head_dim; d++) acc[d] += w * vj[d];
        }
        for (uint32_t d = 0; d < head_dim; d++) out[(size_t)h * head_dim + d] = (float)(acc[d] / sum);
    }
    free(score);
    free(acc);
}
