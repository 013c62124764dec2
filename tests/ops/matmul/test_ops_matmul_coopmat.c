/* The cooperative-matrix mat-mul (shaders/matmul_coopmat.comp) on any device, through its emulated variant
 * (matmul_T_cm_emu): the caps say "emulated" with a given matrix size, the tuning is a GPU's row, and every type
 * f16 holds runs against the C reference where tiles are partial (rows and n not multiples of the tile, k not a
 * multiple of tile_k, one row, n = 9..300).  This proves the tiling, the indexing, the bounds and the barrier
 * structure (lavapipe runs a workgroup as one SIMD loop, so a barrier missing between two phases that touch
 * the same shared memory shows only on a GPU: run this test there too).  The real NV / KHR variants differ
 * only in the matrix type and its load / mul-add / store; test_ops_matmul runs them where the device has them.
 * Also: the choice between cooperative matrices and the tiled mat-mul, VKLLM_COOPMAT / VKLLM_DISABLE_COOPMAT,
 * and the errors for tiles that do not fit. */
#include <stdlib.h>

#include "matmul_check.h"
#include "ops/matmul/matmul.h"
#include "quant/quant.h"

static const uint32_t cm_types[] = {QUANT_F16,  QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1,
                                    QUANT_Q2_K, QUANT_Q3_K, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K};
#define N_CM_TYPES (sizeof cm_types / sizeof *cm_types)
static const uint32_t main_types[] = {QUANT_F16, QUANT_Q4_0, QUANT_Q4_K, QUANT_Q6_K};
#define N_MAIN_TYPES (sizeof main_types / sizeof *main_types)

/* Odd rows; k not a multiple of 16 (F16: 97 columns, 104 in 8-weight groups) or of 256 where the block allows. */
static uint32_t cols_for(uint32_t type)
{
    uint32_t block = quant_get_traits(type)->block_elems;
    return block == 1 ? 97 : block == 32 ? 96 : 256;
}

static vkr_caps emulated; /* static: outlives a failed check */
static op_tuning row;

/* The device's caps with emulated M x N x K cooperative matrices, and the tuning `base` with cooperative
 * matrices on (the CPU row keeps its mat-vec below matmul_min_n; the GPU rows take n >= 9). */
static void use(const op_tuning *base, const char *name, uint32_t m, uint32_t n, uint32_t k)
{
    ops_context *o = th_ops();
    emulated = *vkr_device_caps(th_device());
    emulated.coopmat = VKR_COOPMAT_EMULATED;
    emulated.coopmat_m = m, emulated.coopmat_n = n, emulated.coopmat_k = k;
    o->caps = &emulated;
    row = *base;
    row.name = name;
    row.coopmat.on = 1;
    row.matmul_min_n = 9;
    o->tuning = &row;
}

static void restore(void)
{
    th_ops()->caps = vkr_device_caps(th_device());
    th_ops()->tuning = tuning_for(th_ops()->caps);
}

static void check(const uint32_t *types, size_t n_types, const uint32_t (*shapes)[2], size_t n_shapes,
                  const uint32_t *ns, size_t n_ns)
{
    for (size_t t = 0; t < n_types; t++) {
        if (th_rerun_skips_type(types[t])) continue;
        for (size_t s = 0; s < n_shapes; s++)
            th_check_matmul(types[t], shapes[s][0], shapes[s][1] ? shapes[s][1] : cols_for(types[t]), ns, n_ns);
    }
}

/* Each GPU row's tiles as they ship, with a matrix size its vendor lists, at 37 rows (a partial row tile), n = 9 (a
 * partial column tile) and 130 (a full one plus 2): every type on NVIDIA's row, the main types on the others (a
 * type's own code, the decoding of its blocks into a tile, does not depend on the tile; each (row, type) is a
 * pipeline compiled cold in CI, and test_awkward_shapes runs every type again at 16x8x16). */
static void test_gpu_rows(void **state)
{
    static const struct {
        tuning_class cls;
        uint32_t m, n, k;
    } rows[] = {
        {TUNING_NVIDIA, 16, 16, 16},     {TUNING_AMD_WAVE32, 16, 16, 16}, {TUNING_AMD_WAVE64, 16, 16, 16},
        {TUNING_INTEL, 8, 16, 16},       {TUNING_APPLE, 8, 8, 8},         {TUNING_UNKNOWN, 16, 8, 16},
    };
    static const uint32_t shapes[][2] = {{37, 0}};
    static const uint32_t ns[] = {9, 130};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const op_tuning *base = tuning_row(rows[i].cls);
        use(base, base->name, rows[i].m, rows[i].n, rows[i].k);
        if (i == 0) check(cm_types, N_CM_TYPES, shapes, 1, ns, 2);
        else check(main_types, N_MAIN_TYPES, shapes, 1, ns, 2);
    }
    restore();
}

/* The NVIDIA row at awkward shapes: one row, rows just past a tile (129) and several tiles (300), n from 9 to 300
 * around the 128-column tile; and 16x8x16 matrices (a size NVIDIA also lists). */
static void test_awkward_shapes(void **state)
{
    static const uint32_t shapes[][2] = {{1, 0}, {129, 0}, {300, 0}};
    static const uint32_t ns[] = {9, 16, 127, 128, 129, 300};
    use(tuning_row(TUNING_NVIDIA), "nvidia", 16, 16, 16);
    check(main_types, N_MAIN_TYPES, shapes, 3, ns, 6);
    static const uint32_t shapes_8[][2] = {{129, 0}};
    static const uint32_t ns_8[] = {9, 67};
    use(tuning_row(TUNING_NVIDIA), "nvidia-16x8x16", 16, 8, 16);
    check(cm_types, N_CM_TYPES, shapes_8, 1, ns_8, 2);
    restore();
}

/* Tile variations the shipped rows do not reach: one buffer (two barriers per step); k steps of 96, so that a
 * step ends inside a weight group and the last step is partial (96 / 416 / 512 columns); k 32 with 16-deep
 * matrices (two mul-adds per step); all subgroups along the rows or along the columns; a workgroup of two
 * subgroups; a single subgroup owning the whole tile. */
static void test_tile_variations(void **state)
{
    static const struct {
        const char *name;
        op_coopmat_tuning t;
    } rows[] = {
        {"one-buffer", {1, 256, 128, 128, 16, 2, 32, 1}}, {"k96", {1, 64, 32, 32, 96, 1, 32, 2}},
        {"k32", {1, 128, 64, 64, 32, 2, 32, 1}},           {"m-only", {1, 128, 64, 64, 16, 4, 32, 2}},
        {"n-only", {1, 128, 64, 64, 16, 1, 32, 2}},        {"two-subgroups", {1, 64, 32, 32, 16, 1, 32, 2}},
        {"one-subgroup", {1, 32, 32, 32, 16, 1, 32, 2}},
    };
    static const uint32_t shapes[][2] = {{37, 0}, {70, 0}};
    static const uint32_t ns[] = {9, 67};
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        op_tuning base = *tuning_row(TUNING_UNKNOWN);
        base.coopmat = rows[i].t;
        use(&base, rows[i].name, 16, 16, 16);
        check(rows[i].t.tile_k == 96 ? cm_types : main_types, rows[i].t.tile_k == 96 ? N_CM_TYPES : N_MAIN_TYPES,
              shapes, 2, ns, 2);
    }
    /* k 96 where a step spans several groups and ends inside one: the wide shapes. */
    static const uint32_t wide[][2] = {{33, 416}, {33, 512}};
    static op_tuning k96;
    k96 = *tuning_row(TUNING_UNKNOWN);
    k96.coopmat = rows[1].t;
    use(&k96, "k96-wide", 16, 16, 16);
    static const uint32_t legacy[] = {QUANT_Q4_0, QUANT_Q5_1};
    static const uint32_t k_types[] = {QUANT_Q2_K, QUANT_Q3_K, QUANT_Q6_K};
    check(legacy, 2, wide, 1, ns, 2);
    check(k_types, 3, wide + 1, 1, ns, 2);
    restore();
}

/* A weight bound in row chunks (a device with a 64 KiB binding range: chunks of as many rows as fit): each
 * chunk's dispatch writes its rows from y_row0 on. */
static void test_row_chunks(void **state)
{
    use(tuning_row(TUNING_NVIDIA), "nvidia-chunked", 16, 16, 16);
    emulated.max_storage_buffer_range = 65536;
    static uint8_t data[600 * 13 * 18];
    ops_weight *w = NULL;
    th_check_status(ops_weight_create(th_ops(), QUANT_Q4_0, 600, 416, data, &w), "ops_weight_create");
    assert_true(w->n_chunks > 1 && w->chunk_rows < 600);
    ops_weight_free(th_ops(), w);
    static const uint32_t ns[] = {9, 26}; /* x and y stay within the 64 KiB range */
    th_check_matmul(QUANT_Q4_0, 600, 416, ns, 2);
    restore();
}

/* F32 and BF16 weights keep the tiled mat-mul in f32 with cooperative matrices on (f16 cannot hold them): the
 * f32 bound holds. */
static void test_f32_types_stay_tiled(void **state)
{
    use(tuning_row(TUNING_NVIDIA), "nvidia", 16, 16, 16);
    static const uint32_t types[] = {QUANT_F32, QUANT_BF16};
    static const uint32_t ns[] = {9, 67};
    for (size_t t = 0; t < 2; t++) th_check_matmul(types[t], 37, 97, ns, 2);
    restore();
}

static void expect_error(vkllm_status got, vkllm_status want, const char *needle)
{
    assert_int_equal(got, want);
    if (!strstr(vkllm_last_error(), needle)) fail_msg("message '%s' lacks '%s'", vkllm_last_error(), needle);
}

/* Rows that cannot work are errors naming the row: tiles that do not split into the subgroups' matrices, and
 * tiles beyond the device's shared memory. */
static void test_bad_rows(void **state)
{
    ops_context *o = th_ops();
    static uint8_t data[64 * 18];
    ops_weight *w = NULL;
    th_check_status(ops_weight_create(o, QUANT_Q4_0, 64, 32, data, &w), "ops_weight_create");
    vkr_buffer x = th_alloc(4 * 32 * 16), y = th_alloc(4 * 64 * 16);
    static const struct {
        op_coopmat_tuning t;
        vkllm_status status;
        const char *needle;
    } bad[] = {
        {{1, 256, 128, 128, 16, 3, 32, 2}, VKLLM_ERROR_INVALID_ARGUMENT, "does not split"},  /* 8 subgroups by 3 */
        {{1, 256, 96, 128, 16, 4, 32, 2}, VKLLM_ERROR_INVALID_ARGUMENT, "does not split"},   /* 24 rows per subgroup */
        {{1, 256, 128, 128, 12, 2, 32, 2}, VKLLM_ERROR_INVALID_ARGUMENT, "does not split"},  /* k 12 */
        {{1, 256, 128, 128, 16, 2, 32, 3}, VKLLM_ERROR_INVALID_ARGUMENT, "does not split"},  /* 3 buffers */
        {{1, 200, 128, 128, 16, 2, 32, 2}, VKLLM_ERROR_INVALID_ARGUMENT, "does not split"},  /* 200 / 32 */
        {{1, 256, 256, 128, 32, 2, 32, 2}, VKLLM_ERROR_UNSUPPORTED, "shared memory"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        op_tuning base = *tuning_row(TUNING_NVIDIA);
        base.coopmat = bad[i].t;
        use(&base, "bad", 16, 16, 16);
        emulated.max_shared_memory = 32768;
        vkr_sequence *seq = th_begin();
        expect_error(ops_matmul(o, seq, w, vkr_whole(&x), vkr_whole(&y), 16), bad[i].status, bad[i].needle);
        th_end_and_free(seq);
    }
    restore();
    th_free(&x);
    th_free(&y);
    ops_weight_free(o, w);
}

/* The environment: VKLLM_COOPMAT=emulate makes the device report emulated 16x16x16 matrices (and the mat-mul
 * use them), VKLLM_DISABLE_COOPMAT=1 wins over it, an unknown kind or one the device lacks fails device
 * creation with a message. */
static void test_environment(void **state)
{
    setenv("VKLLM_COOPMAT", "emulate", 1);
    th_reset_device();
    const vkr_caps *caps = th_ops()->caps;
    assert_int_equal(caps->coopmat, VKR_COOPMAT_EMULATED);
    assert_int_equal(caps->coopmat_m * caps->coopmat_n * caps->coopmat_k, 16 * 16 * 16);
    static op_tuning on;
    on = *tuning_row(TUNING_NVIDIA);
    on.name = "nvidia-env";
    th_ops()->tuning = &on;
    static const uint32_t ns[] = {9, 40};
    th_check_matmul(QUANT_Q4_K, 77, 256, ns, 2);

    setenv("VKLLM_DISABLE_COOPMAT", "1", 1);
    th_reset_device();
    assert_int_equal(th_ops()->caps->coopmat, VKR_COOPMAT_NONE);
    unsetenv("VKLLM_DISABLE_COOPMAT");
    unsetenv("VKLLM_COOPMAT");
    th_reset_device();

    vkr_device *dev = NULL;
    setenv("VKLLM_COOPMAT", "tensor", 1);
    expect_error(vkr_device_create(&dev), VKLLM_ERROR_INVALID_ARGUMENT, "expected khr, nv or emulate");
    assert_null(dev);
    const vkr_caps *own = th_ops()->caps;
    if (!own->coopmat_nv) {
        setenv("VKLLM_COOPMAT", "nv", 1);
        expect_error(vkr_device_create(&dev), VKLLM_ERROR_UNSUPPORTED, "no usable NV cooperative matrices");
        assert_null(dev);
    }
    unsetenv("VKLLM_COOPMAT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpu_rows),
        cmocka_unit_test(test_awkward_shapes),
        cmocka_unit_test(test_tile_variations),
        cmocka_unit_test(test_row_chunks),
        cmocka_unit_test(test_f32_types_stay_tiled),
        cmocka_unit_test(test_bad_rows),
        cmocka_unit_test(test_environment),
    };
    return TH_RUN("ops_matmul_coopmat", tests);
}
