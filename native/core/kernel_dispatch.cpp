// The kernel registry and the one chooser (kernel_choice.h). To add a table (a new instruction set, or a forward
// table for one that has none yet), list it in kRegistry; best_kernels(), best_verify_kernels() and
// best_forward_kernels() all read the choice made here.
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu_features.h"
#include "forward/forward_kernels.h"
#include "kernel_choice.h"
#include "kernels.h"
#include "native_error.h"
#include "verify_kernels.h"

namespace abl {

// Tables whose translation units the build left out (cmake/simd.cmake, binding.gyp) are null.
#if !defined(ABLITERATE_KERNEL_AVX2)
const KernelTable* avx2_kernels() { return nullptr; }
const VerifyKernelTable* verify_avx2_kernels() { return nullptr; }
namespace fwd {
const ForwardKernels* avx2_forward_kernels() { return nullptr; }
}  // namespace fwd
#endif
#if !defined(ABLITERATE_KERNEL_AVX512)
const KernelTable* avx512_kernels() { return nullptr; }
const VerifyKernelTable* verify_avx512_kernels() { return nullptr; }
#endif
namespace fwd {
/** The AVX-512 forward table computing in fp32 (its bf16 variants: forward_compute_choice.cpp). */
const ForwardKernels* avx512_fp32_forward_kernels() { return avx512_forward_kernels(Bf16Use::Never); }
}  // namespace fwd

namespace {

/** One row per instruction set, widest first; a null entry means "no table of this kind at this level". */
struct KernelRow {
  KernelLevel level;
  const KernelTable* (*projection)();
  const VerifyKernelTable* (*verify)();
  const fwd::ForwardKernels* (*forward)();
};

const KernelRow kRegistry[] = {
    {KernelLevel::Avx512, avx512_kernels, verify_avx512_kernels, fwd::avx512_fp32_forward_kernels},
    {KernelLevel::Avx2, avx2_kernels, verify_avx2_kernels, fwd::avx2_forward_kernels},
    {KernelLevel::Scalar, [] { return &scalar_kernels(); }, [] { return &verify_scalar_kernels(); },
     [] { return &fwd::scalar_forward_kernels(); }},
};

KernelLevel parse_setting(const std::string& setting) {
  if (setting.empty() || setting == "auto" || setting == "avx512") return KernelLevel::Avx512;
  if (setting == "avx2") return KernelLevel::Avx2;
  if (setting == "scalar") return KernelLevel::Scalar;
  throw NativeError(error_code::kInvalidJob,
                    "ABLITERATE_KERNELS must be auto, avx512, avx2 or scalar (got '" + setting + "')");
}

KernelLevel cpu_level() {
  if (cpu_runs_avx512()) return KernelLevel::Avx512;
  if (cpu_runs_avx2()) return KernelLevel::Avx2;
  return KernelLevel::Scalar;
}

/** The first (widest) registered table of one kind at or below the cap. */
template <class Table>
const Table* widest(KernelLevel cap, const Table* (*KernelRow::*kind)()) {
  for (const KernelRow& row : kRegistry) {
    if (row.level > cap || row.*kind == nullptr) continue;
    if (const Table* table = (row.*kind)()) return table;
  }
  return nullptr;  // unreachable: the scalar row has every kind
}

KernelChoice choose() {
  KernelChoice choice;
  const char* value = std::getenv("ABLITERATE_KERNELS");
  choice.setting = value && *value ? value : "auto";
  const KernelLevel requested = parse_setting(choice.setting);
  choice.cpu = cpu_level();
  choice.cap = requested < choice.cpu ? requested : choice.cpu;
  choice.projection = widest(choice.cap, &KernelRow::projection);
  choice.verify = widest(choice.cap, &KernelRow::verify);
  choice.forward = widest(choice.cap, &KernelRow::forward);
  return choice;
}

}  // namespace

const char* kernel_level_name(KernelLevel level) {
  switch (level) {
    case KernelLevel::Avx512: return "avx512";
    case KernelLevel::Avx2: return "avx2";
    case KernelLevel::Scalar: return "scalar";
  }
  return "scalar";
}

const KernelChoice& kernel_choice() {
  static const KernelChoice choice = choose();
  return choice;
}

const KernelTable& best_kernels() { return *kernel_choice().projection; }

const VerifyKernelTable& best_verify_kernels() { return *kernel_choice().verify; }

namespace fwd {
const ForwardKernels& best_forward_kernels() { return *kernel_choice().forward; }
}  // namespace fwd

}  // namespace abl
