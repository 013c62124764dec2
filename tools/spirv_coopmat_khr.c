/* Build-time tool (cmake/shaders.cmake): embeds a SPIR-V binary as the C initializer list glslc -mfmt=c writes,
 * after rewriting it from SPV_NV_cooperative_matrix to SPV_KHR_cooperative_matrix with --khr.
 *
 *   spirv_coopmat_khr [--khr SPEC_M SPEC_N SPEC_K] IN.spv OUT.inc
 *
 * SPEC_M/N/K are the SpecIds of the constants that size the matrices (see spirv_coopmat.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spirv_coopmat.h"

static int usage(void)
{
    fprintf(stderr, "usage: spirv_coopmat_khr [--khr SPEC_M SPEC_N SPEC_K] IN.spv OUT.inc\n");
    return 2;
}

static int parse_id(const char *s, uint32_t *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > 0xffffffffu) return -1;
    *out = (uint32_t)v;
    return 0;
}

static uint32_t *read_words(const char *path, size_t *n_words)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "spirv_coopmat_khr: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    uint32_t *words = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len > 0 && len % 4 == 0 && fseek(f, 0, SEEK_SET) == 0 && (words = malloc((size_t)len)) &&
        fread(words, 1, (size_t)len, f) != (size_t)len) {
        free(words);
        words = NULL;
    }
    fclose(f);
    if (!words) fprintf(stderr, "spirv_coopmat_khr: %s: not a whole number of 32-bit words, or unreadable\n", path);
    *n_words = words ? (size_t)len / 4 : 0;
    return words;
}

int main(int argc, char **argv)
{
    int a = 1;
    int khr = 0;
    spv_coopmat_dims dims = {0, 0, 0};
    if (a < argc && strcmp(argv[a], "--khr") == 0) {
        if (argc - a < 4 || parse_id(argv[a + 1], &dims.spec_m) || parse_id(argv[a + 2], &dims.spec_n) ||
            parse_id(argv[a + 3], &dims.spec_k))
            return usage();
        khr = 1;
        a += 4;
    }
    if (argc - a != 2) return usage();
    size_t n = 0;
    uint32_t *words = read_words(argv[a], &n);
    if (!words) return 1;
    if (khr) {
        uint32_t *rewritten;
        size_t m;
        char err[256];
        if (spv_coopmat_nv_to_khr(words, n, &dims, &rewritten, &m, err, sizeof err) != 0) {
            fprintf(stderr, "spirv_coopmat_khr: %s: %s\n", argv[a], err);
            free(words);
            return 1;
        }
        free(words);
        words = rewritten;
        n = m;
    }
    FILE *out = fopen(argv[a + 1], "w");
    if (!out) {
        fprintf(stderr, "spirv_coopmat_khr: %s: %s\n", argv[a + 1], strerror(errno));
        free(words);
        return 1;
    }
    fputc('{', out);
    for (size_t i = 0; i < n; i++) fprintf(out, "0x%08x%s", words[i], i + 1 == n ? "}\n" : i % 4 == 3 ? ",\n" : ",");
    free(words);
    if (fclose(out) != 0) {
        fprintf(stderr, "spirv_coopmat_khr: writing %s failed\n", argv[a + 1]);
        return 1;
    }
    return 0;
}
