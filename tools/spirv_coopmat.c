#include "spirv_coopmat.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t size, const char *fmt, ...)
{
    if (err && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int spv_literal_string(const uint32_t *words, uint32_t wc, char *buf, size_t size)
{
    size_t len = 0;
    for (uint32_t w = 1; w < wc; w++)
        for (uint32_t b = 0; b < 4; b++) {
            char c = (char)((words[w] >> (8 * b)) & 0xffu);
            if (size) buf[len < size - 1 ? len : size - 1] = c;
            if (c == '\0') return (int)len;
            len++;
        }
    return -1;
}

/* Writes s as a SPIR-V literal string (little-endian bytes, NUL-terminated, zero-padded); returns its words. */
static uint32_t put_string(uint32_t *dst, const char *s)
{
    size_t len = strlen(s), words = len / 4 + 1;
    memset(dst, 0, words * sizeof *dst);
    for (size_t i = 0; i < len; i++) dst[i / 4] |= (uint32_t)(unsigned char)s[i] << (8 * (i % 4));
    return (uint32_t)words;
}

/* What pass one learns about an id. */
enum { ID_PLAIN = 0, ID_FALSE, ID_TRUE, ID_SPEC_BOOL };

/* Capabilities of the NV cooperative-matrix family that bring instructions this rewriter does not translate
 * (cooperative_matrix2: conversions and transposes, tensor addressing, block loads, decode functions). */
static bool unknown_nv_capability(uint32_t cap) { return cap == 5431 || cap == 5433 || cap == 5434 || cap == 5447; }

int spv_coopmat_nv_to_khr(const uint32_t *in, size_t n_words, const spv_coopmat_dims *dims, uint32_t **out,
                          size_t *out_words, char *err, size_t err_size)
{
    *out = NULL;
    *out_words = 0;
    if (n_words < 5 || in[0] != SPV_MAGIC) return fail(err, err_size, "not a SPIR-V module (magic or header missing)");
    uint32_t bound = in[3];
    if (bound == 0 || bound > (1u << 22)) return fail(err, err_size, "id bound %u out of range", bound);
    uint32_t *spec_id = malloc(bound * sizeof *spec_id);
    uint8_t *kind = calloc(bound, 1);
    if (!spec_id || !kind) {
        free(spec_id);
        free(kind);
        return fail(err, err_size, "out of memory for %u ids", bound);
    }
    for (uint32_t i = 0; i < bound; i++) spec_id[i] = UINT32_MAX;

    /* Pass one: SpecIds, the uint type, constant bools; checks every length and id. */
    uint32_t uint_type = 0;
    size_t n_types = 0, n_ext = 0;
    bool has_cap = false;
    int rc = 0;
    for (size_t i = 5; i < n_words && rc == 0;) {
        uint32_t wc = in[i] >> 16, op = in[i] & 0xffffu;
        const uint32_t *w = in + i;
        if (wc == 0 || i + wc > n_words) {
            rc = fail(err, err_size, "instruction at word %zu (opcode %u) runs past the end", i, op);
            break;
        }
        bool id_ok = true; /* every id operand read below is < bound */
        switch (op) {
        case SPV_OP_DECORATE:
            if (wc >= 4 && w[2] == SPV_DECORATION_SPEC_ID) {
                if ((id_ok = w[1] < bound)) spec_id[w[1]] = w[3];
            }
            break;
        case SPV_OP_TYPE_INT:
            if (wc == 4 && w[2] == 32 && w[3] == 0 && !uint_type) uint_type = w[1];
            break;
        case SPV_OP_CONSTANT_TRUE: case SPV_OP_CONSTANT_FALSE:
        case SPV_OP_SPEC_CONSTANT_TRUE: case SPV_OP_SPEC_CONSTANT_FALSE:
            if (wc != 3 || !(id_ok = w[2] < bound)) break;
            kind[w[2]] = op == SPV_OP_CONSTANT_TRUE ? ID_TRUE : op == SPV_OP_CONSTANT_FALSE ? ID_FALSE : ID_SPEC_BOOL;
            break;
        case SPV_OP_CAPABILITY:
            if (wc == 2 && w[1] == SPV_CAP_COOPMAT_NV) has_cap = true;
            if (wc == 2 && unknown_nv_capability(w[1]))
                rc = fail(err, err_size, "capability %u (an NV cooperative-matrix extension beyond "
                          SPV_EXT_COOPMAT_NV ") has no KHR translation here", w[1]);
            break;
        case SPV_OP_EXTENSION:
            n_ext++;
            break;
        case SPV_OP_TYPE_COOPMAT_NV:
            n_types++;
            if (wc != 6) rc = fail(err, err_size, "OpTypeCooperativeMatrixNV with %u words (6 expected)", wc);
            else id_ok = w[4] < bound && w[5] < bound;
            break;
        case 5390:
            rc = fail(err, err_size, "OpCooperativeMatrixTransposeNV has no KHR translation");
            break;
        default:
            break;
        }
        if (!id_ok && rc == 0) rc = fail(err, err_size, "id out of bound %u at word %zu (opcode %u)", bound, i, op);
        i += wc;
    }
    if (rc == 0 && !has_cap) rc = fail(err, err_size, "the module does not declare CooperativeMatrixNV");
    if (rc == 0 && !uint_type) rc = fail(err, err_size, "the module has no 32-bit unsigned int type for the new constants");

    /* The uint constants the KHR operands need (0: MatrixA / RowMajor, 1: MatrixB / ColumnMajor, 2: Accumulator),
     * always new: glslang may define an equal constant only after the first matrix type, and an operand must be
     * defined before its use (duplicate constants are valid SPIR-V, duplicate types are not). */
    uint32_t new_bound = bound, uint_const[3];
    for (uint32_t v = 0; v < 3; v++) uint_const[v] = new_bound++;

    size_t cap_words = n_words + 3 * 4 + n_types + 2 * n_ext + 8;
    uint32_t *o = rc == 0 ? malloc(cap_words * sizeof *o) : NULL;
    if (rc == 0 && !o) rc = fail(err, err_size, "out of memory for %zu words", cap_words);
    size_t n = 0;
    if (rc == 0) {
        memcpy(o, in, 5 * sizeof *o);
        o[3] = new_bound;
        n = 5;
    }

    /* Pass two: copy, rewriting the NV instructions. */
    for (size_t i = 5; i < n_words && rc == 0;) {
        uint32_t wc = in[i] >> 16, op = in[i] & 0xffffu;
        const uint32_t *w = in + i;
        i += wc;
        if (op == SPV_OP_CAPABILITY && wc == 2 && w[1] == SPV_CAP_COOPMAT_NV) {
            o[n++] = (2u << 16) | SPV_OP_CAPABILITY;
            o[n++] = SPV_CAP_COOPMAT_KHR;
        } else if (op == SPV_OP_EXTENSION) {
            char name[64];
            int len = spv_literal_string(w, wc, name, sizeof name);
            if (len < 0) {
                rc = fail(err, err_size, "OpExtension without a terminated string");
            } else if (strcmp(name, SPV_EXT_COOPMAT_NV) == 0) {
                uint32_t words = put_string(o + n + 1, SPV_EXT_COOPMAT_KHR);
                o[n] = ((words + 1) << 16) | SPV_OP_EXTENSION;
                n += words + 1;
            } else {
                memcpy(o + n, w, wc * sizeof *o);
                n += wc;
            }
        } else if (op == SPV_OP_TYPE_COOPMAT_NV) {
            uint32_t rows = spec_id[w[4]], cols = spec_id[w[5]], use;
            if (rows == dims->spec_m && cols == dims->spec_k) use = SPV_COOPMAT_USE_A;
            else if (rows == dims->spec_k && cols == dims->spec_n) use = SPV_COOPMAT_USE_B;
            else if (rows == dims->spec_m && cols == dims->spec_n) use = SPV_COOPMAT_USE_ACCUMULATOR;
            else {
                rc = fail(err, err_size, "matrix type %%%u is sized by SpecIds (%d, %d), none of A (%u, %u), B (%u, %u) "
                          "or accumulator (%u, %u)", w[1], (int)rows, (int)cols, dims->spec_m, dims->spec_k,
                          dims->spec_k, dims->spec_n, dims->spec_m, dims->spec_n);
                break;
            }
            o[n++] = (7u << 16) | SPV_OP_TYPE_COOPMAT_KHR;
            memcpy(o + n, w + 1, 5 * sizeof *o);
            n += 5;
            o[n++] = uint_const[use];
        } else if (op == SPV_OP_COOPMAT_LOAD_NV || op == SPV_OP_COOPMAT_STORE_NV) {
            /* load: type, result, pointer, stride, column-major; store: pointer, object, stride, column-major */
            uint32_t first = op == SPV_OP_COOPMAT_LOAD_NV ? 4 : 3; /* word of the stride operand */
            if (wc < first + 2) {
                rc = fail(err, err_size, "cooperative-matrix %s with %u words", op == SPV_OP_COOPMAT_LOAD_NV ? "load" : "store", wc);
                break;
            }
            uint32_t stride = w[first], major = w[first + 1];
            uint32_t k = major < bound ? kind[major] : ID_PLAIN;
            if (k != ID_TRUE && k != ID_FALSE) {
                rc = fail(err, err_size, "column-major operand %%%u is %s: the layout must be known when rewriting", major,
                          k == ID_SPEC_BOOL ? "a specialization constant" : "not a constant bool");
                break;
            }
            memcpy(o + n, w, wc * sizeof *o);
            o[n] = (wc << 16) | (op == SPV_OP_COOPMAT_LOAD_NV ? SPV_OP_COOPMAT_LOAD_KHR : SPV_OP_COOPMAT_STORE_KHR);
            o[n + first] = uint_const[k == ID_TRUE ? SPV_COOPMAT_COLUMN_MAJOR : SPV_COOPMAT_ROW_MAJOR];
            o[n + first + 1] = stride;
            n += wc; /* optional memory-access operands follow unchanged */
        } else if (op == SPV_OP_COOPMAT_MULADD_NV || op == SPV_OP_COOPMAT_LENGTH_NV) {
            if (wc != (op == SPV_OP_COOPMAT_MULADD_NV ? 6u : 4u)) {
                rc = fail(err, err_size, "opcode %u with %u words", op, wc);
                break;
            }
            memcpy(o + n, w, wc * sizeof *o);
            o[n] = (wc << 16) | (op == SPV_OP_COOPMAT_MULADD_NV ? SPV_OP_COOPMAT_MULADD_KHR : SPV_OP_COOPMAT_LENGTH_KHR);
            n += wc;
        } else {
            memcpy(o + n, w, wc * sizeof *o);
            n += wc;
            if (op == SPV_OP_TYPE_INT && wc == 4 && w[1] == uint_type)
                for (uint32_t v = 0; v < 3; v++) {
                    o[n++] = (4u << 16) | SPV_OP_CONSTANT;
                    o[n++] = uint_type;
                    o[n++] = uint_const[v];
                    o[n++] = v;
                }
        }
    }
    free(spec_id);
    free(kind);
    if (rc != 0) {
        free(o);
        return rc;
    }
    *out = o;
    *out_words = n;
    return 0;
}
