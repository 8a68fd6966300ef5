// Scalar verifier kernels: baseline instruction set, the fallback on every CPU.
#include "verify_kernels_impl.h"

namespace abl {

const VerifyKernelTable& verify_scalar_kernels() {
  static const VerifyKernelTable table = make_verify_kernel_table<VerifyScalarLane>("scalar");
  return table;
}

}  // namespace abl
