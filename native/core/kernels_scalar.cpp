// Scalar kernels: the portable fallback, and the reference the SIMD tables must agree with.
#include "kernel_impl.h"

namespace abl {

const KernelTable& scalar_kernels() {
  static const KernelTable table = make_kernel_table<ScalarSimd>("scalar");
  return table;
}

}  // namespace abl
