/* The Vulkan runtime on its own: device choice and caps, validation counting, the sub-allocator (including
 * buffers past maxStorageBufferRange), sequences with barriers and replay, profiling, the pipeline cache. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/device_internal.h"
#include "harness.h"
#include "runtime/shader_checks.h"
#include "runtime/shaders.h"

static void test_caps(void **state)
{
    const vkr_caps *c = vkr_device_caps(th_device());
    assert_true(c->subgroup_size >= 1 && (c->subgroup_size & (c->subgroup_size - 1)) == 0);
    assert_true(c->max_storage_buffer_range >= (1u << 27) || c->max_storage_buffer_range >= (1u << 20));
    assert_true(c->max_workgroup_invocations >= 128);
    assert_true(c->min_storage_offset_alignment <= VKR_ALLOC_ALIGNMENT);
    /* UMA only by device type, never because a memory type is device-local and host-visible (resizable BAR) */
    assert_int_equal(c->uma,
                     c->type == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU || c->type == VK_PHYSICAL_DEVICE_TYPE_CPU);
    printf("  device %s: subgroup %u, maxStorageBufferRange %llu\n", c->name, c->subgroup_size,
           (unsigned long long)c->max_storage_buffer_range);
}

/* The memory types of a discrete NVIDIA GPU with resizable BAR (as the H200 reports them): weights go to
 * device-local memory the host cannot map, staging to cached system memory, never to the BAR window. */
static void test_memory_types_discrete(void **state)
{
    enum { DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
           HC = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, CA = VK_MEMORY_PROPERTY_HOST_CACHED_BIT };
    VkPhysicalDeviceMemoryProperties nvidia = {
        .memoryTypeCount = 5,
        .memoryTypes = {{0, 1}, {DL, 0}, {HV | HC, 1}, {HV | HC | CA, 1}, {DL | HV | HC, 0}},
        .memoryHeapCount = 2,
    };
    assert_int_equal(vkr_memory_type_for(&nvidia, VKR_MEMORY_DEVICE, false), 1);
    assert_int_equal(vkr_memory_type_for(&nvidia, VKR_MEMORY_HOST, false), 3);
    /* BAR type listed first: still not chosen for either kind on a discrete GPU */
    VkPhysicalDeviceMemoryProperties bar_first = {
        .memoryTypeCount = 3, .memoryTypes = {{DL | HV | HC, 0}, {DL, 0}, {HV | HC, 1}}, .memoryHeapCount = 2};
    assert_int_equal(vkr_memory_type_for(&bar_first, VKR_MEMORY_DEVICE, false), 1);
    assert_int_equal(vkr_memory_type_for(&bar_first, VKR_MEMORY_HOST, false), 2);
    /* unified memory (an integrated GPU, lavapipe): one type serves both */
    VkPhysicalDeviceMemoryProperties unified = {
        .memoryTypeCount = 1, .memoryTypes = {{DL | HV | HC | CA, 0}}, .memoryHeapCount = 1};
    assert_int_equal(vkr_memory_type_for(&unified, VKR_MEMORY_DEVICE, true), 0);
    assert_int_equal(vkr_memory_type_for(&unified, VKR_MEMORY_HOST, true), 0);
}

static void test_device_choice(void **state)
{
    vkr_caps *caps;
    uint32_t count, chosen;
    th_check_status(vkr_list_devices(NULL, &caps, &count, &chosen), "vkr_list_devices");
    assert_true(count >= 1 && chosen < count);
    free(caps);

    setenv("VKLLM_DEVICE", "no such device anywhere", 1);
    vkr_device *dev = NULL;
    assert_int_equal(vkr_device_create(&dev), VKLLM_ERROR_NO_DEVICE);
    assert_null(dev);
    assert_non_null(strstr(vkllm_last_error(), "no such device anywhere"));
    setenv("VKLLM_DEVICE", "0", 1);
    th_check_status(vkr_device_create(&dev), "VKLLM_DEVICE=0");
    vkr_device_destroy(dev);
    unsetenv("VKLLM_DEVICE");
}

/* A deliberately invalid call must be counted, or the whole suite's "zero validation errors" means nothing. */
static void test_validation_is_counted(void **state)
{
    const char *v = getenv("VKLLM_VALIDATION");
    if (!v || strcmp(v, "1") != 0) skip();
    vkr_device *dev;
    th_check_status(vkr_device_create(&dev), "create");
    VkBufferCreateInfo bad = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 0,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT};
    VkBuffer buffer = VK_NULL_HANDLE;
    if (vkCreateBuffer(dev->device, &bad, NULL, &buffer) == VK_SUCCESS && buffer)
        vkDestroyBuffer(dev->device, buffer, NULL);
    assert_true(vkr_device_validation_errors(dev) >= 1);
    vkr_device_destroy(dev);
}

static void test_allocator(void **state)
{
    vkr_device *dev = th_device();
    enum { N = 64 };
    vkr_buffer bufs[N];
    uint32_t sizes[N];
    th_rng rng = {7};
    for (int i = 0; i < N; i++) {
        sizes[i] = 4 * (1 + (uint32_t)(th_next(&rng) % 50000));
        bufs[i] = th_alloc(sizes[i]);
    }
    /* Free every other one, allocate again into the holes, then check no two live ranges overlap. */
    for (int i = 0; i < N; i += 2) th_free(&bufs[i]);
    for (int i = 0; i < N; i += 2) bufs[i] = th_alloc(sizes[i] / 2 + 4);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (bufs[i].handle == bufs[j].handle)
                assert_true(bufs[i].offset + bufs[i].size <= bufs[j].offset ||
                            bufs[j].offset + bufs[j].size <= bufs[i].offset);
    /* Contents survive: each buffer holds its own pattern. */
    for (int i = 0; i < N; i++) {
        uint32_t n = (uint32_t)(bufs[i].size / 4);
        uint32_t *p = malloc(n * 4);
        for (uint32_t k = 0; k < n; k++) p[k] = (uint32_t)i * 0x01000193u + k;
        th_check_status(vkr_upload(dev, &bufs[i], 0, p, n * 4), "upload");
        free(p);
    }
    for (int i = 0; i < N; i++) {
        uint32_t n = (uint32_t)(bufs[i].size / 4);
        uint32_t *p = malloc(n * 4);
        th_download(&bufs[i], p, n * 4);
        for (uint32_t k = 0; k < n; k++) assert_int_equal(p[k], (uint32_t)i * 0x01000193u + k);
        free(p);
        th_free(&bufs[i]);
    }
    vkr_buffer zero;
    assert_int_equal(vkr_buffer_alloc(dev, 0, VKR_MEMORY_DEVICE, &zero), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkr_upload(dev, &bufs[0], 0, sizes, 4), VKLLM_ERROR_INVALID_ARGUMENT); /* freed */
}

static const vkr_pipeline *copy_pipeline(uint32_t wg)
{
    const vkr_pipeline *p;
    th_check_status(ops_pipeline(th_ops(), "copy_u4", 2, 0x1, 4, &wg, 1, &p), "copy pipeline");
    return p;
}

/* Copies n uvec4 from src to dst with the copy shader, in chunks that each bind at most `chunk` bytes. */
static void record_chunked_copy(vkr_sequence *seq, const vkr_buffer *src, const vkr_buffer *dst, uint64_t bytes,
                                uint64_t chunk)
{
    const uint32_t wg = 64;
    const vkr_pipeline *p = copy_pipeline(wg);
    for (uint64_t off = 0; off < bytes; off += chunk) {
        uint64_t n = bytes - off < chunk ? bytes - off : chunk;
        uint32_t count = (uint32_t)(n / 16), groups[3];
        vkr_groups_1d(th_device(), vkr_div_up(count, wg), groups);
        vkr_range bind[2] = {vkr_sub(src, off, n), vkr_sub(dst, off, n)};
        th_check_status(vkr_sequence_dispatch(seq, p, bind, &count, groups, "copy"), "dispatch copy");
    }
}

/* 192 MiB: above lavapipe's 128 MiB maxStorageBufferRange; shaders see it in ranges that fit. */
static void test_buffer_above_binding_limit(void **state)
{
    vkr_device *dev = th_device();
    const uint64_t bytes = 192ull << 20, limit = vkr_device_caps(dev)->max_storage_buffer_range;
    uint32_t *host = malloc(bytes);
    assert_non_null(host);
    for (uint64_t i = 0; i < bytes / 4; i++) host[i] = (uint32_t)(i * 2654435761u);
    vkr_buffer src = th_upload(host, bytes), dst = th_alloc(bytes);
    vkr_sequence *seq;
    th_check_status(vkr_sequence_create(dev, &seq), "create");
    th_check_status(vkr_sequence_begin(seq), "begin");
    /* One binding over the whole buffer is refused with a message naming the limit... */
    uint32_t count = 16;
    uint32_t groups[3] = {1, 1, 1};
    vkr_range whole[2] = {vkr_whole(&src), vkr_whole(&dst)};
    if (bytes > limit) {
        assert_int_equal(vkr_sequence_dispatch(seq, copy_pipeline(64), whole, &count, groups, "copy"),
                         VKLLM_ERROR_INVALID_ARGUMENT);
        assert_non_null(strstr(vkllm_last_error(), "maxStorageBufferRange"));
    }
    /* ...chunks that fit work. */
    record_chunked_copy(seq, &src, &dst, bytes, limit < bytes ? (limit / 2) & ~(uint64_t)255 : bytes);
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    memset(host, 0, bytes);
    th_download(&dst, host, bytes);
    for (uint64_t i = 0; i < bytes / 4; i++)
        if (host[i] != (uint32_t)(i * 2654435761u)) fail_msg("word %llu differs", (unsigned long long)i);
    vkr_sequence_destroy(seq);
    th_free(&src);
    th_free(&dst);
    free(host);
}

/* x -> y (scale 2) -> z (add y + x) -> x (scale into x): each step depends on the previous; replaying the
 * recording with new contents in x must give the new answer. */
static void test_barriers_and_replay(void **state)
{
    vkr_device *dev = th_device();
    ops_context *o = th_ops();
    enum { N = 10007 };
    float *h = malloc(N * sizeof *h), *out = malloc(N * sizeof *out);
    vkr_buffer x = th_alloc(N * 4), y = th_alloc(N * 4), z = th_alloc(N * 4);
    vkr_sequence *seq;
    th_check_status(vkr_sequence_create(dev, &seq), "create");
    th_check_status(vkr_sequence_begin(seq), "begin");
    th_check_status(ops_scale_f32(o, seq, vkr_whole(&x), vkr_whole(&y), N, 2.0f), "scale");
    th_check_status(ops_binary_f32(o, seq, OPS_ADD, vkr_whole(&y), vkr_whole(&x), vkr_whole(&z), N, N), "add");
    th_check_status(ops_scale_f32(o, seq, vkr_whole(&z), vkr_whole(&x), N, 0.5f), "scale back");
    th_check_status(vkr_sequence_end(seq), "end");
    assert_int_equal(vkr_sequence_dispatch_count(seq), 3);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) h[i] = (float)(i % 97) + (float)round;
        th_check_status(vkr_upload(dev, &x, 0, h, N * 4), "upload");
        th_check_status(vkr_sequence_run(seq), "run");
        th_download(&x, out, N * 4);
        for (int i = 0; i < N; i++) assert_float_equal(out[i], 1.5f * h[i], 0.0f);
    }
    /* Recording outside begin/end is an error, not a crash. */
    uint32_t groups[3] = {1, 1, 1};
    vkr_range bind[2] = {vkr_whole(&x), vkr_whole(&y)};
    uint32_t count = 1;
    assert_int_equal(vkr_sequence_dispatch(seq, copy_pipeline(64), bind, &count, groups, "copy"),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    vkr_sequence_destroy(seq);
    th_free(&x), th_free(&y), th_free(&z);
    free(h), free(out);
}

static void test_copy_in_sequence_and_limits(void **state)
{
    vkr_device *dev = th_device();
    uint32_t data[64];
    for (int i = 0; i < 64; i++) data[i] = (uint32_t)i * 3u;
    vkr_buffer a = th_upload(data, sizeof data), b = th_alloc(sizeof data), c = th_alloc(sizeof data);
    vkr_sequence *seq;
    th_check_status(vkr_sequence_create(dev, &seq), "create");
    th_check_status(vkr_sequence_begin(seq), "begin");
    th_check_status(vkr_sequence_copy(seq, vkr_whole(&a), vkr_whole(&b)), "copy a->b");
    th_check_status(vkr_sequence_copy(seq, vkr_whole(&b), vkr_whole(&c)), "copy b->c");
    uint32_t too_many[3] = {vkr_device_caps(dev)->max_workgroup_count[0] + 1, 1, 1};
    vkr_range bind[2] = {vkr_whole(&a), vkr_whole(&b)};
    uint32_t count = 4;
    assert_int_equal(vkr_sequence_dispatch(seq, copy_pipeline(64), bind, &count, too_many, "copy"),
                     VKLLM_ERROR_INVALID_ARGUMENT);
    assert_int_equal(vkr_sequence_copy(seq, vkr_whole(&a), vkr_sub(&b, 0, 16)), VKLLM_ERROR_INVALID_ARGUMENT);
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    uint32_t back[64];
    th_download(&c, back, sizeof back);
    assert_memory_equal(back, data, sizeof data);
    vkr_sequence_destroy(seq);
    th_free(&a), th_free(&b), th_free(&c);
}

static void test_profile(void **state)
{
    setenv("VKLLM_PROFILE", "1", 1);
    vkr_device *dev;
    th_check_status(vkr_device_create(&dev), "create");
    unsetenv("VKLLM_PROFILE");
    if (!vkr_device_profiling(dev)) {
        vkr_device_destroy(dev);
        skip();
    }
    vkr_buffer a, b;
    th_check_status(vkr_buffer_alloc(dev, 4096, VKR_MEMORY_DEVICE, &a), "alloc");
    th_check_status(vkr_buffer_alloc(dev, 4096, VKR_MEMORY_DEVICE, &b), "alloc");
    vkr_pipeline_desc desc = {.shader = "copy_u4", .n_bindings = 2, .readonly_mask = 1, .push_size = 4,
                              .n_spec = 1, .spec = {64}};
    const vkr_pipeline *p;
    th_check_status(vkr_pipeline_get(dev, &desc, &p), "pipeline");
    vkr_sequence *seq;
    th_check_status(vkr_sequence_create(dev, &seq), "create");
    th_check_status(vkr_sequence_begin(seq), "begin");
    uint32_t count = 256, groups[3] = {4, 1, 1};
    vkr_range bind[2] = {vkr_whole(&a), vkr_whole(&b)};
    for (int i = 0; i < 3; i++) th_check_status(vkr_sequence_dispatch(seq, p, bind, &count, groups, "profiled_copy"), "dispatch");
    th_check_status(vkr_sequence_end(seq), "end");
    th_check_status(vkr_sequence_run(seq), "run");
    char text[4096] = {0};
    FILE *f = fmemopen(text, sizeof text - 1, "w");
    vkr_device_print_profile(dev, f);
    fclose(f);
    printf("%s", text);
    assert_non_null(strstr(text, "profiled_copy"));
    assert_non_null(strstr(text, " 3 "));
    vkr_sequence_destroy(seq);
    vkr_buffer_free(dev, &a);
    vkr_buffer_free(dev, &b);
    vkr_device_destroy(dev);
}

static void test_pipeline_cache_file(void **state)
{
    char dir[] = "/tmp/vkllm-cache-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *old = getenv("XDG_CACHE_HOME");
    char *saved = old ? strdup(old) : NULL;
    setenv("XDG_CACHE_HOME", dir, 1);
    vkr_device *dev;
    th_check_status(vkr_device_create(&dev), "create");
    vkr_pipeline_desc desc = {.shader = "copy_u4", .n_bindings = 2, .readonly_mask = 1, .push_size = 4,
                              .n_spec = 1, .spec = {32}};
    const vkr_pipeline *p, *again;
    th_check_status(vkr_pipeline_get(dev, &desc, &p), "pipeline");
    th_check_status(vkr_pipeline_get(dev, &desc, &again), "pipeline again");
    assert_ptr_equal(p, again); /* cached per device */
    desc.shader = "no_such_shader";
    assert_int_equal(vkr_pipeline_get(dev, &desc, &again), VKLLM_ERROR_INVALID_ARGUMENT);
    assert_non_null(strstr(vkllm_last_error(), "no_such_shader"));
    char path[1024];
    snprintf(path, sizeof path, "%s", dev->pipeline_cache_path);
    vkr_device_destroy(dev);
    FILE *f = fopen(path, "rb");
    assert_non_null(f); /* saved on destroy */
    fclose(f);
    /* A damaged cache file is ignored, not trusted. */
    f = fopen(path, "wb");
    fputs("garbage that is not a pipeline cache at all, long enough to pass a size check.....", f);
    fclose(f);
    th_check_status(vkr_device_create(&dev), "create with damaged cache");
    desc.shader = "copy_u4";
    th_check_status(vkr_pipeline_get(dev, &desc, &p), "pipeline after damaged cache");
    vkr_device_destroy(dev);
    if (saved) setenv("XDG_CACHE_HOME", saved, 1);
    else unsetenv("XDG_CACHE_HOME");
    free(saved);
    remove(path);
    rmdir(dir);
}

/* A sequence of `dispatches` test_spin dispatches (shaders/test_spin.comp), one after the other (each writes
 * all of out, so a barrier separates them): `groups` workgroups of 64 invocations, each stepping its generator
 * n times. */
static vkr_sequence *record_spins(const vkr_buffer *out, uint32_t groups, uint32_t n, uint32_t guard_limit,
                                  uint32_t dispatches)
{
    vkr_pipeline_desc desc = {.shader = "test_spin", .n_bindings = 1, .push_size = 8, .n_spec = 1, .spec = {64}};
    const vkr_pipeline *p;
    th_check_status(vkr_pipeline_get(th_device(), &desc, &p), "test_spin pipeline");
    vkr_sequence *seq = th_begin();
    vkr_sequence_set_label(seq, "spin test");
    uint32_t push[2] = {n, guard_limit}, g[3];
    vkr_groups_1d(th_device(), groups, g);
    vkr_range bind[1] = {vkr_sub(out, 0, groups * 64ull * 4)};
    for (uint32_t i = 0; i < dispatches; i++)
        th_check_status(vkr_sequence_dispatch(seq, p, bind, push, g, "spin"), "dispatch spin");
    th_check_status(vkr_sequence_end(seq), "end");
    return seq;
}

static vkr_sequence *record_spin(const vkr_buffer *out, uint32_t groups, uint32_t n, uint32_t guard_limit)
{
    return record_spins(out, groups, n, guard_limit, 1);
}

static uint32_t spin_expected(uint32_t invocation, uint32_t n)
{
    uint32_t x = invocation;
    for (uint32_t i = 0; i < n; i++) x = x * 1664525u + 1013904223u;
    return x;
}

/* A wait that outlasts its timeout fails with a message naming the sequence and the likely cause; the
 * sequence stays in flight, and a later wait with the normal timeout collects it. */
static void test_fence_timeout_names_the_work(void **state)
{
    vkr_device *dev = th_device();
    /* 32 dispatches in a row of 60,000 dependent steps per invocation: ~100 ms on lavapipe (2 x 10^8 steps), and
     * still milliseconds on a large GPU, where the steps of one invocation cannot overlap. */
    enum { GROUPS = 8, N = 60000, DISPATCHES = 32 };
    vkr_buffer out = th_alloc(GROUPS * 64 * 4);
    vkr_sequence *seq = record_spins(&out, GROUPS, N, N, DISPATCHES);
    vkr_set_fence_timeout(dev, 1);
    th_check_status(vkr_sequence_submit(seq), "submit");
    vkllm_status st = vkr_sequence_wait(seq);
    vkr_set_fence_timeout(dev, 0);
    char message[1024];
    snprintf(message, sizeof message, "%s", vkllm_last_error());
    th_check_status(vkr_sequence_wait(seq), "the wait after the timeout");
    uint32_t *got = malloc(GROUPS * 64 * 4);
    th_download(&out, got, GROUPS * 64 * 4);
    for (uint32_t i = 0; i < GROUPS * 64; i += 61) assert_int_equal(got[i], spin_expected(i, N));
    free(got);
    vkr_sequence_destroy(seq);
    th_free(&out);
    if (st == VKLLM_OK) {
        printf("  the spin finished within 1 ms on this device: the timeout path was not taken\n");
        skip();
    }
    printf("  %s\n", message);
    assert_int_equal(st, VKLLM_ERROR_VULKAN);
    assert_non_null(strstr(message, "sequence 'spin test' (32 dispatches from 'spin' to 'spin')"));
    assert_non_null(strstr(message, "has not finished"));
    assert_non_null(strstr(message, "may be hung"));
    assert_non_null(strstr(message, "VKLLM_FENCE_TIMEOUT_MS"));
}

/* The shader-check build: a loop that runs past its guard's bound (from its push constant, or the cap of every
 * guard below lavapipe's silent cut at 65,535 iterations) fails the wait, naming the shader and line; the
 * record is cleared, and a loop within its bound runs to the end. */
static void test_loop_guard_fires(void **state)
{
    if (!vkr_shader_checks_enabled()) {
        printf("  built without -DVKLLM_SHADER_CHECKS=ON: no guards to fire\n");
        skip();
    }
    struct { uint32_t n, limit; vkllm_status want; const char *bound; } cases[] = {
        {1000, 1000, VKLLM_OK, NULL},
        {1000, 100, VKLLM_ERROR_VALIDATION, "bound of 100 iterations"},
        {1u << 30, 1u << 30, VKLLM_ERROR_VALIDATION, "bound of 65000 iterations"},
        {70000, 100000, VKLLM_ERROR_VALIDATION, "bound of 65000 iterations"},
        {64999, 100000, VKLLM_OK, NULL},
    };
    vkr_buffer out = th_alloc(64 * 4);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        vkr_sequence *seq = record_spin(&out, 1, cases[i].n, cases[i].limit);
        vkllm_status st = vkr_sequence_run(seq);
        printf("  n %u, bound %u: %s%s%s\n", cases[i].n, cases[i].limit, vkllm_status_name(st),
               st ? ": " : "", st ? vkllm_last_error() : "");
        assert_int_equal(st, cases[i].want);
        if (cases[i].want == VKLLM_OK) {
            uint32_t got[64];
            th_download(&out, got, sizeof got);
            assert_int_equal(got[63], spin_expected(63, cases[i].n));
        } else {
            const char *e = vkllm_last_error();
            assert_non_null(strstr(e, "shader 'test_spin' (line 12 of"));
            assert_non_null(strstr(e, cases[i].bound));
            assert_non_null(strstr(e, "sequence 'spin test'"));
        }
        vkr_sequence_destroy(seq);
    }
    th_free(&out);
}

/* One-shot transfers reuse the device's command buffer and fence, and every submit is counted. */
static void test_submits_are_counted(void **state)
{
    vkr_device *dev = th_device();
    uint32_t data[256] = {0};
    vkr_buffer b = th_alloc(sizeof data);
    uint64_t before = vkr_submit_count(dev);
    for (int i = 0; i < 5; i++) th_check_status(vkr_upload(dev, &b, 0, data, sizeof data), "upload");
    th_check_status(vkr_fill(dev, &b, 0, sizeof data, 7), "fill");
    th_download(&b, data, sizeof data);
    assert_int_equal(data[255], 7);
    assert_int_equal(vkr_submit_count(dev) - before, 7);
    th_free(&b);
}

/* Two devices computing at once (replicas of a model) must not poll their fences: each device counts as computing
 * from a submission to the end of a wait on it (a destroyed sequence's too). */
static void test_polling_devices_are_counted(void **state)
{
    (void)state;
    vkr_device_options o = VKR_DEVICE_OPTIONS_DEFAULT;
    o.cpu_threads = 1;
    vkr_device *dev[2] = {NULL, NULL};
    vkr_sequence *seq[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        th_check_status(vkr_device_create_with(&o, &dev[i]), "device");
        th_check_status(vkr_sequence_create(dev[i], &seq[i]), "sequence");
        th_check_status(vkr_sequence_begin(seq[i]), "begin");
        th_check_status(vkr_sequence_end(seq[i]), "end");
    }
    if (vkr_fence_spin_seconds(dev[0]) == 0) { /* not lavapipe: no device polls, none is counted */
        th_check_status(vkr_sequence_run(seq[0]), "run");
        assert_int_equal(vkr_polling_devices_computing(), 0);
    } else {
        assert_int_equal(vkr_polling_devices_computing(), 0);
        th_check_status(vkr_sequence_submit(seq[0]), "submit 0");
        assert_int_equal(vkr_polling_devices_computing(), 1);
        th_check_status(vkr_sequence_submit(seq[1]), "submit 1");
        assert_int_equal(vkr_polling_devices_computing(), 2);
        th_check_status(vkr_sequence_wait(seq[0]), "wait 0");
        assert_int_equal(vkr_polling_devices_computing(), 1);
        th_check_status(vkr_sequence_submit(seq[0]), "submit 0 again");
        assert_int_equal(vkr_polling_devices_computing(), 2);
        th_check_status(vkr_sequence_wait(seq[0]), "wait 0 again");
        assert_int_equal(vkr_polling_devices_computing(), 1);
        vkr_sequence_destroy(seq[1]); /* in flight: destroying it waits for it */
        seq[1] = NULL;
        assert_int_equal(vkr_polling_devices_computing(), 0);
    }
    for (int i = 0; i < 2; i++) {
        vkr_sequence_destroy(seq[i]);
        vkr_device_destroy(dev[i]);
    }
    assert_int_equal(vkr_polling_devices_computing(), 0);
}

static void test_shader_registry(void **state)
{
    assert_true(vkr_shader_count() >= 1);
    for (size_t i = 0; i < vkr_shader_count(); i++) {
        const vkr_shader_blob *b = vkr_shader_at(i);
        assert_true(b->size >= 20 && b->size % 4 == 0);
        assert_int_equal(b->code[0], 0x07230203u); /* SPIR-V magic */
        assert_ptr_equal(vkr_shader_find(b->name), b);
    }
    assert_null(vkr_shader_find("nope"));
}

/* Counts in environment variables: decimal digits only, within the bound. */
static void test_parse_decimal(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_true(vkr_parse_decimal("0", 1024, &v) && v == 0);
    assert_true(vkr_parse_decimal("1024", 1024, &v) && v == 1024);
    assert_true(vkr_parse_decimal("18446744073709551615", UINT64_MAX, &v) && v == UINT64_MAX);
    static const char *const bad[] = {"1025", "-1", "+1", " 1", "1 ", "1x", "0x10", "", "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (vkr_parse_decimal(bad[i], 1024, &v)) fail_msg("'%s' parsed", bad[i]);
    assert_false(vkr_parse_decimal(NULL, 1024, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_decimal),
        cmocka_unit_test(test_shader_registry),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_device_choice),
        cmocka_unit_test(test_memory_types_discrete),
        cmocka_unit_test(test_validation_is_counted),
        cmocka_unit_test(test_allocator),
        cmocka_unit_test(test_buffer_above_binding_limit),
        cmocka_unit_test(test_barriers_and_replay),
        cmocka_unit_test(test_copy_in_sequence_and_limits),
        cmocka_unit_test(test_profile),
        cmocka_unit_test(test_pipeline_cache_file),
        cmocka_unit_test(test_submits_are_counted),
        cmocka_unit_test(test_polling_devices_are_counted),
        cmocka_unit_test(test_fence_timeout_names_the_work),
        cmocka_unit_test(test_loop_guard_fires),
    };
    return TH_RUN("runtime", tests);
}
