// The forward engine's inner loops, one table per instruction set (forward_kernels_<isa>.cpp), chosen at run
// time. Only raw-pointer functions live in the ISA translation units: anything with external linkage that an
// AVX2 unit emitted (a std::vector method, say) could become the copy the whole addon uses and crash a CPU
// without AVX2, so blocking, threading and buffers stay in baseline code (gemm.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../dtype.h"

namespace abl {
namespace fwd {

/** Rows of A and columns of C one micro-kernel call produces. */
constexpr size_t kGemmMr = 6;
/** Columns of C (rows of the weight) one micro-kernel call produces; a packed B panel is kc × kGemmNr. */
constexpr size_t kGemmNr = 16;

struct ForwardKernels {
  const char* name;
  /** dst[i] = float(src[i]) for n elements of dtype (F32, F16, BF16; F64 rounded). */
  void (*convert)(const uint8_t* src, Dtype dtype, float* dst, size_t n);
  /**
   * Packs rows n0 .. n0+nr-1 (nr ≤ kGemmNr) of a row-major weight (row stride ldw elements), columns k0 .. k0+kc-1,
   * as panel[k * kGemmNr + j] = W[n0 + j][k0 + k], zero for j ≥ nr. `panel` is 32-byte aligned.
   */
  void (*pack_weight_panel)(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t nr, size_t k0, size_t kc,
                            float* panel);
  /** The same for a weight stored transposed, [in, out] (row stride ldw): panel[k * kGemmNr + j] = W[k0 + k][n0 + j]. */
  void (*pack_transposed_panel)(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t nr, size_t k0, size_t kc,
                                float* panel);
  /**
   * C[i][j] (+)= Σ_k Ap[k * kGemmMr + i] · Bp[k * kGemmNr + j] for i < mr, j < nr; the rest of the tile is
   * computed but not stored. `accumulate` adds to C instead of overwriting it.
   */
  void (*micro_kernel)(size_t kc, const float* a_panel, const float* b_panel, float* c, size_t ldc, size_t mr, size_t nr,
                       bool accumulate);
  float (*dot)(const float* a, const float* b, size_t n);
  /** y += a · x */
  void (*axpy)(float a, const float* x, float* y, size_t n);
  /** y = a · y */
  void (*scale)(float a, float* y, size_t n);
};

const ForwardKernels& scalar_forward_kernels();
/** Null when the build left the AVX2 unit out. */
const ForwardKernels* avx2_forward_kernels();
/** The table the one kernel chooser picked (../kernel_choice.h; ABLITERATE_KERNELS caps it). */
const ForwardKernels& best_forward_kernels();

}  // namespace fwd
}  // namespace abl
