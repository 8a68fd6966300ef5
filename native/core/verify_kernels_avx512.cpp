// AVX-512 F/BW/VL verifier kernels, compiled with the AVX-512 flags of cmake/simd.cmake (the node-gyp
// build leaves them out); best_verify_kernels() calls in here only on CPUs that report those features.
#include "verify_kernels_impl.h"

namespace abl {

const VerifyKernelTable* verify_avx512_kernels() {
  static const VerifyKernelTable table = make_verify_kernel_table<VerifyAvx512Lane>("avx512");
  return &table;
}

}  // namespace abl
