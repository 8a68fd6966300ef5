// See cpu_supports_shim.h. Features clang's builtin knows go to the builtin; f16c is read from CPUID.
#include <cpuid.h>

#include <cstring>

extern "C" int abl_fuzz_cpu_supports(const char* feature) {
  __builtin_cpu_init();
  if (std::strcmp(feature, "f16c") == 0) {
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  }
  if (std::strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2");
  if (std::strcmp(feature, "fma") == 0) return __builtin_cpu_supports("fma");
  if (std::strcmp(feature, "avx512f") == 0) return __builtin_cpu_supports("avx512f");
  if (std::strcmp(feature, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw");
  if (std::strcmp(feature, "avx512vl") == 0) return __builtin_cpu_supports("avx512vl");
  return 0;
}
