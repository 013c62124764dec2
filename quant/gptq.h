/* GPTQ (Frantar et al., 2022) onto the GGUF block formats, on the CPU.  For a linear layer y = W x whose inputs
 * have the second moment H = sum over calibration tokens of x x^T, the columns (inputs) of W are rounded one at a
 * time, each one's rounding error spread over the columns not yet rounded through the Cholesky factor of H^-1, so
 * that the layer's output error ||X W^T - X Q^T|| is what is minimised rather than the weights' own error.
 * Blockwise with lazy batch updates (128 columns, or the format's block if larger), damping of a fraction of
 * mean(diag H), optional act-order (columns by descending diag H).
 *
 * The result is a standard GGUF tensor: each row's block scales (and K-quant sub-block scales and mins) are chosen
 * by the format's own quantizer (importance-weighted when importance is given) when GPTQ reaches the block, from
 * the weights as updated so far (with act-order: from the original weights, before any column moves), and held
 * while GPTQ rounds each weight to that block's grid.  Then, for the formats whose block parameters are f16 values
 * (Q4_0, Q5_0, Q8_0: d; Q4_1, Q5_1: d and m), each row's parameters are refit to the codes GPTQ chose: the least
 * squares of the row's output error (w - q)^T H (w - q) over its blocks' parameters at once (H couples the blocks),
 * kept where, rounded to f16, they lower it.  GPTQ chose each scale from weights its later error feedback moved,
 * before the block's codes; the K-quants' nested sub-block scales are left as chosen.  Optionally GPTQ then runs
 * again with the refit parameters held (the codes chosen anew for them), refit again, and so on: each row keeps
 * the round with its lowest output error.  Optionally, last, rounds of coordinate descent on the codes (QuantEase,
 * Behdin et al., 2023: a code moves a step wherever that lowers the row's output error, every column revisited
 * with all the others' rounding known), each refit again, a row again keeping its best round. */
#ifndef VKLLM_QUANT_GPTQ_H
#define VKLLM_QUANT_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/error.h"

typedef struct quant_gptq_params {
    double damp;        /* added to diag(H): damp * mean(diag H); 0.01 in the paper */
    bool act_order;     /* columns by descending diag(H) */
    uint32_t batch;     /* lazy-batch width in columns; 0: 128 */
    bool no_refit;      /* keep the scales chosen before rounding (see below); for comparisons */
    uint32_t rounds;    /* after the refit, this many more rounds of GPTQ with the refit parameters held, each
                         * refit again; a row keeps its best round (refit formats only) */
    uint32_t descent;   /* then this many rounds of coordinate descent on the codes (every format), each followed
                         * by the refit; a row keeps its best round.  Costs about a GPTQ run per round */
} quant_gptq_params;

/* The factorised Hessian of one input (shared by every weight reading it: Q/K/V, gate/up). */
typedef struct quant_gptq_hessian quant_gptq_hessian;

/* h: cols x cols, symmetric (any positive multiple of X^T X), not modified.  A column never seen (diag 0) is
 * treated as llama.cpp's GPTQ ports do: its weights are zeroed before rounding.  Fails if H stays indefinite after
 * raising the damping tenfold three times. */
vkllm_status quant_gptq_prepare(const double *h, uint64_t cols, const quant_gptq_params *params,
                                quant_gptq_hessian **out);
void quant_gptq_free(quant_gptq_hessian *hessian);

/* The float target of sequential GPTQ (GPTAQ: Li et al., 2025, "asymmetric calibration"): a weight W that reads
 * x_q in the model quantized so far but should give what it gives the unquantized model's x at the same token is
 * moved to the least-squares fit of that target, W' = W + W (C - H) (H + damp mean(diag H) I)^-1 with
 * H = sum x_q x_q^T and C = sum x x_q^T, so that ||W X - Q X_q||^2 = ||(W' - Q) X_q||^2 + a constant: GPTQ on W'
 * with H then minimises the error against the unquantized model's output, not against W's own on x_q.  With
 * x = x_q, W' = W.  Prepared once per input (the damped H factorised), shared by the weights reading it. */
typedef struct quant_gptq_target quant_gptq_target;

/* h, cross: cols x cols (h symmetric; cross[a][b] = sum x[a] x_q[b]), not copied: they must outlive the target. */
vkllm_status quant_gptq_target_prepare(const float *h, const float *cross, uint64_t cols, double damp,
                                       quant_gptq_target **out);
void quant_gptq_target_free(quant_gptq_target *target);
/* w: rows x cols (cols the target's), moved in place. */
vkllm_status quant_gptq_retarget(const quant_gptq_target *target, float *w, uint64_t rows);

/* True for the formats GPTQ can write: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K. */
bool quant_gptq_supports(uint32_t type);

/* w: rows x cols F32, row-major (a GGUF weight: ne[0] = cols inputs, ne[1] = rows outputs); used as scratch (it
 * is overwritten).  importance: NULL or cols floats (an imatrix entry) for the scale searches.  out: rows rows of
 * quant_row_size(type, cols) bytes. */
vkllm_status quant_gptq_quantize(uint32_t type, float *w, uint64_t rows, uint64_t cols,
                                 const quant_gptq_hessian *hessian, const float *importance, void *out);

#endif
