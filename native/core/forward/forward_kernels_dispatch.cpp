// Runtime choice of the forward kernel table, with the same ABLITERATE_SIMD cap as the projection kernels.
#include <cstdlib>
#include <cstring>

#include "../cpu_features.h"

#include "forward_kernels.h"

namespace abl {
namespace fwd {

#if !defined(ABLITERATE_KERNEL_AVX2)
const ForwardKernels* avx2_forward_kernels() { return nullptr; }
#endif

namespace {

const ForwardKernels& choose() {
  const char* cap = std::getenv("ABLITERATE_SIMD");
  const bool allow_avx2 = !cap || std::strcmp(cap, "scalar") != 0;
  if (allow_avx2 && avx2_forward_kernels() && cpu_runs_avx2()) return *avx2_forward_kernels();
  return scalar_forward_kernels();
}

}  // namespace

const ForwardKernels& best_forward_kernels() {
  static const ForwardKernels& table = choose();
  return table;
}

}  // namespace fwd
}  // namespace abl
