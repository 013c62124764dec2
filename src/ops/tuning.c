#include "tuning.h"

/* Starting points from the published shape of each architecture, to be replaced by measurements:
 *  - CPU (lavapipe): workgroups run as 8-wide SIMD on one thread; several rows per invocation with the
 *    input held in registers beats any cooperative scheme (../shared/notes/lavapipe.md).
 *  - NVIDIA: 32-wide warps; a warp or two per row for mat-vec, 64-128 tiles for mat-mul.
 *  - AMD RDNA: wave32, large register file; GCN/CDNA: wave64.
 *  - Intel Xe: SIMD8-32, smaller register budget per lane; moderate tiles.
 *  - Apple: SIMD groups of 32, 32 KiB threadgroup memory.
 * Attention: one subgroup-sized workgroup per (token, head); on the CPU 8 lanes (one SIMD register), one key
 * per lane per tile (measured: 8 keys per tile 276 us, 32 keys 330 us for a 512-key decode, 8 heads x 64,
 * F16), and few splits, as 2 worker threads are filled by the heads alone. */
static const op_tuning table[TUNING_CLASS_COUNT] = {
    [TUNING_CPU] = {"cpu", 64, 8, 8, 8, 1, 64, 16, 16, 16, 8, 8, 512, 32},
    [TUNING_NVIDIA] = {"nvidia", 256, 256, 128, 4, 32, 256, 64, 64, 16, 32, 64, 256, 2048},
    [TUNING_AMD_WAVE32] = {"amd-wave32", 256, 256, 128, 4, 32, 256, 64, 64, 16, 32, 64, 256, 2048},
    [TUNING_AMD_WAVE64] = {"amd-wave64", 256, 256, 256, 4, 64, 256, 64, 64, 16, 64, 128, 256, 2048},
    [TUNING_INTEL] = {"intel", 128, 128, 64, 4, 16, 128, 32, 32, 16, 16, 32, 256, 1024},
    [TUNING_APPLE] = {"apple", 256, 256, 128, 4, 32, 256, 64, 64, 16, 32, 64, 256, 1024},
    [TUNING_UNKNOWN] = {"unknown", 128, 128, 64, 4, 16, 128, 32, 32, 16, 32, 64, 256, 1024},
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
