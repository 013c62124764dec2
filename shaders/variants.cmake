# Every shader variant vkllm ships: vkllm_shader(NAME SOURCE [DEFINE=VALUE ...]).
# Variants differ by defines (types, flags), never by copied files.
vkllm_shader(copy_u4 copy.comp)
vkllm_shader(add_f32 binary.comp OP_ADD=1)
vkllm_shader(mul_f32 binary.comp OP_MUL=1)
vkllm_shader(scale_f32 scale.comp)

# Weight-matrix products (src/ops/matmul.c), per GGUF type: mat-vec with the shared-memory reduction or
# with subgroup arithmetic (_sg), and the tiled mat-mul; _f16 computes in f16 where the device has it
# (not for F32 and BF16 weights, which f16 cannot hold).
foreach(type f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k)
    string(TOUPPER ${type} upper)
    vkllm_shader(matvec_${type} matvec.comp TYPE_${upper}=1)
    vkllm_shader(matvec_${type}_sg matvec.comp TYPE_${upper}=1 SUBGROUP=1)
    vkllm_shader(matmul_${type} matmul.comp TYPE_${upper}=1)
    if(NOT type STREQUAL "f32" AND NOT type STREQUAL "bf16")
        vkllm_shader(matvec_${type}_f16 matvec.comp TYPE_${upper}=1 FP16=1)
        vkllm_shader(matvec_${type}_sg_f16 matvec.comp TYPE_${upper}=1 SUBGROUP=1 FP16=1)
        vkllm_shader(matmul_${type}_f16 matmul.comp TYPE_${upper}=1 FP16=1)
    endif()
endforeach()
