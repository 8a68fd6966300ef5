// Runtime choice of the kernel table. A table whose translation unit the build left out is null.
#include <cstdlib>
#include <cstring>

#include "cpu_features.h"

#include "kernels.h"

namespace abl {

#if !defined(ABLITERATE_KERNEL_AVX2)
const KernelTable* avx2_kernels() { return nullptr; }
#endif
#if !defined(ABLITERATE_KERNEL_AVX512)
const KernelTable* avx512_kernels() { return nullptr; }
#endif

namespace {

const KernelTable& choose() {
  const char* cap = std::getenv("ABLITERATE_SIMD");
  const bool allow_avx512 = !cap || std::strcmp(cap, "avx512") == 0 || std::strcmp(cap, "auto") == 0;
  const bool allow_avx2 = allow_avx512 || std::strcmp(cap, "avx2") == 0;
  // Ask the CPU first: the tables are built by code compiled for their instruction set.
  if (allow_avx512 && cpu_runs_avx512() && avx512_kernels()) return *avx512_kernels();
  if (allow_avx2 && cpu_runs_avx2() && avx2_kernels()) return *avx2_kernels();
  return scalar_kernels();
}

}  // namespace

const KernelTable& best_kernels() {
  static const KernelTable& table = choose();
  return table;
}

}  // namespace abl
