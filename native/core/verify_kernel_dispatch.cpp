// Runtime choice of the verifier's kernel table, by the same rules as the apply kernels' (kernels.h)
// but decided separately: a table whose translation unit the build left out is null.
#include <cstdlib>
#include <cstring>

#include "verify_kernels.h"

namespace abl {

#if !defined(ABLITERATE_KERNEL_AVX2)
const VerifyKernelTable* verify_avx2_kernels() { return nullptr; }
#endif
#if !defined(ABLITERATE_KERNEL_AVX512)
const VerifyKernelTable* verify_avx512_kernels() { return nullptr; }
#endif

namespace {

bool cpu_has(const char* feature_set) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (std::strcmp(feature_set, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  (void)feature_set;
  return false;
#endif
}

const VerifyKernelTable& choose() {
  const char* cap = std::getenv("ABLITERATE_SIMD");
  const bool allow_avx512 = !cap || std::strcmp(cap, "avx512") == 0 || std::strcmp(cap, "auto") == 0;
  const bool allow_avx2 = allow_avx512 || std::strcmp(cap, "avx2") == 0;
  // Ask the CPU first: the tables are built by code compiled for their instruction set.
  if (allow_avx512 && cpu_has("avx512") && verify_avx512_kernels()) return *verify_avx512_kernels();
  if (allow_avx2 && cpu_has("avx2") && verify_avx2_kernels()) return *verify_avx2_kernels();
  return verify_scalar_kernels();
}

}  // namespace

const VerifyKernelTable& best_verify_kernels() {
  static const VerifyKernelTable& table = choose();
  return table;
}

}  // namespace abl
