#include "tuning.h"

/* Starting points from the published shape of each architecture, to be replaced by measurements:
 *  - CPU (lavapipe): workgroups run as 8-wide SIMD on one thread; several rows per invocation with the
 *    input held in registers beats any cooperative scheme (../shared/notes/lavapipe.md), and a mat-vec
 *    workgroup of one SIMD vector keeps both worker threads busy on small matrices.  16 rows per
 *    invocation: every load of x in the loop is a per-lane gather on lavapipe, shared by those rows
 *    (measured 2048x768, 8 columns, CPU time: Q4_0 24.6 ms for n = 128 against 34 with 8 rows and 53
 *    with 4; 32 rows no better; n = 1 unchanged).  Shared-memory tiles
 *    are gathers lane by lane there, so batches also go through the mat-vec, 8 columns per block
 *    (measured 4096x768 Q4_0, n = 64: ~14 GFLOP/s against 1-3.4 for the best tiles).  LLVM has no
 *    native f16 arithmetic on x86, so fp16 stays off.  texel_loads: the mat-vec reads weights and x as
 *    texels, which llvmpipe gathers with vector addressing where an SSBO load at a per-lane address is a
 *    scalar loop with branches per lane (measured 2048x768, CPU time: Q4_0 n = 1 0.51 -> 0.26 ms, n = 128
 *    25 -> 13 ms; F16 n = 1 0.82 -> 0.36 ms).
 *  - NVIDIA: 32-wide warps; a warp per pair of rows for mat-vec (each lane streams uvec4s of consecutive
 *    groups, one subgroupAdd at the end), 64x64 mat-mul tiles with 4x4 outputs per invocation.
 *  - AMD RDNA: wave32, large register file; GCN/CDNA: wave64 (a wave per row pair).  Packed f16 math.
 *  - Intel Xe: SIMD8-32 (16 pinned where size control exists), smaller register budget per lane;
 *    moderate 32x32 tiles.
 *  - Apple: SIMD groups of 32, 32 KiB threadgroup memory.
 * Attention: one subgroup-sized workgroup per (token, head); on the CPU 8 lanes (one SIMD register), one key
 * per lane per tile (measured: 8 keys per tile 276 us, 32 keys 330 us for a 512-key decode, 8 heads x 64,
 * F16), and few splits, as 2 worker threads are filled by the heads alone.
 * Columns in field order: name, elementwise_wg, row_wg, matvec_wg, matvec_rows, matvec_split, matmul_wg,
 * matmul_tile_m, _n, _k, attn_wg, attn_block_kv, attn_split_kv, attn_split_rows, matvec_cols, fp16,
 * matmul_min_n, texel_loads. */
static const op_tuning table[TUNING_CLASS_COUNT] = {
    [TUNING_CPU] = {"cpu", 64, 8, 8, 16, 1, 64, 16, 16, 16, 8, 8, 512, 32, 8, 0, UINT32_MAX, 1},
    [TUNING_NVIDIA] = {"nvidia", 256, 256, 128, 2, 32, 256, 64, 64, 16, 32, 64, 256, 2048, 8, 1, 9, 0},
    [TUNING_AMD_WAVE32] = {"amd-wave32", 256, 256, 128, 2, 32, 256, 64, 64, 16, 32, 64, 256, 2048, 8, 1, 9, 0},
    [TUNING_AMD_WAVE64] = {"amd-wave64", 256, 256, 256, 2, 64, 256, 64, 64, 16, 64, 128, 256, 2048, 8, 1, 9, 0},
    [TUNING_INTEL] = {"intel", 128, 128, 64, 2, 16, 128, 32, 32, 16, 16, 32, 256, 1024, 8, 1, 9, 0},
    [TUNING_APPLE] = {"apple", 256, 256, 128, 2, 32, 256, 64, 64, 16, 32, 64, 256, 1024, 8, 1, 9, 0},
    [TUNING_UNKNOWN] = {"unknown", 128, 128, 64, 2, 16, 128, 32, 32, 16, 32, 64, 256, 1024, 8, 0, 9, 0},

    /* Cooperative-matrix mat-mul: on, wg, tile_m, tile_n, tile_k, subgroups_m, subgroup, buffers.  Shared memory
     * is buffers x (tile_m + tile_n) x (tile_k + 8) halves plus one f32 matrix per subgroup; every row stays
     * within 32 KiB, so the tests run each one as is on lavapipe (emulated).
     *  - NVIDIA (mma.sync on tensor cores; the drivers list 16x16x16): 8 warps in a 2 x 4 grid, each 64 x 32 of a
     *    128 x 128 tile, 4 x 2 accumulators (64 f32 registers per lane), so every A fragment serves 2 products
     *    and every B fragment 4; per loaded element 128 x 128 does twice the math of 64 x 64.  k 16 double-
     *    buffered: 24 KiB of tiles + 8 KiB of stages = 32 KiB, under the 48 KiB available without opt-in and
     *    small enough for two workgroups per SM.  To sweep first: tile_k 32 (48 KiB), tile_n 64 (more
     *    workgroups for 4096-row matrices: 128 x 128 tiles give 128 for n = 512, fewer than the H200's 132 SMs).
     *  - AMD RDNA3 (WMMA 16x16x16, native at wave32, 64 KiB LDS): as NVIDIA.  Wave64 parts: 4 waves of 64 in a
     *    2 x 2 grid, 64 x 64 each (16 accumulators of 4 f32 per lane).
     *  - Intel Xe (DPAS: 8 rows deep, K 16; SIMD8 on Alchemist, SIMD16 on Xe2): 8 subgroups of 16 over 64 x 64
     *    (32 x 16 each), k 32 = two DPAS steps per barrier; a smaller register budget per lane than NVIDIA's.
     *    Whether the driver's matrices want subgroup 8 or 16 is unmeasured.
     *  - Apple (MoltenVK exposes no cooperative matrices today; simdgroup matrices are 8 x 8): 4 SIMD groups of
     *    32 over 64 x 64, within 32 KiB of threadgroup memory.
     *  - Unknown: the same modest tile, pinned to 32 where size control allows (else the device's fixed size).
     *  - CPU: off (lavapipe has no cooperative matrices; the emulated variant exists for the tests). */
    [TUNING_CPU].coopmat = {0, 128, 64, 64, 16, 2, 32, 2},
    [TUNING_NVIDIA].coopmat = {1, 256, 128, 128, 16, 2, 32, 2},
    [TUNING_AMD_WAVE32].coopmat = {1, 256, 128, 128, 16, 2, 32, 2},
    [TUNING_AMD_WAVE64].coopmat = {1, 256, 128, 128, 16, 2, 64, 2},
    [TUNING_INTEL].coopmat = {1, 128, 64, 64, 32, 2, 16, 2},
    [TUNING_APPLE].coopmat = {1, 128, 64, 64, 16, 2, 32, 2},
    [TUNING_UNKNOWN].coopmat = {1, 128, 64, 64, 16, 2, 32, 2},
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
