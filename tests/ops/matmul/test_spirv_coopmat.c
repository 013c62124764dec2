/* tools/spirv_coopmat.c, the NV -> KHR cooperative-matrix rewriter behind the _cm_khr shader variants.  This
 * machine's spirv-val (SPIRV-Tools 2023.1) predates SPV_KHR_cooperative_matrix, so the KHR binaries are checked
 * here, structurally: a hand-built module against the exact words expected, every error case, and every
 * embedded _cm_nv / _cm_khr pair instruction by instruction (the KHR blob is the rewrite of its NV twin, each
 * rewritten instruction carries the NV operands with the use / layout the NV one implies, nothing else
 * changed).  The NV binaries pass spirv-val at build time (cmake/shaders.cmake). */
#include <stdarg.h>
#include <stdlib.h>

#include "harness.h"
#include "runtime/shaders.h"
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

/* ---- the embedded variants ---- */

/* Word offsets of a module's instructions (after the header); fails on a malformed stream. */
static size_t *instructions(const uint32_t *w, size_t n_words, size_t *count)
{
    size_t *at = malloc(sizeof *at * n_words);
    assert_non_null(at);
    *count = 0;
    for (size_t i = 5; i < n_words;) {
        uint32_t wc = w[i] >> 16;
        if (wc == 0 || i + wc > n_words) fail_msg("malformed instruction at word %zu", i);
        at[(*count)++] = i;
        i += wc;
    }
    return at;
}

/* Value of the OpConstant %id of type uint in a module (fails if there is none). */
static uint32_t uint_constant(const uint32_t *w, const size_t *at, size_t count, uint32_t uint_type, uint32_t id)
{
    for (size_t i = 0; i < count; i++) {
        const uint32_t *ins = w + at[i];
        if ((ins[0] & 0xffffu) == SPV_OP_CONSTANT && ins[0] >> 16 == 4 && ins[1] == uint_type && ins[2] == id)
            return ins[3];
    }
    fail_msg("%%%u is not a uint constant", id);
    return UINT32_MAX;
}

/* Checks khr against its NV source instruction by instruction. */
static void check_pair(const char *name, const uint32_t *nv, size_t nv_words, const uint32_t *khr, size_t khr_words)
{
    size_t nv_count, khr_count;
    size_t *na = instructions(nv, nv_words, &nv_count), *ka = instructions(khr, khr_words, &khr_count);
    assert_int_equal(khr[0], SPV_MAGIC);
    assert_int_equal(khr[1], nv[1]);
    assert_int_equal(khr[3], nv[3] + 3);
    assert_int_equal(khr_count, nv_count + 3);
    /* the NV module's facts: SpecIds, bool constants, the uint type */
    uint32_t *spec = calloc(nv[3], sizeof *spec), *boolean = calloc(nv[3], sizeof *boolean), uint_type = 0;
    assert_true(spec && boolean);
    for (size_t i = 0; i < nv_count; i++) {
        const uint32_t *ins = nv + na[i];
        uint32_t op = ins[0] & 0xffffu;
        if (op == SPV_OP_DECORATE && ins[2] == SPV_DECORATION_SPEC_ID) spec[ins[1]] = ins[3] + 1;
        if (op == SPV_OP_CONSTANT_TRUE) boolean[ins[2]] = 2;
        if (op == SPV_OP_CONSTANT_FALSE) boolean[ins[2]] = 1;
        if (op == SPV_OP_TYPE_INT && ins[2] == 32 && ins[3] == 0 && !uint_type) uint_type = ins[1];
    }
    size_t types = 0, loads[2] = {0, 0}, stores = 0, mul_adds = 0, caps = 0, exts = 0, extra = 0;
    size_t first_type = SIZE_MAX, last_constant = 0;
    for (size_t i = 0, j = 0; i < nv_count; i++, j++) {
        const uint32_t *a = nv + na[i], *b = khr + ka[j];
        uint32_t op = a[0] & 0xffffu, wc = a[0] >> 16, kop = b[0] & 0xffffu, kwc = b[0] >> 16;
        if (op == SPV_OP_CAPABILITY && a[1] == SPV_CAP_COOPMAT_NV) {
            assert_true(kop == SPV_OP_CAPABILITY && b[1] == SPV_CAP_COOPMAT_KHR);
            caps++;
        } else if (op == SPV_OP_EXTENSION) {
            char sa[64], sb[64];
            assert_true(kop == SPV_OP_EXTENSION);
            assert_true(spv_literal_string(a, wc, sa, sizeof sa) >= 0 && spv_literal_string(b, kwc, sb, sizeof sb) >= 0);
            if (strcmp(sa, SPV_EXT_COOPMAT_NV) == 0) {
                assert_string_equal(sb, SPV_EXT_COOPMAT_KHR);
                exts++;
            } else {
                assert_string_equal(sa, sb);
            }
        } else if (op == SPV_OP_TYPE_COOPMAT_NV) {
            assert_true(kop == SPV_OP_TYPE_COOPMAT_KHR && kwc == 7);
            assert_memory_equal(a + 1, b + 1, 5 * sizeof *a);
            uint32_t rows = spec[a[4]] - 1, cols = spec[a[5]] - 1;
            uint32_t want = rows == dims.spec_m && cols == dims.spec_k   ? SPV_COOPMAT_USE_A
                            : rows == dims.spec_k && cols == dims.spec_n ? SPV_COOPMAT_USE_B
                                                                         : SPV_COOPMAT_USE_ACCUMULATOR;
            assert_true(rows == dims.spec_m || rows == dims.spec_k);
            assert_int_equal(uint_constant(khr, ka, khr_count, uint_type, b[6]), want);
            if (first_type == SIZE_MAX) first_type = j;
            types++;
        } else if (op == SPV_OP_COOPMAT_LOAD_NV || op == SPV_OP_COOPMAT_STORE_NV) {
            bool load = op == SPV_OP_COOPMAT_LOAD_NV;
            uint32_t s = load ? 4 : 3; /* stride word */
            assert_int_equal(kop, load ? SPV_OP_COOPMAT_LOAD_KHR : SPV_OP_COOPMAT_STORE_KHR);
            assert_int_equal(kwc, wc);
            assert_memory_equal(a + 1, b + 1, (s - 1) * sizeof *a);       /* type, result, pointer / pointer, object */
            assert_int_equal(b[s + 1], a[s]);                              /* stride */
            assert_true(boolean[a[s + 1]] != 0);
            uint32_t layout = uint_constant(khr, ka, khr_count, uint_type, b[s]);
            assert_int_equal(layout, boolean[a[s + 1]] == 2 ? SPV_COOPMAT_COLUMN_MAJOR : SPV_COOPMAT_ROW_MAJOR);
            assert_memory_equal(a + s + 2, b + s + 2, (wc - s - 2) * sizeof *a); /* memory operands */
            if (load) loads[layout]++;
            else stores++;
        } else if (op == SPV_OP_COOPMAT_MULADD_NV || op == SPV_OP_COOPMAT_LENGTH_NV) {
            assert_int_equal(kop, op == SPV_OP_COOPMAT_MULADD_NV ? SPV_OP_COOPMAT_MULADD_KHR : SPV_OP_COOPMAT_LENGTH_KHR);
            assert_int_equal(kwc, wc);
            assert_memory_equal(a + 1, b + 1, (wc - 1) * sizeof *a);
            mul_adds += op == SPV_OP_COOPMAT_MULADD_NV;
        } else {
            assert_int_equal(b[0], a[0]);
            assert_memory_equal(a + 1, b + 1, (wc - 1) * sizeof *a);
            if (op == SPV_OP_TYPE_INT && a[1] == uint_type)
                for (uint32_t v = 0; v < 3; v++) { /* the added constants 0, 1, 2, new ids */
                    const uint32_t *c = khr + ka[++j];
                    assert_true(c[0] == ((4u << 16) | SPV_OP_CONSTANT) && c[1] == uint_type && c[3] == v);
                    assert_true(c[2] >= nv[3] && c[2] < khr[3]);
                    last_constant = j;
                    extra++;
                }
        }
        uint32_t kop_now = khr[ka[j]] & 0xffffu;
        assert_true(kop_now < 5357 || kop_now > 5362); /* no NV opcode left */
    }
    assert_int_equal(extra, 3);
    assert_true(last_constant < first_type); /* defined before any matrix type uses them */
    /* The shader: one A, one B and one accumulator type; row-major and column-major loads, and stores (one in the
     * mat-mul; the attention stores its scores and its output). */
    if (types != 3 || !loads[0] || !loads[1] || stores == 0 || !mul_adds || caps != 1 || exts != 1)
        fail_msg("%s: %zu types, %zu / %zu loads, %zu stores, %zu mul-adds, %zu capabilities, %zu extensions", name,
                 types, loads[0], loads[1], stores, mul_adds, caps, exts);
    free(spec);
    free(boolean);
    free(na);
    free(ka);
}

static void test_embedded_variants(void **state)
{
    size_t pairs = 0;
    for (size_t i = 0; i < vkr_shader_count(); i++) {
        const vkr_shader_blob *nv = vkr_shader_at(i);
        size_t len = strlen(nv->name);
        if (len < 6 || strcmp(nv->name + len - 6, "_cm_nv") != 0) continue;
        char twin[64];
        snprintf(twin, sizeof twin, "%.*s_cm_khr", (int)(len - 6), nv->name);
        const vkr_shader_blob *khr = vkr_shader_find(twin);
        if (!khr) fail_msg("%s has no %s", nv->name, twin);
        uint32_t *out;
        size_t n;
        char err[256];
        if (spv_coopmat_nv_to_khr(nv->code, nv->size / 4, &dims, &out, &n, err, sizeof err) != 0)
            fail_msg("%s: %s", nv->name, err);
        /* the build ran the same rewrite */
        assert_int_equal(n * 4, khr->size);
        assert_memory_equal(out, khr->code, khr->size);
        free(out);
        check_pair(twin, nv->code, nv->size / 4, khr->code, khr->size / 4);
        pairs++;
    }
    printf("  %zu NV / KHR pairs checked\n", pairs);
    assert_int_equal(pairs, 11 + 2); /* the mat-mul of every type f16 holds, the attention over F32 and F16 caches */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_built),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_embedded_variants),
    };
    return TH_RUN("spirv_coopmat", tests);
}
