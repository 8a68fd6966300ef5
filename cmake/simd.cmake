# Per-ISA kernel translation units. Each *kernels_<isa>.cpp (the projection kernels, the verifier's
# verify_kernels_<isa>.cpp, the forward engine's) instantiates the same kernel templates for one
# instruction set; only those files get the ISA's compiler flags, so the rest of the addon stays
# baseline x86-64 and runtime dispatch (__builtin_cpu_supports) picks the widest kernel the CPU runs.
# Kernels for ISAs outside the chosen ABLITERATE_SIMD level are left out of the build.

set(ABLITERATE_AVX2_FLAGS -mavx2 -mfma -mf16c)
# GCC 12 warns falsely about its own AVX-512 conversion intrinsics (-Wmaybe-uninitialized).
set(ABLITERATE_AVX512_FLAGS -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c -Wno-maybe-uninitialized)

function(abliterate_configure_simd target sources_var)
  set(sources ${${sources_var}})
  set(x86 OFF)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i[3-6]86)$")
    set(x86 ON)
  endif()

  set(want_avx2 OFF)
  set(want_avx512 OFF)
  if(x86 AND ABLITERATE_SIMD STREQUAL "auto")
    set(want_avx2 ON)
    set(want_avx512 ON)
  elseif(x86 AND ABLITERATE_SIMD STREQUAL "avx512")
    set(want_avx512 ON)
  elseif(x86 AND ABLITERATE_SIMD STREQUAL "avx2")
    set(want_avx2 ON)
  elseif(NOT x86 AND NOT ABLITERATE_SIMD MATCHES "^(auto|scalar)$")
    message(FATAL_ERROR "ABLITERATE_SIMD=${ABLITERATE_SIMD} needs an x86-64 target (this is ${CMAKE_SYSTEM_PROCESSOR})")
  endif()

  foreach(source IN LISTS sources)
    if(source MATCHES "kernels_avx2\\.cpp$")
      if(want_avx2)
        set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "${ABLITERATE_AVX2_FLAGS}")
      else()
        list(REMOVE_ITEM sources ${source})
      endif()
    elseif(source MATCHES "kernels_avx512\\.cpp$")
      if(want_avx512)
        set_source_files_properties(${source} PROPERTIES COMPILE_OPTIONS "${ABLITERATE_AVX512_FLAGS}")
      else()
        list(REMOVE_ITEM sources ${source})
      endif()
    endif()
  endforeach()

  if(want_avx2)
    target_compile_definitions(${target} PRIVATE ABLITERATE_KERNEL_AVX2=1)
  endif()
  if(want_avx512)
    target_compile_definitions(${target} PRIVATE ABLITERATE_KERNEL_AVX512=1)
  endif()
  set(${sources_var} ${sources} PARENT_SCOPE)
  message(STATUS "abliterate: SIMD=${ABLITERATE_SIMD} (avx2 kernels: ${want_avx2}, avx512 kernels: ${want_avx512})")
endfunction()
