// Runtime choice of the forward kernel table, with the same ABLITERATE_SIMD cap as the projection kernels.
#include <cstdlib>
#include <cstring>

#include "forward_kernels.h"

namespace abl {
namespace fwd {

#if !defined(ABLITERATE_KERNEL_AVX2)
const ForwardKernels* avx2_forward_kernels() { return nullptr; }
#endif

namespace {

bool cpu_runs_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

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
