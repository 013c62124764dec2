/* tools/spirv_coopmat.c, the NV -> KHR cooperative-matrix rewriter behind the _cm_khr shader variants.  This
 * machine's spirv-val (SPIRV-Tools 2023.1) predates SPV_KHR_cooperative_matrix, so the KHR binaries are checked
 * here, structurally: a hand-built module against the exact words expected, and every error case. */
#include <stdarg.h>
#include <stdlib.h>

#include "harness.h"
#include "spirv_coopmat.h"

static const spv_coopmat_dims dims = {8, 9, 10}; /* the shader's CM_M, CM_N, CM_K */

/* ---- a hand-built module ---- */
typedef struct module {
    uint32_t w[512];
    size_t n;
} module;

static void emit(module *m, uint32_t opcode, uint32_t count, ...)
{
    va_list ap;
    va_start(ap, count);
    m->w[m->n++] = ((count + 1) << 16) | opcode;
    for (uint32_t i = 0; i < count; i++) m->w[m->n++] = va_arg(ap, uint32_t);
    va_end(ap);
}

/* "SPV_NV_cooperative_matrix" as 7 words */
static void emit_string(module *m, uint32_t opcode, const char *s)
{
    size_t len = strlen(s), words = len / 4 + 1;
    m->w[m->n++] = (uint32_t)((words + 1) << 16) | opcode;
    memset(m->w + m->n, 0, words * 4);
    for (size_t i = 0; i < len; i++) m->w[m->n + i / 4] |= (uint32_t)(unsigned char)s[i] << (8 * (i % 4));
    m->n += words;
}

enum { BOUND = 50, OP_TYPE_FLOAT = 22, OP_SPEC_CONSTANT = 50, ACCESS_ALIGNED = 2 };

/* Ids: 1 bool, 2 uint, 3 half, 4 float, 5 scope constant, 6 true, 7 false, 8 spec-constant true, 10/11/12 M/N/K,
 * 20 A, 21 B, 22 accumulator, 30/31 loads, 32 mul-add, 33 C, 34 length, 40 pointer, 41 stride.  The variant
 * argument breaks it for the error tests. */
typedef enum broken { OK, SPEC_BOOL, PLAIN_BOOL, TRANSPOSE, CM2_CAP, TRUNCATED, NO_UINT, BAD_DIMS, NO_CAP } broken;

static module build(broken b)
{
    module m = {.n = 0};
    m.w[m.n++] = SPV_MAGIC;
    m.w[m.n++] = 0x00010500;
    m.w[m.n++] = 0;
    m.w[m.n++] = BOUND;
    m.w[m.n++] = 0;
    emit(&m, SPV_OP_CAPABILITY, 1, 1u);
    if (b != NO_CAP) emit(&m, SPV_OP_CAPABILITY, 1, (uint32_t)SPV_CAP_COOPMAT_NV);
    if (b == CM2_CAP) emit(&m, SPV_OP_CAPABILITY, 1, 5431u);
    emit_string(&m, SPV_OP_EXTENSION, SPV_EXT_COOPMAT_NV);
    emit_string(&m, SPV_OP_EXTENSION, "SPV_KHR_vulkan_memory_model");
    emit(&m, SPV_OP_DECORATE, 3, 10u, (uint32_t)SPV_DECORATION_SPEC_ID, 8u);
    emit(&m, SPV_OP_DECORATE, 3, 11u, (uint32_t)SPV_DECORATION_SPEC_ID, 9u);
    emit(&m, SPV_OP_DECORATE, 3, 12u, (uint32_t)SPV_DECORATION_SPEC_ID, 10u);
    emit(&m, SPV_OP_TYPE_BOOL, 1, 1u);
    emit(&m, SPV_OP_TYPE_INT, 3, 2u, 32u, b == NO_UINT ? 1u : 0u);
    emit(&m, OP_TYPE_FLOAT, 2, 3u, 16u);
    emit(&m, OP_TYPE_FLOAT, 2, 4u, 32u);
    emit(&m, SPV_OP_CONSTANT, 3, 2u, 5u, 3u);
    emit(&m, OP_SPEC_CONSTANT, 3, 2u, 10u, 16u);
    emit(&m, OP_SPEC_CONSTANT, 3, 2u, 11u, 16u);
    emit(&m, OP_SPEC_CONSTANT, 3, 2u, 12u, 16u);
    emit(&m, SPV_OP_CONSTANT_TRUE, 2, 1u, 6u);
    emit(&m, SPV_OP_CONSTANT_FALSE, 2, 1u, 7u);
    emit(&m, SPV_OP_SPEC_CONSTANT_TRUE, 2, 1u, 8u);
    emit(&m, SPV_OP_TYPE_COOPMAT_NV, 5, 20u, 3u, 5u, 10u, b == BAD_DIMS ? 10u : 12u);
    emit(&m, SPV_OP_TYPE_COOPMAT_NV, 5, 21u, 3u, 5u, 12u, 11u);
    emit(&m, SPV_OP_TYPE_COOPMAT_NV, 5, 22u, 4u, 5u, 10u, 11u);
    uint32_t major = b == SPEC_BOOL ? 8u : b == PLAIN_BOOL ? 41u : 7u;
    emit(&m, SPV_OP_COOPMAT_LOAD_NV, 7, 20u, 30u, 40u, 41u, major, (uint32_t)ACCESS_ALIGNED, 16u);
    emit(&m, SPV_OP_COOPMAT_LOAD_NV, 5, 21u, 31u, 40u, 41u, 6u);
    emit(&m, SPV_OP_COOPMAT_MULADD_NV, 5, 22u, 32u, 30u, 31u, 33u);
    emit(&m, SPV_OP_COOPMAT_STORE_NV, 4, 40u, 32u, 41u, 6u);
    emit(&m, SPV_OP_COOPMAT_LENGTH_NV, 3, 2u, 34u, 22u);
    if (b == TRANSPOSE) emit(&m, 5390, 3, 21u, 35u, 30u);
    if (b == TRUNCATED) m.w[m.n - 1 - 3] = (9u << 16) | SPV_OP_COOPMAT_LENGTH_NV; /* 9 words where 4 remain */
    return m;
}

static void test_hand_built(void **state)
{
    module nv = build(OK), want = {.n = 0};
    /* The expected KHR module, word for word: ids 50, 51, 52 are the new uint constants 0, 1, 2. */
    want.w[want.n++] = SPV_MAGIC;
    want.w[want.n++] = 0x00010500;
    want.w[want.n++] = 0;
    want.w[want.n++] = BOUND + 3;
    want.w[want.n++] = 0;
    emit(&want, SPV_OP_CAPABILITY, 1, 1u);
    emit(&want, SPV_OP_CAPABILITY, 1, (uint32_t)SPV_CAP_COOPMAT_KHR);
    emit_string(&want, SPV_OP_EXTENSION, SPV_EXT_COOPMAT_KHR);
    emit_string(&want, SPV_OP_EXTENSION, "SPV_KHR_vulkan_memory_model");
    emit(&want, SPV_OP_DECORATE, 3, 10u, (uint32_t)SPV_DECORATION_SPEC_ID, 8u);
    emit(&want, SPV_OP_DECORATE, 3, 11u, (uint32_t)SPV_DECORATION_SPEC_ID, 9u);
    emit(&want, SPV_OP_DECORATE, 3, 12u, (uint32_t)SPV_DECORATION_SPEC_ID, 10u);
    emit(&want, SPV_OP_TYPE_BOOL, 1, 1u);
    emit(&want, SPV_OP_TYPE_INT, 3, 2u, 32u, 0u);
    emit(&want, SPV_OP_CONSTANT, 3, 2u, 50u, 0u);
    emit(&want, SPV_OP_CONSTANT, 3, 2u, 51u, 1u);
    emit(&want, SPV_OP_CONSTANT, 3, 2u, 52u, 2u);
    emit(&want, OP_TYPE_FLOAT, 2, 3u, 16u);
    emit(&want, OP_TYPE_FLOAT, 2, 4u, 32u);
    emit(&want, SPV_OP_CONSTANT, 3, 2u, 5u, 3u);
    emit(&want, OP_SPEC_CONSTANT, 3, 2u, 10u, 16u);
    emit(&want, OP_SPEC_CONSTANT, 3, 2u, 11u, 16u);
    emit(&want, OP_SPEC_CONSTANT, 3, 2u, 12u, 16u);
    emit(&want, SPV_OP_CONSTANT_TRUE, 2, 1u, 6u);
    emit(&want, SPV_OP_CONSTANT_FALSE, 2, 1u, 7u);
    emit(&want, SPV_OP_SPEC_CONSTANT_TRUE, 2, 1u, 8u);
    emit(&want, SPV_OP_TYPE_COOPMAT_KHR, 6, 20u, 3u, 5u, 10u, 12u, 50u);        /* M x K: MatrixA */
    emit(&want, SPV_OP_TYPE_COOPMAT_KHR, 6, 21u, 3u, 5u, 12u, 11u, 51u);        /* K x N: MatrixB */
    emit(&want, SPV_OP_TYPE_COOPMAT_KHR, 6, 22u, 4u, 5u, 10u, 11u, 52u);        /* M x N: Accumulator */
    emit(&want, SPV_OP_COOPMAT_LOAD_KHR, 7, 20u, 30u, 40u, 50u, 41u, (uint32_t)ACCESS_ALIGNED, 16u); /* row-major */
    emit(&want, SPV_OP_COOPMAT_LOAD_KHR, 5, 21u, 31u, 40u, 51u, 41u);           /* column-major */
    emit(&want, SPV_OP_COOPMAT_MULADD_KHR, 5, 22u, 32u, 30u, 31u, 33u);
    emit(&want, SPV_OP_COOPMAT_STORE_KHR, 4, 40u, 32u, 51u, 41u);
    emit(&want, SPV_OP_COOPMAT_LENGTH_KHR, 3, 2u, 34u, 22u);

    uint32_t *out = NULL;
    size_t n = 0;
    char err[256] = "";
    if (spv_coopmat_nv_to_khr(nv.w, nv.n, &dims, &out, &n, err, sizeof err) != 0) fail_msg("rewrite: %s", err);
    assert_int_equal(n, want.n);
    for (size_t i = 0; i < n; i++)
        if (out[i] != want.w[i]) fail_msg("word %zu: 0x%08x, expected 0x%08x", i, out[i], want.w[i]);
    free(out);
}

static void test_errors(void **state)
{
    static const struct {
        broken b;
        const char *needle;
    } cases[] = {
        {SPEC_BOOL, "specialization constant"}, {PLAIN_BOOL, "not a constant bool"},
        {TRANSPOSE, "TransposeNV"},             {CM2_CAP, "capability 5431"},
        {TRUNCATED, "runs past the end"},       {NO_UINT, "no 32-bit unsigned int"},
        {BAD_DIMS, "none of A"},                {NO_CAP, "does not declare CooperativeMatrixNV"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        module m = build(cases[i].b);
        uint32_t *out = (uint32_t *)&m; /* must come back NULL */
        size_t n = 1;
        char err[256] = "";
        assert_int_equal(spv_coopmat_nv_to_khr(m.w, m.n, &dims, &out, &n, err, sizeof err), -1);
        assert_null(out);
        assert_int_equal(n, 0);
        if (!strstr(err, cases[i].needle)) fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].needle);
    }
    module m = build(OK);
    m.w[0] = 0x12345678;
    uint32_t *out;
    size_t n;
    char err[256] = "";
    assert_int_equal(spv_coopmat_nv_to_khr(m.w, m.n, &dims, &out, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a SPIR-V module"));
    assert_int_equal(spv_coopmat_nv_to_khr(m.w, 3, &dims, &out, &n, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_built),
        cmocka_unit_test(test_errors),
    };
    return TH_RUN("spirv_coopmat", tests);
}
