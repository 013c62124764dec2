#include "tuning.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Starting points from the published shape of each architecture, to be replaced by measurements:
 *  - CPU (lavapipe): workgroups run as 8-wide SIMD on one thread; several rows per invocation with the
 *    input held in registers beats any cooperative scheme (../shared/notes/lavapipe.md), and a mat-vec
 *    workgroup of one SIMD vector keeps both worker threads busy on small matrices.  16 rows per
 *    invocation: every load of x in the loop is a per-lane gather on lavapipe, shared by those rows
 *    (measured 2048x768, 8 columns, CPU time: Q4_0 24.6 ms for n = 128 against 34 with 8 rows and 53
 *    with 4; 32 rows no better; n = 1 unchanged).  Shared-memory tiles
 *    are gathers lane by lane there, so batches also go through the mat-vec (measured 4096x768 Q4_0,
 *    n = 64: ~14 GFLOP/s against 1-3.4 for the best tiles), 16 columns per block: each weight decoded
 *    serves twice the columns of 8 (such passes take 8 rows per invocation, matmul.c; with x shared by
 *    shuffles, n = 16 and 128, Q4_0, CPU time against 8 columns of 16 rows: -18% / +2% at 32000x768,
 *    +6% / -7% at 4096x768, -3% / -3% at 768x2048; with the shuffles, -12% to -21% against the build
 *    before both, docs/performance.md).  LLVM has no
 *    native f16 arithmetic on x86, so fp16 stays off.  texel_loads: the mat-vec reads weights and x as
 *    texels, which llvmpipe gathers with vector addressing where an SSBO load at a per-lane address is a
 *    scalar loop with branches per lane (measured 2048x768, CPU time: Q4_0 n = 1 0.51 -> 0.26 ms, n = 128
 *    25 -> 13 ms; F16 n = 1 0.82 -> 0.36 ms); flash attention reads K and V so too (docs/kv-cache.md).
 *  - GPU mat-vec (decoding is bound by reading the weights once): a subgroup per group of 4 rows
 *    (matvec_split = the subgroup size), each lane taking every split-th 32-weight group, so one load
 *    instruction of a 32-wide subgroup reads 32 consecutive 16-byte quant words of a row: 512 contiguous
 *    bytes.  4 rows per lane: each load of x (on the integer path 40 bytes per block of 32 and column,
 *    against 18 bytes of Q4_0 weights per row) serves 4 rows, so x costs ~0.55 of the weight bytes per
 *    column in L1 traffic, where 2 rows cost ~1.1; 4 x 8 accumulators at n = 8 plus 4 rows of unpacked
 *    levels (8 words each) and one x block (10 words) stay near 80 registers.  The same bytes are in flight
 *    as with 2 rows and twice the warps (4 x 16 bytes per lane per step), and a 4096-row matrix still gives
 *    ~8 warps per SM of a 132-SM GPU.  Worth sweeping there (each knob is a specialization constant):
 *    split 16 or 8 (several row groups per subgroup, reduced by shuffles; their lanes' x loads coincide and
 *    are served once), rows 2 or 8.  matvec_int_dot: the integer path (the float path decodes each weight
 *    to a float, ~100 instructions per group of 32, and reads x as f32: 128 bytes per group).
 *  - NVIDIA: row_wg 1024: a decoded token's norm, softmax or argmax row is one workgroup on one SM, bound
 *    by memory latency, and 1024 invocations take a 4096-wide row in one step of loads where 256 take four
 *    (H200, llama2-7b Q4_0 tg128: 331 against 298 tokens/s with 256, docs/gpu.md).  Mat-vec: 2 rows per
 *    lane: the H200 sweep (docs/gpu.md; 14336x4096, Q4_0/Q4_K/Q8_0/Q6_K) had 2 rows x split 32 within a few
 *    percent of the best at n = 1 and the best or near it at n = 8, where 4 rows were slower at n = 1; the integer path beat the float path by 1.1-1.5x at n = 1 and 3-4x at n = 8.
 *    64x64 tiled mat-mul tiles with 4x4 outputs per invocation (the fallback of cooperative matrices).
 *  - AMD RDNA: wave32, large register file; GCN/CDNA: wave64 (a wave per 4 rows, 1 KiB per load).  Packed
 *    f16 math.
 *  - Intel Xe: SIMD8-32 (16 pinned where size control exists), smaller register budget per lane: 2 rows
 *    per lane (~50 registers at n = 8); moderate 32x32 tiles.
 *  - Apple: SIMD groups of 32, 32 KiB threadgroup memory.
 * Attention: one subgroup-sized workgroup per (token, head); on the CPU 8 lanes (one SIMD register), one key
 * per lane per tile (measured: 8 keys per tile 276 us, 32 keys 330 us for a 512-key decode, 8 heads x 64,
 * F16), and few splits, as 2 worker threads are filled by the heads alone.
 * Every field is named: a field a row leaves out is 0 (test_tuning checks each row against the field ranges). */
static const op_tuning table[TUNING_CLASS_COUNT] = {
    /* Cooperative-matrix mat-mul (.coopmat below).  Shared memory
     * is buffers x (tile_m + tile_n) x (tile_k + 8) halves plus one f32 matrix per subgroup; every row stays
     * within 32 KiB, so the tests run each one as is on lavapipe (emulated).
     *  - NVIDIA (mma.sync on tensor cores; the drivers list 16x16x16): 8 warps in a 2 x 4 grid over a 128 x 64
     *    tile (64 x 16 each, 4 x 1 accumulators), k 32, one buffer.  Chosen by the H200 sweep of docs/gpu.md over
     *    tiles 64/128 x 64/128, k 16/32 and 1/2 buffers (n = 512, 4096 and 11008 rows): 128 x 64 gives twice as
     *    many workgroups as 128 x 128 (a 4096-row matrix at n = 512 is 256 of them, past the 132 SMs), k 32
     *    halves the barriers per product, and the second buffer cost more (its shared memory lowers the
     *    workgroups per SM) than its overlap bought.
     *  - AMD RDNA3 (WMMA 16x16x16, native at wave32, 64 KiB LDS): as NVIDIA.  Wave64 parts: 4 waves of 64 in a
     *    2 x 2 grid, 64 x 64 each (16 accumulators of 4 f32 per lane).
     *  - Intel Xe (DPAS: 8 rows deep, K 16; SIMD8 on Alchemist, SIMD16 on Xe2): 8 subgroups of 16 over 64 x 64
     *    (32 x 16 each), k 32 = two DPAS steps per barrier; a smaller register budget per lane than NVIDIA's.
     *    Whether the driver's matrices want subgroup 8 or 16 is unmeasured.
     *  - Apple (MoltenVK exposes no cooperative matrices today; simdgroup matrices are 8 x 8): 4 SIMD groups of
     *    32 over 64 x 64, within 32 KiB of threadgroup memory.
     *  - Unknown: the same modest tile, pinned to 32 where size control allows (else the device's fixed size).
     *  - CPU: off (lavapipe has no cooperative matrices; the emulated variant exists for the tests). */
    [TUNING_CPU] = {
        .name = "cpu",
        .elementwise_wg = 64, .row_wg = 8,
        .matvec_wg = 8, .matvec_rows = 16, .matvec_split = 1,
        .matvec_cols = 16, .matvec_int_dot = 0, .matvec_max_split = 1,
        .matmul_wg = 64, .matmul_tile_m = 16, .matmul_tile_n = 16, .matmul_tile_k = 16, .matmul_min_n = UINT32_MAX,
        .attn_wg = 8, .attn_block_kv = 8, .attn_split_kv = 512, .attn_split_rows = 32,
        .fp16 = 0, .texel_loads = 1,
        .attn_cm_wg = 128, .attn_cm_keys = 32, .attn_cm_min_tokens = UINT32_MAX, .attn_wgs_per_worker = 4,
        .attn_gqa_values = 64, .attn_token_values = 128, .norm_vec4 = 1,
        .coopmat = {.on = 0, .wg = 128, .tile_m = 64, .tile_n = 64, .tile_k = 16,
                    .subgroups_m = 2, .subgroup = 32, .buffers = 2},
    },
    [TUNING_NVIDIA] = {
        .name = "nvidia",
        .elementwise_wg = 256, .row_wg = 1024,
        .matvec_wg = 128, .matvec_rows = 2, .matvec_split = 32,
        .matvec_cols = 8, .matvec_int_dot = 1, .matvec_max_split = 128,
        .matmul_wg = 256, .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16, .matmul_min_n = 9,
        .attn_wg = 32, .attn_block_kv = 64, .attn_split_kv = 256, .attn_split_rows = 2048,
        .fp16 = 1, .texel_loads = 0,
        .attn_cm_wg = 128, .attn_cm_keys = 32, .attn_cm_min_tokens = 32,
        .coopmat = {.on = 1, .wg = 256, .tile_m = 128, .tile_n = 64, .tile_k = 32,
                    .subgroups_m = 2, .subgroup = 32, .buffers = 1},
    },
    [TUNING_AMD_WAVE32] = {
        .name = "amd-wave32",
        .elementwise_wg = 256, .row_wg = 256,
        .matvec_wg = 128, .matvec_rows = 4, .matvec_split = 32,
        .matvec_cols = 8, .matvec_int_dot = 1, .matvec_max_split = 32,
        .matmul_wg = 256, .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16, .matmul_min_n = 9,
        .attn_wg = 32, .attn_block_kv = 64, .attn_split_kv = 256, .attn_split_rows = 2048,
        .fp16 = 1, .texel_loads = 0,
        .attn_cm_wg = 128, .attn_cm_keys = 32, .attn_cm_min_tokens = 32,
        .coopmat = {.on = 1, .wg = 256, .tile_m = 128, .tile_n = 128, .tile_k = 16,
                    .subgroups_m = 2, .subgroup = 32, .buffers = 2},
    },
    [TUNING_AMD_WAVE64] = {
        .name = "amd-wave64",
        .elementwise_wg = 256, .row_wg = 256,
        .matvec_wg = 256, .matvec_rows = 4, .matvec_split = 64,
        .matvec_cols = 8, .matvec_int_dot = 1, .matvec_max_split = 64,
        .matmul_wg = 256, .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16, .matmul_min_n = 9,
        .attn_wg = 64, .attn_block_kv = 128, .attn_split_kv = 256, .attn_split_rows = 2048,
        .fp16 = 1, .texel_loads = 0,
        .attn_cm_wg = 256, .attn_cm_keys = 32, .attn_cm_min_tokens = 32,
        .coopmat = {.on = 1, .wg = 256, .tile_m = 128, .tile_n = 128, .tile_k = 16,
                    .subgroups_m = 2, .subgroup = 64, .buffers = 2},
    },
    [TUNING_INTEL] = {
        .name = "intel",
        .elementwise_wg = 128, .row_wg = 128,
        .matvec_wg = 64, .matvec_rows = 2, .matvec_split = 16,
        .matvec_cols = 8, .matvec_int_dot = 1, .matvec_max_split = 16,
        .matmul_wg = 128, .matmul_tile_m = 32, .matmul_tile_n = 32, .matmul_tile_k = 16, .matmul_min_n = 9,
        .attn_wg = 16, .attn_block_kv = 32, .attn_split_kv = 256, .attn_split_rows = 1024,
        .fp16 = 1, .texel_loads = 0,
        .attn_cm_wg = 128, .attn_cm_keys = 32, .attn_cm_min_tokens = 32,
        .coopmat = {.on = 1, .wg = 128, .tile_m = 64, .tile_n = 64, .tile_k = 32,
                    .subgroups_m = 2, .subgroup = 16, .buffers = 2},
    },
    [TUNING_APPLE] = {
        .name = "apple",
        .elementwise_wg = 256, .row_wg = 256,
        .matvec_wg = 128, .matvec_rows = 4, .matvec_split = 32,
        .matvec_cols = 8, .matvec_int_dot = 1, .matvec_max_split = 32,
        .matmul_wg = 256, .matmul_tile_m = 64, .matmul_tile_n = 64, .matmul_tile_k = 16, .matmul_min_n = 9,
        .attn_wg = 32, .attn_block_kv = 64, .attn_split_kv = 256, .attn_split_rows = 1024,
        .fp16 = 1, .texel_loads = 0,
        .attn_cm_wg = 128, .attn_cm_keys = 32, .attn_cm_min_tokens = 32,
        .coopmat = {.on = 1, .wg = 128, .tile_m = 64, .tile_n = 64, .tile_k = 16,
                    .subgroups_m = 2, .subgroup = 32, .buffers = 2},
    },
    [TUNING_UNKNOWN] = {
        .name = "unknown",
        .elementwise_wg = 128, .row_wg = 128,
        .matvec_wg = 64, .matvec_rows = 2, .matvec_split = 16,
        .matvec_cols = 8, .matvec_int_dot = 0, .matvec_max_split = 16,
        .matmul_wg = 128, .matmul_tile_m = 32, .matmul_tile_n = 32, .matmul_tile_k = 16, .matmul_min_n = 9,
        .attn_wg = 32, .attn_block_kv = 64, .attn_split_kv = 256, .attn_split_rows = 1024,
        .fp16 = 0, .texel_loads = 0,
        .attn_cm_wg = 128, .attn_cm_keys = 32, .attn_cm_min_tokens = 32,
        .coopmat = {.on = 1, .wg = 128, .tile_m = 64, .tile_n = 64, .tile_k = 16,
                    .subgroups_m = 2, .subgroup = 32, .buffers = 2},
    },
};

tuning_class tuning_class_of(const vkr_caps *caps)
{
    switch (caps->vendor) {
    case VKR_VENDOR_MESA_CPU: return TUNING_CPU;
    case VKR_VENDOR_NVIDIA: return TUNING_NVIDIA;
    case VKR_VENDOR_AMD: return caps->subgroup_size == 64 ? TUNING_AMD_WAVE64 : TUNING_AMD_WAVE32;
    case VKR_VENDOR_INTEL: return TUNING_INTEL;
    case VKR_VENDOR_APPLE: return TUNING_APPLE;
    default: return caps->type == VK_PHYSICAL_DEVICE_TYPE_CPU ? TUNING_CPU : TUNING_UNKNOWN;
    }
}

const op_tuning *tuning_for(const vkr_caps *caps) { return &table[tuning_class_of(caps)]; }

const op_tuning *tuning_row(tuning_class cls) { return &table[cls < TUNING_CLASS_COUNT ? cls : TUNING_UNKNOWN]; }

const op_tuning *tuning_row_named(const char *name)
{
    for (int c = 0; name && c < TUNING_CLASS_COUNT; c++)
        if (strcasecmp(table[c].name, name) == 0) return &table[c];
    return NULL;
}

/* ---- fields by name (VKLLM_TUNE, bench-ops --set / --sweep) ---- */

typedef struct tuning_field {
    const char *name;
    size_t offset;
    uint32_t min, max;
    bool pow2; /* a power of two */
} tuning_field;

#define FIELD(f, lo, hi, p2) {#f, offsetof(op_tuning, f), lo, hi, p2}
static const tuning_field fields[] = {
    FIELD(elementwise_wg, 1, 1024, false),
    FIELD(row_wg, 1, 1024, false),
    FIELD(matvec_wg, 1, 1024, false),
    FIELD(matvec_rows, 1, 64, false),
    FIELD(matvec_split, 1, 1024, true),
    FIELD(matmul_wg, 1, 1024, false),
    FIELD(matmul_tile_m, 1, 1024, false),
    FIELD(matmul_tile_n, 1, 1024, false),
    FIELD(matmul_tile_k, 8, 1024, false),
    FIELD(attn_wg, 1, 1024, false),
    FIELD(attn_block_kv, 1, 65536, false),
    FIELD(attn_split_kv, 1, UINT32_MAX, false),
    FIELD(attn_split_rows, 1, UINT32_MAX, false),
    FIELD(matvec_cols, 1, 16, false),
    FIELD(fp16, 0, 1, false),
    FIELD(matmul_min_n, 0, UINT32_MAX, false),
    FIELD(texel_loads, 0, 1, false),
    FIELD(matvec_int_dot, 0, 1, false),
    FIELD(matvec_max_split, 1, 1024, true),
    FIELD(attn_cm_wg, 1, 1024, false),
    FIELD(attn_cm_keys, 1, 1024, false),
    FIELD(attn_cm_min_tokens, 1, UINT32_MAX, false),
    FIELD(attn_wgs_per_worker, 0, 1024, false),
    FIELD(attn_gqa_values, 0, 1024, false),
    FIELD(attn_token_values, 0, 4096, false),
    FIELD(norm_vec4, 0, 1, false),
    FIELD(coopmat.on, 0, 1, false),
    FIELD(coopmat.wg, 1, 1024, false),
    FIELD(coopmat.tile_m, 1, 1024, false),
    FIELD(coopmat.tile_n, 1, 1024, false),
    FIELD(coopmat.tile_k, 8, 1024, false),
    FIELD(coopmat.subgroups_m, 1, 64, false),
    FIELD(coopmat.subgroup, 0, 128, false),
    FIELD(coopmat.buffers, 1, 2, false),
};
#undef FIELD
#define N_FIELDS (sizeof fields / sizeof fields[0])
/* A field added to op_tuning without a line above makes the struct larger than the table says (caught
 * here whenever the padding does not hide it: keep the table in step with the struct). */
_Static_assert(sizeof(op_tuning) == (offsetof(op_tuning, elementwise_wg) + N_FIELDS * sizeof(uint32_t) +
                                     _Alignof(op_tuning) - 1) / _Alignof(op_tuning) * _Alignof(op_tuning),
               "every uint32_t field of op_tuning needs a line in the fields table of tuning.c");

static const tuning_field *find_field(const char *name, size_t len)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (strlen(fields[i].name) == len && strncmp(fields[i].name, name, len) == 0) return &fields[i];
    return NULL;
}

const char *tuning_field_name(size_t i) { return i < N_FIELDS ? fields[i].name : NULL; }

/* "a, b, c" of every field, for error messages. */
static const char *field_list(void)
{
    static char list[512];
    size_t used = 0;
    for (size_t i = 0; i < N_FIELDS && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", fields[i].name);
    return list;
}

static vkllm_status set_field(op_tuning *t, const tuning_field *f, uint32_t value)
{
    if (value < f->min || value > f->max)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tuning: %s=%u is outside %u..%u", f->name, value, f->min,
                          f->max);
    if (f->pow2 && (value & (value - 1)))
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tuning: %s=%u is not a power of two", f->name, value);
    memcpy((char *)t + f->offset, &value, sizeof value);
    return VKLLM_OK;
}

vkllm_status tuning_set(op_tuning *t, const char *field, uint32_t value)
{
    const tuning_field *f = field ? find_field(field, strlen(field)) : NULL;
    if (!f)
        return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tuning: unknown field '%s' (fields: %s)",
                          field ? field : "(null)", field_list());
    return set_field(t, f, value);
}

bool tuning_get(const op_tuning *t, const char *field, uint32_t *value)
{
    const tuning_field *f = field ? find_field(field, strlen(field)) : NULL;
    if (f && value) memcpy(value, (const char *)t + f->offset, sizeof *value);
    return f != NULL;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

/* [begin, end) without surrounding spaces. */
static void trim(const char **begin, const char **end)
{
    while (*begin < *end && is_space(**begin)) (*begin)++;
    while (*end > *begin && is_space((*end)[-1])) (*end)--;
}

static bool parse_value(const char *begin, const char *end, uint32_t *value)
{
    char text[32];
    size_t len = (size_t)(end - begin);
    if (len == 0 || len >= sizeof text) return false;
    memcpy(text, begin, len);
    text[len] = 0;
    if (strcasecmp(text, "max") == 0) {
        *value = UINT32_MAX;
        return true;
    }
    if (text[0] < '0' || text[0] > '9') return false; /* no sign, no spaces: strtoull would take them */
    char *stop;
    errno = 0;
    unsigned long long v = strtoull(text, &stop, 0);
    if (errno || *stop || v > UINT32_MAX) return false;
    *value = (uint32_t)v;
    return true;
}

vkllm_status tuning_apply(op_tuning *t, const char *overrides)
{
    for (const char *p = overrides ? overrides : ""; *p;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *name = p, *name_end = eq ? eq : end;
        trim(&name, &name_end);
        if (name == name_end && !eq) { /* empty item (",," or a trailing comma) */
            p = *end ? end + 1 : end;
            continue;
        }
        if (!eq)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tuning: '%.*s' is not field=value", (int)(end - p), p);
        const tuning_field *f = find_field(name, (size_t)(name_end - name));
        if (!f)
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "tuning: unknown field '%.*s' (fields: %s)",
                              (int)(name_end - name), name, field_list());
        const char *v = eq + 1, *v_end = end;
        trim(&v, &v_end);
        uint32_t value;
        if (!parse_value(v, v_end, &value))
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT,
                              "tuning: %s='%.*s' is not a number (decimal, 0x hex, or max)", f->name,
                              (int)(v_end - v), v);
        VKLLM_TRY(set_field(t, f, value));
        p = *end ? end + 1 : end;
    }
    return VKLLM_OK;
}

vkllm_status tuning_resolve(const vkr_caps *caps, op_tuning *out)
{
    const char *row = getenv("VKLLM_TUNING"), *tune = getenv("VKLLM_TUNE");
    const op_tuning *base = tuning_for(caps);
    if (row && *row) {
        base = tuning_row_named(row);
        if (!base) {
            char names[256];
            size_t used = 0;
            for (int c = 0; c < TUNING_CLASS_COUNT && used < sizeof names; c++)
                used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", c ? ", " : "", table[c].name);
            return vkllm_fail(VKLLM_ERROR_INVALID_ARGUMENT, "VKLLM_TUNING=%s: no such tuning row (rows: %s)", row,
                              names);
        }
    }
    *out = *base;
    vkllm_status st = tuning_apply(out, tune);
    if (st != VKLLM_OK) return vkllm_fail_context(st, "VKLLM_TUNE=\"%s\"", tune);
    return VKLLM_OK;
}
