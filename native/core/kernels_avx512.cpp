// AVX-512 F/BW/VL kernels (8 doubles per vector). Compiled with the AVX-512 flags from cmake/simd.cmake;
// best_kernels() calls in here only on CPUs that report those features.
#include "kernel_impl.h"

namespace abl {

const KernelTable* avx512_kernels() {
  static const KernelTable table = make_kernel_table<Avx512Simd>("avx512");
  return &table;
}

}  // namespace abl
