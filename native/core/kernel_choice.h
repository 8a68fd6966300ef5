// The one kernel chooser. The projection kernels (kernels.h), the verifier's (verify_kernels.h) and the forward
// engine's (forward/forward_kernels.h) each come as one table per instruction set; kernel_dispatch.cpp lists every
// table in one registry and picks, for each of the three, the widest table that
//   - the build compiled (a table whose translation unit the build left out is null),
//   - the CPU runs (asked first: the tables are built by code compiled for their instruction set), and
//   - the runtime setting ABLITERATE_KERNELS=auto|avx512|avx2|scalar allows (a cap: "avx512" on an AVX2 CPU runs
//     AVX2; unset or empty means auto).
// The choice is made once per process; runtime_info() reports it.
#pragma once

#include <cstdint>
#include <string>

namespace abl {

struct KernelTable;
struct VerifyKernelTable;
namespace fwd {
struct ForwardKernels;
}

enum class KernelLevel : uint8_t { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* kernel_level_name(KernelLevel level);

struct KernelChoice {
  /** ABLITERATE_KERNELS as given ("auto" when unset). */
  std::string setting;
  /** The widest level this CPU runs. */
  KernelLevel cpu = KernelLevel::Scalar;
  /** min(setting, cpu): no table above it is used. */
  KernelLevel cap = KernelLevel::Scalar;
  const KernelTable* projection = nullptr;
  const VerifyKernelTable* verify = nullptr;
  const fwd::ForwardKernels* forward = nullptr;
};

/** Decided on first use; throws NativeError (E_INVALID_JOB) when ABLITERATE_KERNELS holds an unknown value. */
const KernelChoice& kernel_choice();

}  // namespace abl
