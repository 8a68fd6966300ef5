# Build options for the abliterate native addon. Pass them through cmake-js as
#   npx cmake-js compile --CDABLITERATE_CUDA=ON --CDABLITERATE_SIMD=avx2
# or to plain cmake as -DABLITERATE_...=...

option(ABLITERATE_CUDA "Compile native/cuda/*.cu with nvcc: registers the cuda projection backend plug-in, used at runtime when a device exists" OFF)

set(ABLITERATE_SIMD "auto" CACHE STRING
    "Kernel instruction sets: auto (AVX-512, AVX2 and scalar kernels, chosen at runtime), avx512, avx2 or scalar")
set_property(CACHE ABLITERATE_SIMD PROPERTY STRINGS auto avx512 avx2 scalar)
if(NOT ABLITERATE_SIMD MATCHES "^(auto|avx512|avx2|scalar)$")
  message(FATAL_ERROR "ABLITERATE_SIMD must be auto, avx512, avx2 or scalar (got '${ABLITERATE_SIMD}')")
endif()

set(ABLITERATE_SANITIZE "" CACHE STRING
    "Sanitizers for debug builds: empty, address, undefined or address,undefined")
set_property(CACHE ABLITERATE_SANITIZE PROPERTY STRINGS "" address undefined "address,undefined")
if(NOT ABLITERATE_SANITIZE MATCHES "^(|address|undefined|address,undefined|undefined,address)$")
  message(FATAL_ERROR "ABLITERATE_SANITIZE must be empty, address, undefined or address,undefined (got '${ABLITERATE_SANITIZE}')")
endif()
