/* SPIR-V rewriting for the cooperative-matrix shaders: SPV_NV_cooperative_matrix -> SPV_KHR_cooperative_matrix.
 *
 * Debian 12's glslang (11.13) compiles GL_NV_cooperative_matrix but not GL_KHR_cooperative_matrix, so the KHR
 * variants are made from the NV binaries at build time (tools/spirv_coopmat_khr.c).  The two extensions differ
 * only in a few encodings:
 *   - capability CooperativeMatrixNV (5357) -> CooperativeMatrixKHR (6022), extension string renamed;
 *   - OpTypeCooperativeMatrixNV (5358: result, component, scope, rows, cols) -> OpTypeCooperativeMatrixKHR
 *     (4456: ..., use), where the use (an id of a uint constant: 0 MatrixA, 1 MatrixB, 2 Accumulator) is read
 *     off the dimensions: the shaders size every matrix with the specialization constants M, N and K (told
 *     apart by their SpecId), so rows x cols is (M, K) for A, (K, N) for B and (M, N) for the accumulator;
 *   - OpCooperativeMatrixLoadNV (5359: type, result, pointer, stride, column-major bool[, memory access]) ->
 *     OpCooperativeMatrixLoadKHR (4457: type, result, pointer, layout uint id, stride[, memory access]), and
 *     the store (5360 -> 4458) likewise; the layout id is the uint constant 1 (column-major) or 0;
 *   - OpCooperativeMatrixMulAddNV / LengthNV (5361 / 5362) -> ...KHR (4459 / 4460), same operands.
 * The uint constants 0, 1 and 2 these operands name are added right after the 32-bit unsigned int type (before
 * any cooperative-matrix type uses them), raising the id bound by 3. */
#ifndef VKLLM_TOOLS_SPIRV_COOPMAT_H
#define VKLLM_TOOLS_SPIRV_COOPMAT_H

#include <stddef.h>
#include <stdint.h>

/* Opcodes, capabilities and enumerants involved (SPIR-V registry, spirv.core.grammar.json). */
enum {
    SPV_MAGIC = 0x07230203u,
    SPV_OP_EXTENSION = 10,
    SPV_OP_CAPABILITY = 17,
    SPV_OP_TYPE_BOOL = 20,
    SPV_OP_TYPE_INT = 21,
    SPV_OP_CONSTANT_TRUE = 41,
    SPV_OP_CONSTANT_FALSE = 42,
    SPV_OP_CONSTANT = 43,
    SPV_OP_SPEC_CONSTANT_TRUE = 48,
    SPV_OP_SPEC_CONSTANT_FALSE = 49,
    SPV_OP_FUNCTION = 54,
    SPV_OP_DECORATE = 71,
    SPV_DECORATION_SPEC_ID = 1,
    SPV_CAP_COOPMAT_NV = 5357,
    SPV_CAP_COOPMAT_KHR = 6022,
    SPV_OP_TYPE_COOPMAT_NV = 5358,
    SPV_OP_COOPMAT_LOAD_NV = 5359,
    SPV_OP_COOPMAT_STORE_NV = 5360,
    SPV_OP_COOPMAT_MULADD_NV = 5361,
    SPV_OP_COOPMAT_LENGTH_NV = 5362,
    SPV_OP_TYPE_COOPMAT_KHR = 4456,
    SPV_OP_COOPMAT_LOAD_KHR = 4457,
    SPV_OP_COOPMAT_STORE_KHR = 4458,
    SPV_OP_COOPMAT_MULADD_KHR = 4459,
    SPV_OP_COOPMAT_LENGTH_KHR = 4460,
    SPV_COOPMAT_USE_A = 0,
    SPV_COOPMAT_USE_B = 1,
    SPV_COOPMAT_USE_ACCUMULATOR = 2,
    SPV_COOPMAT_ROW_MAJOR = 0,
    SPV_COOPMAT_COLUMN_MAJOR = 1,
};

#define SPV_EXT_COOPMAT_NV "SPV_NV_cooperative_matrix"
#define SPV_EXT_COOPMAT_KHR "SPV_KHR_cooperative_matrix"

/* SpecIds of the constants that size the matrices: A is M x K, B is K x N, the accumulator M x N. */
typedef struct spv_coopmat_dims {
    uint32_t spec_m, spec_n, spec_k;
} spv_coopmat_dims;

/* Rewrites the NV module in[0..n_words) into a KHR module in a new malloc'd array (*out, *out_words; the caller
 * frees it).  Returns 0, or -1 with a reason in err (nothing allocated): not SPIR-V, truncated, an NV
 * instruction this rewriter does not know (e.g. OpCooperativeMatrixTransposeNV), a column-major operand that
 * is not a constant bool, a matrix whose dimensions are not the M/N/K pairs above, no 32-bit uint type. */
int spv_coopmat_nv_to_khr(const uint32_t *in, size_t n_words, const spv_coopmat_dims *dims, uint32_t **out,
                          size_t *out_words, char *err, size_t err_size);

/* Reads the literal string of an OpExtension at words[1..wc) into buf (NUL-terminated, truncated to size);
 * returns its length or -1 if the words hold no terminating NUL. */
int spv_literal_string(const uint32_t *words, uint32_t wc, char *buf, size_t size);

#endif
