# Every shader variant vkllm ships: vkllm_shader(NAME SOURCE [DEFINE=VALUE ...]).
# Variants differ by defines (types, flags), never by copied files.
vkllm_shader(copy_u4 copy.comp)
vkllm_shader(add_f32 binary.comp OP_ADD=1)
vkllm_shader(mul_f32 binary.comp OP_MUL=1)
vkllm_shader(scale_f32 scale.comp)
vkllm_shader(kv_write_f32 kv_write.comp)
vkllm_shader(kv_write_f16 kv_write.comp KV_F16=1)
vkllm_shader(flash_attn_f32 flash_attn.comp)
vkllm_shader(flash_attn_f16 flash_attn.comp KV_F16=1)
vkllm_shader(flash_attn_combine flash_attn_combine.comp)
