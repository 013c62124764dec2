/* Tuning overrides as data: VKLLM_TUNING picks a row by name, VKLLM_TUNE sets fields by name, and every
 * bad name or value is an error with a message (at ops creation), never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tuning/tuning.h"

static vkr_caps caps_of(vkr_vendor vendor, VkPhysicalDeviceType type)
{
    vkr_caps c;
    memset(&c, 0, sizeof c);
    c.vendor = vendor;
    c.type = type;
    c.subgroup_size = 32;
    return c;
}

static void clear_env(void)
{
    unsetenv("VKLLM_TUNING");
    unsetenv("VKLLM_TUNE");
}

static void test_default_row(void **state)
{
    clear_env();
    vkr_caps cpu = caps_of(VKR_VENDOR_MESA_CPU, VK_PHYSICAL_DEVICE_TYPE_CPU),
             nv = caps_of(VKR_VENDOR_NVIDIA, VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU);
    op_tuning t;
    assert_int_equal(tuning_resolve(&cpu, &t), VKLLM_OK);
    assert_memory_equal(&t, tuning_row(TUNING_CPU), sizeof t);
    assert_int_equal(tuning_resolve(&nv, &t), VKLLM_OK);
    assert_memory_equal(&t, tuning_row(TUNING_NVIDIA), sizeof t);
}

static void test_row_by_name(void **state)
{
    clear_env();
    vkr_caps cpu = caps_of(VKR_VENDOR_MESA_CPU, VK_PHYSICAL_DEVICE_TYPE_CPU);
    static const struct { const char *name; tuning_class cls; } rows[] = {
        {"cpu", TUNING_CPU},       {"nvidia", TUNING_NVIDIA}, {"amd-wave32", TUNING_AMD_WAVE32},
        {"AMD-Wave64", TUNING_AMD_WAVE64}, {"intel", TUNING_INTEL}, {"apple", TUNING_APPLE},
        {"unknown", TUNING_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        setenv("VKLLM_TUNING", rows[i].name, 1);
        op_tuning t;
        assert_int_equal(tuning_resolve(&cpu, &t), VKLLM_OK);
        assert_memory_equal(&t, tuning_row(rows[i].cls), sizeof t);
        assert_ptr_equal(tuning_row_named(rows[i].name), tuning_row(rows[i].cls));
    }
    setenv("VKLLM_TUNING", "nvidai", 1);
    op_tuning t;
    assert_int_equal(tuning_resolve(&cpu, &t), VKLLM_ERROR_INVALID_ARGUMENT);
    printf("%s\n", vkllm_last_error());
    assert_non_null(strstr(vkllm_last_error(), "nvidai"));
    assert_non_null(strstr(vkllm_last_error(), "amd-wave64")); /* lists the rows */
    setenv("VKLLM_TUNING", "", 1); /* empty: the device's own row */
    assert_int_equal(tuning_resolve(&cpu, &t), VKLLM_OK);
    assert_memory_equal(&t, tuning_row(TUNING_CPU), sizeof t);
    clear_env();
}

static void test_fields_by_name(void **state)
{
    clear_env();
    vkr_caps cpu = caps_of(VKR_VENDOR_MESA_CPU, VK_PHYSICAL_DEVICE_TYPE_CPU);
    setenv("VKLLM_TUNING", "nvidia", 1);
    setenv("VKLLM_TUNE", " matvec_rows = 4, matvec_split=16 ,matmul_min_n=max,fp16=0,matvec_wg=0x40,", 1);
    op_tuning t, want = *tuning_row(TUNING_NVIDIA);
    assert_int_equal(tuning_resolve(&cpu, &t), VKLLM_OK);
    want.matvec_rows = 4;
    want.matvec_split = 16;
    want.matmul_min_n = UINT32_MAX;
    want.fp16 = 0;
    want.matvec_wg = 64;
    assert_memory_equal(&t, &want, sizeof t);
    assert_string_equal(t.name, "nvidia");
    uint32_t v = 0;
    assert_true(tuning_get(&t, "matvec_rows", &v));
    assert_int_equal(v, 4);
    assert_false(tuning_get(&t, "matvec_rowz", &v));
    /* Every field the table names can be set and read back; every row's values are within the ranges. */
    size_t n = 0;
    for (const char *name; (name = tuning_field_name(n)); n++) {
        uint32_t old, now, value = 0;
        assert_true(tuning_get(&t, name, &old));
        static const uint32_t candidates[] = {1, 8, 0, 2};
        for (size_t c = 0; c < sizeof candidates / sizeof *candidates; c++)
            if (candidates[c] != old && tuning_set(&t, name, candidates[c]) == VKLLM_OK) {
                value = candidates[c];
                break;
            }
        assert_true(tuning_get(&t, name, &now));
        if (now != value || now == old) fail_msg("field %s: set %u, read %u (was %u)", name, value, now, old);
        for (int c = 0; c < TUNING_CLASS_COUNT; c++) {
            op_tuning row = *tuning_row((tuning_class)c);
            assert_true(tuning_get(&row, name, &value));
            if (tuning_set(&row, name, value) != VKLLM_OK) fail_msg("row %s: %s", row.name, vkllm_last_error());
        }
    }
    assert_true(n >= 17);
    clear_env();
}

static void test_bad_overrides(void **state)
{
    clear_env();
    vkr_caps nv = caps_of(VKR_VENDOR_NVIDIA, VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU);
    static const struct { const char *tune, *says; } bad[] = {
        {"matvec_rowz=4", "unknown field 'matvec_rowz'"},
        {"matvec_rows", "not field=value"},
        {"=4", "unknown field ''"},
        {"matvec_rows=", "not a number"},
        {"matvec_rows=abc", "not a number"},
        {"matvec_rows=4x", "not a number"},
        {"matvec_rows=-1", "not a number"},
        {"matvec_rows=+1", "not a number"},
        {"matvec_rows=99999999999", "not a number"},
        {"matvec_rows=0", "outside 1..64"},
        {"matvec_split=24", "not a power of two"},
        {"matvec_cols=17", "outside 1..16"},
        {"fp16=2", "outside 0..1"},
        {"matvec_rows=2,matvec_wg=1,texel_loads=yes", "texel_loads"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("VKLLM_TUNE", bad[i].tune, 1);
        op_tuning t;
        assert_int_equal(tuning_resolve(&nv, &t), VKLLM_ERROR_INVALID_ARGUMENT);
        printf("%-40s -> %s\n", bad[i].tune, vkllm_last_error());
        if (!strstr(vkllm_last_error(), bad[i].says) || !strstr(vkllm_last_error(), "VKLLM_TUNE"))
            fail_msg("VKLLM_TUNE=%s: message '%s' lacks '%s'", bad[i].tune, vkllm_last_error(), bad[i].says);
        if (i == 0) assert_non_null(strstr(vkllm_last_error(), "matvec_split")); /* unknown names list the fields */
    }
    op_tuning t = *tuning_row(TUNING_NVIDIA);
    assert_int_equal(tuning_set(&t, "nope", 1), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(tuning_set(&t, NULL, 1), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(tuning_apply(&t, NULL), VKLLM_OK);
    assert_int_equal(tuning_apply(&t, ""), VKLLM_OK);
    clear_env();
}

/* On a real device: ops_create applies both variables, and refuses bad ones cleanly. */
static void test_ops_create(void **state)
{
    clear_env();
    vkr_device *dev = th_device();
    setenv("VKLLM_TUNING", "amd-wave64", 1);
    setenv("VKLLM_TUNE", "matvec_rows=4", 1);
    ops_context *ops = NULL;
    assert_int_equal(ops_create(dev, &ops), VKLLM_OK);
    assert_string_equal(ops->tuning->name, "amd-wave64");
    assert_int_equal(ops->tuning->matvec_rows, 4);
    assert_int_equal(ops->tuning->matvec_split, tuning_row(TUNING_AMD_WAVE64)->matvec_split);
    ops_free(ops);
    setenv("VKLLM_TUNE", "matvec_rows=many", 1);
    ops = NULL;
    assert_int_equal(ops_create(dev, &ops), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_null(ops);
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_row),   cmocka_unit_test(test_row_by_name),
        cmocka_unit_test(test_fields_by_name), cmocka_unit_test(test_bad_overrides),
        cmocka_unit_test(test_ops_create),
    };
    return TH_RUN("tuning", tests);
}
