# Every shader variant vkllm ships: vkllm_shader(NAME SOURCE [DEFINE=VALUE ...]).
# Variants differ by defines (types, flags), never by copied files.
vkllm_shader(copy_u4 copy.comp)
vkllm_shader(add_f32 binary.comp OP_ADD=1)
vkllm_shader(mul_f32 binary.comp OP_MUL=1)
vkllm_shader(scale_f32 scale.comp)

# Weight-matrix products (src/ops/matmul.c, src/ops/matmul_fused.c), per GGUF type: mat-vec with the
# shared-memory reduction or with subgroup arithmetic (_sg: subgroupAdd, or shuffles for row groups smaller
# than a subgroup), reading texels (_tx, for lavapipe), and the tiled mat-mul; _f16 computes in f16 where the
# device has it (not for F32 and BF16 weights, which f16 cannot hold; the mat-vec not for the types with a
# minimum, whose levels are not centred: see matvec.comp); _q8 is the mat-vec's integer path for quantized
# types (x quantized to 8-bit blocks by quantize_q8 first), _q8dot the same through the device's integer dot
# product (SPV_KHR_integer_dot_product).  Each mat-vec also comes with its fused epilogues: _swiglu (stacked
# gate/up rows) and _qkv_f16 / _qkv_f32 (stacked Q/K/V rows into an F16 / F32 KV cache).
function(vkllm_matvec name)
    vkllm_shader(${name} matvec.comp ${ARGN})
    vkllm_shader(${name}_swiglu matvec.comp ${ARGN} STORE_SWIGLU=1)
    vkllm_shader(${name}_qkv_f16 matvec.comp ${ARGN} STORE_QKV=1 KV_F16=1)
    vkllm_shader(${name}_qkv_f32 matvec.comp ${ARGN} STORE_QKV=1)
endfunction()
foreach(type f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k)
    string(TOUPPER ${type} upper)
    vkllm_matvec(matvec_${type} TYPE_${upper}=1)
    vkllm_matvec(matvec_${type}_sg TYPE_${upper}=1 SUBGROUP=1)
    vkllm_matvec(matvec_${type}_tx TYPE_${upper}=1 TEXEL_LOADS=1)
    vkllm_shader(matmul_${type} matmul.comp TYPE_${upper}=1)
    if(NOT type STREQUAL "f32" AND NOT type STREQUAL "bf16")
        vkllm_shader(matmul_${type}_f16 matmul.comp TYPE_${upper}=1 FP16=1)
    endif()
    if(type MATCHES "^(f16|q8_0|q4_0|q5_0|q3_k|q6_k)$") # src/ops/weight_repack.c: f16_dots
        vkllm_matvec(matvec_${type}_f16 TYPE_${upper}=1 FP16=1)
        vkllm_matvec(matvec_${type}_sg_f16 TYPE_${upper}=1 SUBGROUP=1 FP16=1)
    endif()
    if(NOT type MATCHES "^(f32|f16|bf16)$")
        vkllm_matvec(matvec_${type}_q8 TYPE_${upper}=1 INT_DOT=1)
        vkllm_matvec(matvec_${type}_sg_q8 TYPE_${upper}=1 SUBGROUP=1 INT_DOT=1)
        vkllm_matvec(matvec_${type}_q8dot TYPE_${upper}=1 INT_DOT=1 INT_DOT_EXT=1)
        vkllm_matvec(matvec_${type}_sg_q8dot TYPE_${upper}=1 SUBGROUP=1 INT_DOT=1 INT_DOT_EXT=1)
    endif()
endforeach()
# Cooperative-matrix mat-mul (tensor cores; shaders/matmul_coopmat.comp) for the types f16 holds: _cm_nv
# (VK_NV_cooperative_matrix), _cm_khr (the same SPIR-V rewritten for VK_KHR_cooperative_matrix) and _cm_emu
# (plain GLSL of the same semantics, which the tests run on devices without cooperative matrices).
foreach(type f16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k)
    string(TOUPPER ${type} upper)
    vkllm_shader_coopmat(matmul_${type}_cm matmul_coopmat.comp 8 9 10 TYPE_${upper}=1)
    vkllm_shader(matmul_${type}_cm_emu matmul_coopmat.comp TYPE_${upper}=1 COOPMAT_EMULATE=1)
endforeach()
vkllm_shader(quantize_q8 quantize_q8.comp)
vkllm_shader(quantize_q8_sg quantize_q8.comp SUBGROUP=1)
vkllm_shader(qkv_store_f16 qkv_store.comp KV_F16=1)
vkllm_shader(qkv_store_f32 qkv_store.comp)
vkllm_shader(rms_norm_f32 rms_norm.comp)
vkllm_shader(rms_norm_f32_sg rms_norm.comp USE_SUBGROUP=1)
vkllm_shader(add_rms_norm_f32 rms_norm.comp ADD_RESIDUAL=1)
vkllm_shader(add_rms_norm_f32_sg rms_norm.comp ADD_RESIDUAL=1 USE_SUBGROUP=1)
vkllm_shader(softmax_f32 softmax.comp)
vkllm_shader(softmax_f32_sg softmax.comp USE_SUBGROUP=1)
vkllm_shader(argmax_f32 argmax.comp)
vkllm_shader(argmax_f32_sg argmax.comp USE_SUBGROUP=1)
vkllm_shader(rope_norm_f32 rope.comp)
vkllm_shader(rope_neox_f32 rope.comp ROPE_NEOX=1)
vkllm_shader(swiglu_f32 activation.comp OP_SWIGLU=1)
vkllm_shader(swiglu_pairs_f32 activation.comp OP_SWIGLU_PAIRS=1)
vkllm_shader(gelu_f32 activation.comp OP_GELU=1)
vkllm_shader(f32_to_f16 convert.comp TO_F16=1)
vkllm_shader(f16_to_f32 convert.comp TO_F32=1)
vkllm_shader(get_rows_f32 get_rows.comp)
vkllm_shader(get_rows_f16 get_rows.comp TABLE_F16=1)
vkllm_shader(kv_write_f32 kv_write.comp)
vkllm_shader(kv_write_f16 kv_write.comp KV_F16=1)
vkllm_shader(flash_attn_f32 flash_attn.comp)
vkllm_shader(flash_attn_f16 flash_attn.comp KV_F16=1)
vkllm_shader(flash_attn_combine flash_attn_combine.comp)
# Test-only: a loop whose length is a push constant (fence timeouts, loop guards; tests/test_runtime.c).
vkllm_shader(test_spin test_spin.comp)
