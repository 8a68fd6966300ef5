// Runtime choice of the verifier's kernel table, by the same rules as the apply kernels' (kernels.h)
// but decided separately: a table whose translation unit the build left out is null.
#include <cstdlib>
#include <cstring>

#include "cpu_features.h"
#include "verify_kernels.h"

namespace abl {

#if !defined(ABLITERATE_KERNEL_AVX2)
const VerifyKernelTable* verify_avx2_kernels() { return nullptr; }
#endif
#if !defined(ABLITERATE_KERNEL_AVX512)
const VerifyKernelTable* verify_avx512_kernels() { return nullptr; }
#endif

namespace {

const VerifyKernelTable& choose() {
  const char* cap = std::getenv("ABLITERATE_SIMD");
  const bool allow_avx512 = !cap || std::strcmp(cap, "avx512") == 0 || std::strcmp(cap, "auto") == 0;
  const bool allow_avx2 = allow_avx512 || std::strcmp(cap, "avx2") == 0;
  // Ask the CPU first: the tables are built by code compiled for their instruction set.
  if (allow_avx512 && cpu_runs_avx512() && verify_avx512_kernels()) return *verify_avx512_kernels();
  if (allow_avx2 && cpu_runs_avx2() && verify_avx2_kernels()) return *verify_avx2_kernels();
  return verify_scalar_kernels();
}

}  // namespace

const VerifyKernelTable& best_verify_kernels() {
  static const VerifyKernelTable& table = choose();
  return table;
}

}  // namespace abl
