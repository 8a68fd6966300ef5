// The compute mode on top of the one kernel chooser (../kernel_choice.h): the chooser picks the instruction set
// (and so the fp32 forward table); `compute` decides whether that table's bf16 GEMM recipe is used.
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "../cpu_features.h"
#include "../kernel_choice.h"
#include "forward_kernels.h"

namespace abl {
namespace fwd {

#if !defined(ABLITERATE_KERNEL_AVX512)
const ForwardKernels* avx512_forward_kernels(Bf16Use) { return nullptr; }
#endif

bool cpu_runs_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  // CPUID leaf 7, sub-leaf 1, EAX bit 5 (AVX512_BF16); GCC 12's __builtin_cpu_supports does not know it.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!cpu_runs_avx512() || !__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;
  return (eax & (1u << 5)) != 0;
#else
  return false;
#endif
}

const ForwardKernels& forward_kernels_for(Compute compute) {
  const ForwardKernels& fp32 = *kernel_choice().forward;
  if (compute == Compute::Fp32 || kernel_choice().cap < KernelLevel::Avx512) return fp32;
  const ForwardKernels* bf16 = avx512_forward_kernels(compute == Compute::Bf16 ? Bf16Use::AllWeights : Bf16Use::Bf16Weights);
  return bf16 ? *bf16 : fp32;
}

}  // namespace fwd
}  // namespace abl
