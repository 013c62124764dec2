/* Requantizing GGUF files: every tensor gets the type quant_recipe_tensor_type chooses, from any type
 * vkllm can decode (dequantized to F32, then quantized).  Metadata is copied; general.file_type and
 * general.quantization_version are set as llama-quantize sets them.  Tensors keep their order; the output
 * is written one row at a time. */
#ifndef VKLLM_QUANTIZE_H
#define VKLLM_QUANTIZE_H

#include "gguf/gguf.h"
#include "tools/progress.h"
#include "imatrix_file.h"
#include "quant_recipe.h"
#include "quantize_calib.h"

/* What the recipe's rules need, from the file's metadata and tensor names. */
vkllm_status quantize_model_shape(const gguf_file *file, quant_model_shape *out);

/* progress (optional) counts bytes written. */
vkllm_status quantize_file(const char *in_path, const char *out_path, const quant_recipe *recipe,
                           vkllm_progress_fn progress, void *progress_ctx);

/* With an importance matrix (llama-quantize --imatrix): every tensor it has an entry for is quantized with
 * that entry's importance (quant_quantize_row_weighted), the recipe's imatrix rules apply, and the file
 * records quantize.imatrix.* as llama-quantize does.  An entry whose size is not the tensor's row length
 * (token_embd aside), or an imatrix naming none of the model's tensors, is an error: it was made for another
 * model.  imatrix_path is what quantize.imatrix.file records. */
vkllm_status quantize_file_imatrix(const char *in_path, const char *out_path, const quant_recipe *recipe,
                                   const imatrix_data *imatrix, const char *imatrix_path,
                                   vkllm_progress_fn progress, void *progress_ctx);

/* Everything: an optional imatrix as above, and an optional calibrated method (calib: GPTQ with the input
 * file's own activations on a text, quantize_calib.h; NULL: round to nearest). */
typedef struct quantize_options {
    const imatrix_data *imatrix;
    const char *imatrix_path;
    const quant_calib_options *calib;
    vkllm_progress_fn progress;
    void *progress_ctx;
} quantize_options;
vkllm_status quantize_file_ex(const char *in_path, const char *out_path, const quant_recipe *recipe,
                              const quantize_options *options);

#endif
