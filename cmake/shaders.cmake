# Shader build: every variant is one line in shaders/variants.cmake:
#   vkllm_shader(NAME SOURCE [DEFINE=VALUE ...])
# compiles shaders/SOURCE with glslc into SPIR-V (a C initializer list), tracks #include dependencies
# through glslc's depfile, and registers NAME in the generated table that runtime/shaders.h looks up.

find_program(GLSLC glslc REQUIRED)
set(VKLLM_SHADER_OUT ${PROJECT_BINARY_DIR}/shaders)
file(MAKE_DIRECTORY ${VKLLM_SHADER_OUT})
set_property(GLOBAL PROPERTY VKLLM_SHADER_NAMES "")
set_property(GLOBAL PROPERTY VKLLM_SHADER_OUTPUTS "")

# VKLLM_SPIRV_FROM: another build folder of the same sources whose compiled variants (its shaders/*.spv.inc) this
# build copies instead of running glslc again: CI's sanitizer build takes step 1's.  That build must have been
# built first, with the same VKLLM_SHADER_CHECKS (checked here; nothing else changes the SPIR-V).
set(VKLLM_SPIRV_FROM "" CACHE PATH "Build folder whose compiled shaders this build copies instead of compiling them")
if(VKLLM_SPIRV_FROM)
    if(NOT EXISTS ${VKLLM_SPIRV_FROM}/CMakeCache.txt)
        message(FATAL_ERROR "VKLLM_SPIRV_FROM=${VKLLM_SPIRV_FROM} is not a build folder (no CMakeCache.txt)")
    endif()
    load_cache(${VKLLM_SPIRV_FROM} READ_WITH_PREFIX from_ VKLLM_SHADER_CHECKS)
    set(from_checks OFF)
    set(own_checks OFF)
    if(from_VKLLM_SHADER_CHECKS)
        set(from_checks ON)
    endif()
    if(VKLLM_SHADER_CHECKS)
        set(own_checks ON)
    endif()
    if(NOT from_checks STREQUAL own_checks)
        message(FATAL_ERROR "VKLLM_SPIRV_FROM=${VKLLM_SPIRV_FROM} was configured with VKLLM_SHADER_CHECKS="
                            "'${from_VKLLM_SHADER_CHECKS}', this build with '${VKLLM_SHADER_CHECKS}': its shaders differ")
    endif()
endif()

# The rule that makes ${out} a copy of the file of the same name in VKLLM_SPIRV_FROM.
function(vkllm_copy_spirv out)
    get_filename_component(file ${out} NAME)
    set(from ${VKLLM_SPIRV_FROM}/shaders/${file})
    add_custom_command(OUTPUT ${out} COMMAND ${CMAKE_COMMAND} -E copy ${from} ${out} DEPENDS ${from}
                       COMMENT "copy ${file} from ${VKLLM_SPIRV_FROM}" VERBATIM)
endfunction()

function(vkllm_shader name source)
    set(out ${VKLLM_SHADER_OUT}/${name}.spv.inc)
    set_property(GLOBAL APPEND PROPERTY VKLLM_SHADER_NAMES ${name})
    set_property(GLOBAL APPEND PROPERTY VKLLM_SHADER_OUTPUTS ${out})
    if(VKLLM_SPIRV_FROM)
        vkllm_copy_spirv(${out})
        return()
    endif()
    set(defines "")
    if(VKLLM_SHADER_CHECKS)
        list(APPEND defines "-DVKLLM_SHADER_CHECKS=1")
    endif()
    foreach(d ${ARGN})
        list(APPEND defines "-D${d}")
    endforeach()
    add_custom_command(
        OUTPUT ${out}
        COMMAND ${GLSLC} --target-env=vulkan1.2 -O -mfmt=c -MD -MF ${out}.d
                -I${PROJECT_SOURCE_DIR}/shaders ${defines}
                -o ${out} ${PROJECT_SOURCE_DIR}/shaders/${source}
        DEPENDS ${PROJECT_SOURCE_DIR}/shaders/${source}
        DEPFILE ${out}.d
        COMMENT "glslc ${name} (${source} ${ARGN})"
        VERBATIM)
endfunction()

# Cooperative-matrix variants: vkllm_shader_coopmat(NAME SOURCE SPEC_M SPEC_N SPEC_K [DEFINE=VALUE ...]) compiles
# SOURCE with COOPMAT_NV=1 once to a SPIR-V binary, validates it with spirv-val (where installed), and embeds it
# as NAME_nv and, rewritten by tools/spirv_coopmat_khr for SPV_KHR_cooperative_matrix (which this glslang cannot
# compile), as NAME_khr.  SPEC_M/N/K are the constant_ids that size the matrices (see tools/spirv_coopmat.h).
# spirv-tools 2023.1 does not know the KHR extension: the KHR binaries are checked structurally by
# tests/ops/matmul/test_spirv_coopmat.c only.
find_program(SPIRV_VAL spirv-val)
if(NOT SPIRV_VAL)
    message(STATUS "spirv-val not found: cooperative-matrix shaders are not validated at build time")
endif()
add_executable(spirv_coopmat_khr ${PROJECT_SOURCE_DIR}/tools/spirv_coopmat_khr.c ${PROJECT_SOURCE_DIR}/tools/spirv_coopmat.c)

function(vkllm_shader_coopmat name source spec_m spec_n spec_k)
    set(spv ${VKLLM_SHADER_OUT}/${name}_nv.spv)
    set(nv ${VKLLM_SHADER_OUT}/${name}_nv.spv.inc)
    set(khr ${VKLLM_SHADER_OUT}/${name}_khr.spv.inc)
    set_property(GLOBAL APPEND PROPERTY VKLLM_SHADER_NAMES ${name}_nv ${name}_khr)
    set_property(GLOBAL APPEND PROPERTY VKLLM_SHADER_OUTPUTS ${nv} ${khr})
    if(VKLLM_SPIRV_FROM)
        vkllm_copy_spirv(${nv})
        vkllm_copy_spirv(${khr})
        return()
    endif()
    set(defines "-DCOOPMAT_NV=1")
    if(VKLLM_SHADER_CHECKS)
        list(APPEND defines "-DVKLLM_SHADER_CHECKS=1")
    endif()
    foreach(d ${ARGN})
        list(APPEND defines "-D${d}")
    endforeach()
    set(validate "")
    if(SPIRV_VAL)
        set(validate COMMAND ${SPIRV_VAL} --target-env vulkan1.2 ${spv})
    endif()
    add_custom_command(
        OUTPUT ${spv}
        COMMAND ${GLSLC} --target-env=vulkan1.2 -O -MD -MF ${spv}.d
                -I${PROJECT_SOURCE_DIR}/shaders ${defines}
                -o ${spv} ${PROJECT_SOURCE_DIR}/shaders/${source}
        ${validate}
        DEPENDS ${PROJECT_SOURCE_DIR}/shaders/${source}
        DEPFILE ${spv}.d
        COMMENT "glslc ${name}_nv (${source} ${ARGN})"
        VERBATIM)
    add_custom_command(
        OUTPUT ${nv} ${khr}
        COMMAND spirv_coopmat_khr ${spv} ${nv}
        COMMAND spirv_coopmat_khr --khr ${spec_m} ${spec_n} ${spec_k} ${spv} ${khr}
        DEPENDS ${spv} spirv_coopmat_khr
        COMMENT "spirv_coopmat_khr ${name}_nv, ${name}_khr"
        VERBATIM)
endfunction()

# "name" (a string literal) if the variant was declared, else NULL: the family tables list only what exists.
function(vkllm_variant_or_null out names name)
    list(FIND names ${name} at)
    if(at LESS 0)
        set(${out} "NULL" PARENT_SCOPE)
    else()
        set(${out} "\"${name}\"" PARENT_SCOPE)
    endif()
endfunction()

# A table `cname`[quant_type][one per suffix] of the variants prefix_<type><suffix> (NULL where none was built),
# appended to the header text in hdr_var.
function(vkllm_suffix_table hdr_var names cname prefix)
    set(suffixes "${ARGN}") # quoted: an empty suffix stays in the list
    list(LENGTH suffixes n)
    set(hdr "${${hdr_var}}")
    string(APPEND hdr "/* ${prefix}_<type> with the suffixes:")
    foreach(suffix IN LISTS suffixes)
        string(APPEND hdr " '${suffix}'")
    endforeach()
    string(APPEND hdr " (shaders/variants.cmake). */\nstatic const char *const ${cname}[40][${n}] = {\n")
    set(i 0)
    foreach(type ${VKLLM_WEIGHT_TYPES})
        list(GET VKLLM_WEIGHT_TYPE_IDS ${i} id)
        math(EXPR i "${i} + 1")
        set(row "")
        foreach(suffix IN LISTS suffixes)
            vkllm_variant_or_null(v "${names}" ${prefix}_${type}${suffix})
            string(APPEND row "${v}, ")
        endforeach()
        string(APPEND hdr "    [${id}] = {${row}},\n")
    endforeach()
    string(APPEND hdr "};\n\n")
    set(${hdr_var} "${hdr}" PARENT_SCOPE)
endfunction()

# The weight-product variants per quant_type id (VKLLM_WEIGHT_TYPES / _IDS of shaders/variants.cmake), appended
# to the header text in hdr_var: src/ops/matmul/ indexes these instead of composing names.
function(vkllm_shader_family_tables hdr_var names)
    set(hdr "${${hdr_var}}")
    set(paths "" _tx _f16 _q8 _q8dot)
    set(stores "" _swiglu _qkv_f16 _qkv_f32)
    string(APPEND hdr "/* Mat-vec variants: [quant_type][subgroup arithmetic][path: plain, _tx, _f16, _q8, _q8dot]\n")
    string(APPEND hdr " * [epilogue: plain, _swiglu, _qkv_f16, _qkv_f32] (shaders/matvec.comp). */\n")
    string(APPEND hdr "static const char *const vkr_matvec_variants[40][2][5][4] = {\n")
    set(i 0)
    foreach(type ${VKLLM_WEIGHT_TYPES})
        list(GET VKLLM_WEIGHT_TYPE_IDS ${i} id)
        math(EXPR i "${i} + 1")
        string(APPEND hdr "    [${id}] = {\n")
        foreach(sg "" _sg)
            string(APPEND hdr "        {\n")
            foreach(path IN LISTS paths)
                set(row "")
                foreach(store IN LISTS stores)
                    vkllm_variant_or_null(v "${names}" matvec_${type}${sg}${path}${store})
                    string(APPEND row "${v}, ")
                endforeach()
                string(APPEND hdr "            {${row}},\n")
            endforeach()
            string(APPEND hdr "        },\n")
        endforeach()
        string(APPEND hdr "    },\n")
    endforeach()
    string(APPEND hdr "};\n\n")
    vkllm_suffix_table(hdr "${names}" vkr_matmul_variants matmul "" _f16)
    vkllm_suffix_table(hdr "${names}" vkr_matmul_coopmat_variants matmul _cm_nv _cm_khr _cm_emu)
    set(${hdr_var} "${hdr}" PARENT_SCOPE)
endfunction()

# Writes the registry source (name -> SPIR-V words) once all variants are declared.
function(vkllm_shader_registry out_var)
    get_property(names GLOBAL PROPERTY VKLLM_SHADER_NAMES)
    get_property(outputs GLOBAL PROPERTY VKLLM_SHADER_OUTPUTS)
    list(SORT names)
    set(src "/* Generated by cmake/shaders.cmake from shaders/variants.cmake. Do not edit. */\n")
    string(APPEND src "#include \"runtime/shaders.h\"\n#include <string.h>\n\n")
    foreach(n ${names})
        string(APPEND src "static const uint32_t spv_${n}[] =\n#include \"${n}.spv.inc\"\n;\n")
    endforeach()
    string(APPEND src "\nstatic const vkr_shader_blob blobs[] = {\n")
    foreach(n ${names})
        string(APPEND src "    {\"${n}\", spv_${n}, sizeof spv_${n}},\n")
    endforeach()
    string(APPEND src "};\n\nconst vkr_shader_blob *vkr_shader_find(const char *name)\n{\n")
    string(APPEND src "    for (size_t i = 0; i < sizeof blobs / sizeof blobs[0]; i++)\n")
    string(APPEND src "        if (strcmp(blobs[i].name, name) == 0) return &blobs[i];\n    return NULL;\n}\n\n")
    string(APPEND src "size_t vkr_shader_count(void) { return sizeof blobs / sizeof blobs[0]; }\n")
    string(APPEND src "const vkr_shader_blob *vkr_shader_at(size_t i) { return i < vkr_shader_count() ? &blobs[i] : NULL; }\n")
    set(file ${VKLLM_SHADER_OUT}/shader_registry.c)
    file(CONFIGURE OUTPUT ${file} CONTENT "${src}")

    # shader_names.h: one enumerator per variant, so that SHADER(name) in the host code names a variant that
    # exists or does not compile.  shader_families.h: the weight-product families per weight type as tables of
    # the variants that exist (NULL where none was built), so that no host code composes a name at run time.
    set(hdr "/* Generated by cmake/shaders.cmake from shaders/variants.cmake. Do not edit. */\n")
    string(APPEND hdr "#ifndef VKLLM_SHADER_NAMES_H\n#define VKLLM_SHADER_NAMES_H\n\nenum vkr_shader_id {\n")
    foreach(n ${names})
        string(APPEND hdr "    VKR_SHADER_ID_${n},\n")
    endforeach()
    string(APPEND hdr "    VKR_SHADER_ID_COUNT\n};\n\n")
    string(APPEND hdr "/* The variant's name as a string; an unknown name is a compile error. */\n")
    string(APPEND hdr "#define SHADER(name) ((void)VKR_SHADER_ID_##name, #name)\n\n#endif\n")
    set(fam "/* Generated by cmake/shaders.cmake from shaders/variants.cmake. Do not edit. */\n")
    string(APPEND fam "#ifndef VKLLM_SHADER_FAMILIES_H\n#define VKLLM_SHADER_FAMILIES_H\n\n")
    string(APPEND fam "#include <stddef.h>\n\n#include \"shader_names.h\"\n\n")
    vkllm_shader_family_tables(fam "${names}")
    string(APPEND fam "#endif\n")
    file(CONFIGURE OUTPUT ${VKLLM_SHADER_OUT}/shader_families.h CONTENT "${fam}")
    file(CONFIGURE OUTPUT ${VKLLM_SHADER_OUT}/shader_names.h CONTENT "${hdr}")
    set_source_files_properties(${file} PROPERTIES OBJECT_DEPENDS "${outputs}")
    set(${out_var} ${file} ${outputs} PARENT_SCOPE)
endfunction()
