#include "tuning.h"

#include <string.h>

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
 *  - NVIDIA: 32-wide warps; 64x64 mat-mul tiles with 4x4 outputs per invocation.
 *  - AMD RDNA: wave32, large register file; GCN/CDNA: wave64 (a wave per 4 rows, 1 KiB per load).  Packed
 *    f16 math.
 *  - Intel Xe: SIMD8-32 (16 pinned where size control exists), smaller register budget per lane: 2 rows
 *    per lane (~50 registers at n = 8); moderate 32x32 tiles.
 *  - Apple: SIMD groups of 32, 32 KiB threadgroup memory.
 * Attention: one subgroup-sized workgroup per (token, head); on the CPU 8 lanes (one SIMD register), one key
 * per lane per tile (measured: 8 keys per tile 276 us, 32 keys 330 us for a 512-key decode, 8 heads x 64,
 * F16), and few splits, as 2 worker threads are filled by the heads alone.
 * Columns in field order: name, elementwise_wg, row_wg, matvec_wg, matvec_rows, matvec_split, matmul_wg,
 * matmul_tile_m, _n, _k, attn_wg, attn_block_kv, attn_split_kv, attn_split_rows, matvec_cols, fp16,
 * matmul_min_n, texel_loads, matvec_int_dot. */
static const op_tuning table[TUNING_CLASS_COUNT] = {
    [TUNING_CPU] = {"cpu", 64, 8, 8, 16, 1, 64, 16, 16, 16, 8, 8, 512, 32, 8, 0, UINT32_MAX, 1, 0},
    [TUNING_NVIDIA] = {"nvidia", 256, 256, 128, 4, 32, 256, 64, 64, 16, 32, 64, 256, 2048, 8, 1, 9, 0, 1},
    [TUNING_AMD_WAVE32] = {"amd-wave32", 256, 256, 128, 4, 32, 256, 64, 64, 16, 32, 64, 256, 2048, 8, 1, 9, 0, 1},
    [TUNING_AMD_WAVE64] = {"amd-wave64", 256, 256, 256, 4, 64, 256, 64, 64, 16, 64, 128, 256, 2048, 8, 1, 9, 0, 1},
    [TUNING_INTEL] = {"intel", 128, 128, 64, 2, 16, 128, 32, 32, 16, 16, 32, 256, 1024, 8, 1, 9, 0, 1},
    [TUNING_APPLE] = {"apple", 256, 256, 128, 4, 32, 256, 64, 64, 16, 32, 64, 256, 1024, 8, 1, 9, 0, 1},
    [TUNING_UNKNOWN] = {"unknown", 128, 128, 64, 2, 16, 128, 32, 32, 16, 32, 64, 256, 1024, 8, 0, 9, 0, 0},
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

const op_tuning *tuning_by_name(const char *name)
{
    for (int i = 0; name && i < TUNING_CLASS_COUNT; i++)
        if (strcmp(table[i].name, name) == 0) return &table[i];
    return NULL;
}
