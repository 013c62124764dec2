/* Type table (ggml's ids, names and block sizes) and the checked entry points: they run the one loop over
 * blocks for the per-block codecs of q_legacy.c and q_k.c, or hand whole rows to half.c's element formats. */
#include <ctype.h>

#include "runtime/error.h"
#include "quant_internal.h"

/* Aligned room for any one block: block codecs work on this, and the loops below copy it to or from the
 * callers' bytes, which may be unaligned (mmapped files). */
typedef union block_scratch {
    block_q4_0 q4_0;
    block_q4_1 q4_1;
    block_q5_0 q5_0;
    block_q5_1 q5_1;
    block_q8_0 q8_0;
    block_q8_1 q8_1;
    block_q2_K q2_K;
    block_q3_K q3_K;
    block_q4_K q4_K;
    block_q5_K q5_K;
    block_q6_K q6_K;
    block_q8_K q8_K;
} block_scratch;

/* A block format sets the block pair, an element format the element pair; unsupported types neither. */
typedef struct quant_codec {
    quant_traits traits;
    quant_quantize_block_fn quantize_block;
    quant_dequantize_block_fn dequantize_block;
    quant_quantize_elements_fn quantize_elements;
    quant_dequantize_elements_fn dequantize_elements;
} quant_codec;

static void f32_copy_in(const float *src, void *dst, uint64_t n) { memcpy(dst, src, n * sizeof(float)); }
static void f32_copy_out(const void *src, float *dst, uint64_t n) { memcpy(dst, src, n * sizeof(float)); }

/* BLOCKS(..., q4_0): struct block_q4_0 and the codecs quant_q4_0_quantize_block / _dequantize_block. */
#define BLOCKS(id, name, elems, suffix)                                                                    \
    [id] = {{name, elems, sizeof(block_##suffix), true},                                                  \
            quant_##suffix##_quantize_block, quant_##suffix##_dequantize_block, NULL, NULL}
#define ELEMENTS(id, name, bytes, q, dq) [id] = {{name, 1, bytes, true}, NULL, NULL, q, dq}
/* Types vkllm recognizes in GGUF files but cannot decode: named so errors can say what was found. */
#define KNOWN_ONLY(id, name, elems, bytes) [id] = {{name, elems, bytes, false}, NULL, NULL, NULL, NULL}

/* Indexed by ggml type id; entries without a name are ids ggml never used or retired. */
static const quant_codec codecs[QUANT_TYPE_LIMIT] = {
    ELEMENTS(QUANT_F32, "F32", 4, f32_copy_in, f32_copy_out),
    ELEMENTS(QUANT_F16, "F16", 2, quant_f16_quantize, quant_f16_dequantize),
    ELEMENTS(QUANT_BF16, "BF16", 2, quant_bf16_quantize, quant_bf16_dequantize),
    BLOCKS(QUANT_Q4_0, "Q4_0", QUANT_QK_LEGACY, q4_0),
    BLOCKS(QUANT_Q4_1, "Q4_1", QUANT_QK_LEGACY, q4_1),
    BLOCKS(QUANT_Q5_0, "Q5_0", QUANT_QK_LEGACY, q5_0),
    BLOCKS(QUANT_Q5_1, "Q5_1", QUANT_QK_LEGACY, q5_1),
    BLOCKS(QUANT_Q8_0, "Q8_0", QUANT_QK_LEGACY, q8_0),
    BLOCKS(QUANT_Q8_1, "Q8_1", QUANT_QK_LEGACY, q8_1),
    BLOCKS(QUANT_Q2_K, "Q2_K", QUANT_QK_K, q2_K),
    BLOCKS(QUANT_Q3_K, "Q3_K", QUANT_QK_K, q3_K),
    BLOCKS(QUANT_Q4_K, "Q4_K", QUANT_QK_K, q4_K),
    BLOCKS(QUANT_Q5_K, "Q5_K", QUANT_QK_K, q5_K),
    BLOCKS(QUANT_Q6_K, "Q6_K", QUANT_QK_K, q6_K),
    BLOCKS(QUANT_Q8_K, "Q8_K", QUANT_QK_K, q8_K),
    KNOWN_ONLY(16, "IQ2_XXS", 256, 66),
    KNOWN_ONLY(17, "IQ2_XS", 256, 74),
    KNOWN_ONLY(18, "IQ3_XXS", 256, 98),
    KNOWN_ONLY(19, "IQ1_S", 256, 50),
    KNOWN_ONLY(20, "IQ4_NL", 32, 18),
    KNOWN_ONLY(21, "IQ3_S", 256, 110),
    KNOWN_ONLY(22, "IQ2_S", 256, 82),
    KNOWN_ONLY(23, "IQ4_XS", 256, 136),
    KNOWN_ONLY(24, "I8", 1, 1),
    KNOWN_ONLY(25, "I16", 1, 2),
    KNOWN_ONLY(26, "I32", 1, 4),
    KNOWN_ONLY(27, "I64", 1, 8),
    KNOWN_ONLY(28, "F64", 1, 8),
    KNOWN_ONLY(29, "IQ1_M", 256, 56),
    KNOWN_ONLY(34, "TQ1_0", 256, 54),
    KNOWN_ONLY(35, "TQ2_0", 256, 66),
    KNOWN_ONLY(39, "MXFP4", 32, 17),
};

/* The importance-weighted quantizers; the other types ignore importance, as ggml's (Q8_0, F16, ...). */
static const quant_quantize_block_weighted_fn weighted_codecs[QUANT_TYPE_LIMIT] = {
    [QUANT_Q4_0] = quant_q4_0_quantize_block_weighted, [QUANT_Q4_1] = quant_q4_1_quantize_block_weighted,
    [QUANT_Q5_0] = quant_q5_0_quantize_block_weighted, [QUANT_Q5_1] = quant_q5_1_quantize_block_weighted,
    [QUANT_Q2_K] = quant_q2_K_quantize_block_weighted, [QUANT_Q3_K] = quant_q3_K_quantize_block_weighted,
    [QUANT_Q4_K] = quant_q4_K_quantize_block_weighted, [QUANT_Q5_K] = quant_q5_K_quantize_block_weighted,
    [QUANT_Q6_K] = quant_q6_K_quantize_block_weighted,
};

static const quant_codec *find_codec(uint32_t type)
{
    if (type >= QUANT_TYPE_LIMIT || codecs[type].traits.name == NULL) return NULL;
    return &codecs[type];
}

const quant_traits *quant_get_traits(uint32_t type)
{
    const quant_codec *codec = find_codec(type);
    return codec ? &codec->traits : NULL;
}

static bool names_equal_ignoring_case(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    }
    return *a == *b;
}

bool quant_type_from_name(const char *name, quant_type *out)
{
    if (name == NULL) return false;
    for (uint32_t type = 0; type < QUANT_TYPE_LIMIT; type++) {
        const char *known = codecs[type].traits.name;
        if (known != NULL && names_equal_ignoring_case(name, known)) {
            if (out) *out = (quant_type)type;
            return true;
        }
    }
    return false;
}

uint64_t quant_row_size(uint32_t type, uint64_t n)
{
    const quant_traits *traits = quant_get_traits(type);
    if (traits == NULL || n % traits->block_elems != 0) return 0;
    uint64_t blocks = n / traits->block_elems;
    if (blocks > UINT64_MAX / traits->block_bytes) return 0; /* would overflow */
    return blocks * traits->block_bytes;
}

/* Everything both directions check: a decodable type, whole blocks, buffers present. */
static vkllm_status check_row(const char *what, uint32_t type, const void *src, const void *dst, uint64_t n,
                              const quant_codec **out)
{
    const quant_codec *codec = find_codec(type);
    if (codec == NULL) {
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: unknown tensor type id %u", what, type);
    }
    if (!codec->traits.supported) {
        return vkllm_fail(VKLLM_ERROR_UNSUPPORTED, "%s: tensor type %s (id %u) is not supported", what,
                          codec->traits.name, type);
    }
    if (n % codec->traits.block_elems != 0) {
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                          "%s: %llu elements of %s, expected a multiple of its block size %u", what,
                          (unsigned long long)n, codec->traits.name, codec->traits.block_elems);
    }
    if (n > 0 && (src == NULL || dst == NULL)) {
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "%s: NULL %s buffer for %llu elements", what,
                          src == NULL ? "source" : "destination", (unsigned long long)n);
    }
    *out = codec;
    return VKLLM_OK;
}

/* The one loop over blocks for every block format. */
static void dequantize_blocks(const quant_codec *codec, const uint8_t *src, float *dst, uint64_t nblocks)
{
    const uint32_t elems = codec->traits.block_elems, bytes = codec->traits.block_bytes;
    block_scratch block;
    for (uint64_t i = 0; i < nblocks; i++) {
        memcpy(&block, src + i * bytes, bytes);
        codec->dequantize_block(&block, dst + i * elems);
    }
}

static void quantize_blocks(const quant_codec *codec, const float *src, uint8_t *dst, uint64_t nblocks)
{
    const uint32_t elems = codec->traits.block_elems, bytes = codec->traits.block_bytes;
    block_scratch block;
    for (uint64_t i = 0; i < nblocks; i++) {
        codec->quantize_block(src + i * elems, &block);
        memcpy(dst + i * bytes, &block, bytes);
    }
}

vkllm_status quant_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n)
{
    const quant_codec *codec = NULL;
    VKLLM_TRY(check_row("quant_dequantize_row", type, src, dst, n, &codec));
    if (codec->dequantize_block) {
        dequantize_blocks(codec, src, dst, n / codec->traits.block_elems);
    } else {
        codec->dequantize_elements(src, dst, n);
    }
    return VKLLM_OK;
}

vkllm_status quant_quantize_row(uint32_t type, const float *src, void *dst, uint64_t n)
{
    return quant_quantize_row_weighted(type, src, dst, n, NULL);
}

bool quant_uses_importance(uint32_t type) { return type < QUANT_TYPE_LIMIT && weighted_codecs[type] != NULL; }

/* ggml's quantize_*_impl loops: the row's mean x^2 (sum / n in float, as ggml) feeds the legacy types'
 * weights; each block gets its slice of the importance vector. */
static void quantize_blocks_weighted(const quant_codec *codec, quant_quantize_block_weighted_fn fn, const float *src,
                                     uint8_t *dst, uint64_t n, const float *importance)
{
    const uint32_t elems = codec->traits.block_elems, bytes = codec->traits.block_bytes;
    float sum_x2 = 0;
    for (uint64_t j = 0; j < n; j++) sum_x2 += src[j] * src[j];
    const float sigma2 = sum_x2 / (float)(int64_t)n;
    block_scratch block;
    for (uint64_t i = 0; i < n / elems; i++) {
        fn(src + i * elems, importance + i * elems, sigma2, &block);
        memcpy(dst + i * bytes, &block, bytes);
    }
}

vkllm_status quant_quantize_row_weighted(uint32_t type, const float *src, void *dst, uint64_t n,
                                         const float *importance)
{
    const quant_codec *codec = NULL;
    VKLLM_TRY(check_row("quant_quantize_row", type, src, dst, n, &codec));
    if (codec->quantize_block == NULL) {
        codec->quantize_elements(src, dst, n); /* element formats represent inf and NaN faithfully */
        return VKLLM_OK;
    }
    /* Block formats derive scales from the block's range; inf or NaN would make every weight in the block
     * meaningless, so refuse them. */
    for (uint64_t i = 0; i < n; i++) {
        if (!isfinite(src[i])) {
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                              "quant_quantize_row: element %llu is %g; %s needs finite input",
                              (unsigned long long)i, (double)src[i], codec->traits.name);
        }
    }
    if (importance && quant_uses_importance(type)) {
        quantize_blocks_weighted(codec, weighted_codecs[type], src, dst, n, importance);
    } else {
        quantize_blocks(codec, src, dst, n / codec->traits.block_elems);
    }
    return VKLLM_OK;
}
