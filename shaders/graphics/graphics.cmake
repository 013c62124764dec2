# Graphics shaders (vertex and fragment) of the samples, kept apart from the library's compute variants
# (shaders/variants.cmake): vkllm_graphics_shader(NAME SOURCE) compiles shaders/graphics/SOURCE with glslc into
# ${VKLLM_SHADER_OUT}/NAME.spv.inc (a C initializer list) and appends it to VKLLM_GRAPHICS_SHADERS, for the sample
# target to list among its sources (so that it is built first).
set(VKLLM_GRAPHICS_SHADERS "")
function(vkllm_graphics_shader name source)
    set(out ${VKLLM_SHADER_OUT}/${name}.spv.inc)
    add_custom_command(
        OUTPUT ${out}
        COMMAND ${GLSLC} --target-env=vulkan1.2 -O -mfmt=c -o ${out} ${PROJECT_SOURCE_DIR}/shaders/graphics/${source}
        DEPENDS ${PROJECT_SOURCE_DIR}/shaders/graphics/${source}
        COMMENT "glslc ${name} (graphics, ${source})"
        VERBATIM)
    set(VKLLM_GRAPHICS_SHADERS ${VKLLM_GRAPHICS_SHADERS} ${out} PARENT_SCOPE)
endfunction()

vkllm_graphics_shader(render_loop_vert render_loop.vert)
vkllm_graphics_shader(render_loop_frag render_loop.frag)
