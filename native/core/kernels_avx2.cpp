// AVX2 + FMA + F16C kernels. CMake compiles only this file with -mavx2 -mfma -mf16c (cmake/simd.cmake);
// best_kernels() calls in here only on CPUs that report those features.
#include "kernel_impl.h"

namespace abl {

const KernelTable* avx2_kernels() {
  static const KernelTable table = make_kernel_table<Avx2Simd>("avx2");
  return &table;
}

}  // namespace abl
