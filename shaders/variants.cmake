# Every shader variant vkllm ships: vkllm_shader(NAME SOURCE [DEFINE=VALUE ...]).
# Variants differ by defines (types, flags), never by copied files.
vkllm_shader(copy_u4 copy.comp)
