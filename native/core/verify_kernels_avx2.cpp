// AVX2 + F16C verifier kernels. The build compiles only this file with -mavx2 -mfma -mf16c (the
// *kernels_avx2.cpp pattern of cmake/simd.cmake and binding.gyp); best_verify_kernels() calls in here only
// on CPUs that report those features. The kernels use no FMA: -ffp-contract=off keeps every a*b+c as written.
#include "verify_kernels_impl.h"

namespace abl {

const VerifyKernelTable* verify_avx2_kernels() {
  static const VerifyKernelTable table = make_verify_kernel_table<VerifyAvx2Lane>("avx2");
  return &table;
}

}  // namespace abl
