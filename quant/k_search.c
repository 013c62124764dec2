/* Scale searches of the quantizers.  They follow ggml's make_qx_quants, make_q3_quants, make_qkx2_quants,
 * make_qkx3_quants and make_qp_quants operation for operation: the float expressions keep ggml's order of
 * evaluation, because the chosen levels must match its bytes (with and without importance weights). */
#include "quant_internal.h"

/* Symmetric levels l in [-nmax, nmax-1] for x ~ scale * l, weighted by qw (x^2 when qw is NULL).  Tries 19
 * candidate inverse scales around -nmax/max and keeps the least-squares best; L gets l + nmax. */
float quant_search_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw)
{
    const float max = quant_signed_absmax(n, x);
    if (fabsf(max) < QUANT_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = quant_clamp_int(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; step++) {
        if (step == 0) continue;
        iscale = -(nmax + 0.1f * step) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = quant_clamp_int(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                L[i] = (int8_t)(nmax + quant_clamp_int(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q3_K's variant: start from round(-nmax/max * x), then up to 5 passes of coordinate descent, moving one
 * level at a time when that raises the x^2-weighted fit (sumlx^2 / suml2).  L gets l + nmax. */
float quant_search_symmetric_q3(int n, int nmax, const float *x, int8_t *L)
{
    const float max = quant_signed_absmax(n, x);
    if (fabsf(max) < QUANT_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = quant_clamp_int(quant_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = quant_clamp_int(quant_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Weighted error of x ~ scale * L + min: absolute (use_mad) or squared. */
static float affine_error(int n, const float *x, const float *weights, const uint8_t *L, float scale, float min,
                          bool use_mad)
{
    float error = 0;
    for (int i = 0; i < n; i++) {
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        error += weights[i] * diff;
    }
    return error;
}

/* The search both affine fits share: for nstep+1 inverse scales (rmin + rdelta*step + nmax) / (max - min), min
 * the best fit's so far (as ggml: it moves when a step wins), re-rounds x, solves the weighted least-squares scale and min (min clamped to <= 0) and
 * keeps L, *scale and *min of the lowest error below best_error. */
static void affine_refine(int n, int nmax, const float *x, const float *weights, float sum_w, float sum_x, float max,
                          float rmin, float rdelta, int nstep, bool use_mad, float best_error, uint8_t *L,
                          float *scale, float *min)
{
    uint8_t candidate[32];
    for (int step = 0; step <= nstep; step++) {
        float iscale = (rmin + rdelta * step + nmax) / (max - *min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = quant_clamp_int(quant_nearest_int(iscale * (x[i] - *min)), 0, nmax);
            candidate[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float error = affine_error(n, x, weights, candidate, this_scale, this_min, use_mad);
            if (error < best_error) {
                memcpy(L, candidate, (size_t)n);
                best_error = error;
                *scale = this_scale;
                *min = this_min;
            }
        }
    }
}

/* Affine levels l in [0, nmax] of n <= 32 weights, x ~ scale * l + min with min <= 0.  Starts from the
 * plain range fit, then for nstep+1 inverse scales (rmin + rdelta*step + nmax) / range re-rounds and solves
 * the weighted least-squares scale and min, keeping the lowest error (ggml returns early for nstep < 1;
 * every caller passes more).  Stores -min in *neg_min, returns scale. */
float quant_search_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *neg_min,
                          float rmin, float rdelta, int nstep, bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)quant_clamp_int(quant_nearest_int(iscale * (x[i] - min)), 0, nmax);
    }
    float best_error = affine_error(n, x, weights, L, scale, min, use_mad);

    affine_refine(n, nmax, x, weights, sum_w, sum_x, max, rmin, rdelta, nstep, use_mad, best_error, L, &scale, &min);
    *neg_min = -min;
    return scale;
}

/* make_qkx3_quants: as quant_search_affine, with the importance-weighted quantizers' differences: the
 * first fit's error is kept even when every candidate is worse, max <= min counts as flat, and weights
 * default to x^2.  Stores -min in *neg_min, returns scale. */
float quant_search_affine_weighted(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *neg_min,
                                   float rmin, float rdelta, int nstep, bool use_mad)
{
    float w[32] = {0}; /* the weights, x^2 where none are given */
    for (int i = 0; i < n; i++) w[i] = weights ? weights[i] : x[i] * x[i];
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max <= min) {
        memset(L, 0, (size_t)n);
        *neg_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)quant_clamp_int(quant_nearest_int(iscale * (x[i] - min)), 0, nmax);
    if (nstep >= 1) {
        float best_error = affine_error(n, x, w, L, scale, min, use_mad);
        affine_refine(n, nmax, x, w, sum_w, sum_x, max, rmin, rdelta, nstep, use_mad, best_error, L, &scale, &min);
    }
    *neg_min = -min;
    return scale;
}

/* make_qp_quants: levels l in [0, nmax] for non-negative x ~ scale * l (the sub-block scales and mins of
 * the weighted K-quants), weighted by qw: the best of 9 inverse scales around nmax/max, then up to 5
 * passes of coordinate descent as quant_search_symmetric_q3. */
float quant_search_positive(int n, int nmax, const float *x, uint8_t *L, const float *qw)
{
    float max = 0;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (max < QUANT_GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.0f;
    }
    float iscale = nmax / max;
    /* ggml stores these unclamped into uint8 (they are <= nmax here: x <= max); only the error uses them. */
    for (int i = 0; i < n; i++) L[i] = (uint8_t)quant_nearest_int(iscale * x[i]);
    float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * L[i];
        float w = qw[i];
        best_mse += w * diff * diff;
    }
    for (int step = -4; step <= 4; step++) {
        if (step == 0) continue;
        float iscale_step = (0.1f * step + nmax) / max;
        float scale_step = 1 / iscale_step;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = quant_nearest_int(iscale_step * x[i]);
            if (l > nmax) l = nmax;
            float diff = x[i] - scale_step * l;
            float w = qw[i];
            mse += w * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_step;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = quant_nearest_int(iscale * x[i]);
        if (l > nmax) l = nmax;
        L[i] = (uint8_t)l;
        float w = qw[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = qw[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = quant_nearest_int(x[i] * sl2 / slx);
                if (new_l > nmax) new_l = nmax;
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}
