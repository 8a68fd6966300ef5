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

/**
 * One blocked-GEMM recipe, Y = X · Wᵀ: how X and W are packed and the register-tile micro-kernel that multiplies
 * the packs. gemm.cpp holds the loops around it (blocking, threads, buffers) for every recipe.
 *
 * Packed layout, in "k-groups" of `k_group` consecutive k (1 for fp32; 2 for bf16, a pair per 32-bit word, the
 * operand layout of vdpbf16ps), elements of `element_bytes`:
 * - A micro-panel (mr rows of X): a[(g * mr + i) * k_group + t] = X[row0 + i][k0 + g * k_group + t];
 * - B panel (nr rows of W):        b[(g * nr + j) * k_group + t] = W[n0 + j][k0 + g * k_group + t];
 * rows past the matrix and k past its depth are zero, so the tile's padding adds exact zeros.
 */
struct GemmKernels {
  const char* name;
  /** Rows of C per micro-kernel call (≤ kMaxGemmMr) and columns of C (rows of W) per call (≤ kMaxGemmNr). */
  size_t mr, nr;
  size_t k_group;
  size_t element_bytes;
  /** Packs rows [row0, row0 + rows) (rows ≤ mr), columns [k0, k0 + kc) of fp32 X (row stride ldx) into one micro-panel. */
  void (*pack_a)(const float* x, size_t ldx, size_t row0, size_t rows, size_t k0, size_t kc, void* panel);
  /** Packs rows n0 .. n0+nr'-1 (nr' ≤ nr) of a row-major weight (row stride ldw elements), columns k0 .. k0+kc-1. */
  void (*pack_b)(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t rows, size_t k0, size_t kc, void* panel);
  /** The same for a weight stored transposed, [in, out] (row stride ldw): element (n, k) at W[k][n]. */
  void (*pack_b_transposed)(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t rows, size_t k0, size_t kc,
                            void* panel);
  /**
   * C[i][j] (+)= Σ_k A[k][i] · B[k][j] over `groups` k-groups, for i < rows, j < cols; the rest of the tile is
   * computed but not stored. `accumulate` adds to C instead of overwriting it. Panels are 64-byte aligned.
   */
  void (*micro_kernel)(size_t groups, const void* a, const void* b, float* c, size_t ldc, size_t rows, size_t cols,
                       bool accumulate);
};

constexpr size_t kMaxGemmMr = 16;
constexpr size_t kMaxGemmNr = 64;

/** Which GEMMs of a table use its bf16 recipe (when it has one). */
enum class Bf16Use : uint8_t {
  /** None: everything in fp32 (`compute: "fp32"`, and CPUs without AVX512_BF16). */
  Never,
  /** Weights stored in BF16, which the recipe reads exactly; F16/F32 weights stay fp32 (`compute: "auto"`). */
  Bf16Weights,
  /** Every weight, rounded to bf16 on packing (`compute: "bf16"`). */
  AllWeights,
};

struct ForwardKernels {
  const char* name;
  /** dst[i] = float(src[i]) for n elements of dtype (F32, F16, BF16; F64 rounded). */
  void (*convert)(const uint8_t* src, Dtype dtype, float* dst, size_t n);
  /** The fp32 GEMM: the reference arithmetic, fp32 products and sums. */
  GemmKernels gemm_fp32;
  /** Products of bf16-rounded activations and bf16 weights summed in fp32 (vdpbf16ps); null where unsupported. */
  const GemmKernels* gemm_bf16;
  Bf16Use bf16_use;
  float (*dot)(const float* a, const float* b, size_t n);
  /** y += a · x */
  void (*axpy)(float a, const float* x, float* y, size_t n);
  /** y = a · y */
  void (*scale)(float a, float* y, size_t n);
  /**
   * out[j] = dot(x, rows + j · stride, n) for j < count: attention scores of one query over cached keys, each the
   * table's `dot` exactly, in one call.
   */
  void (*dot_rows)(const float* x, const float* rows, size_t stride, size_t count, size_t n, float* out);
  /** y += weights[j] · (rows + j · stride)[0, n) for j = 0 .. count−1 in order: `axpy` per row, in one call. */
  void (*axpy_rows)(const float* weights, const float* rows, size_t stride, size_t count, size_t n, float* y);
  /**
   * out[i] = silu(gate[i]) · up[i], or silu(gate[i]) where up is null (the MLP's activation). The SIMD tables
   * use a polynomial exp, within a few ulp of forward_math.h's silu (test/unit/perf-activation.test.ts).
   */
  void (*silu_mul)(const float* gate, const float* up, float* out, size_t n);
  /**
   * out[i] = gelu_tanh(gate[i]) · up[i], or gelu_tanh(gate[i]) where up is null. The scalar table is torch's
   * 0.5·x·(1 + tanh(inner)) through libm; the SIMD ones the same value as x · sigmoid(2·inner), the inner argument
   * rounded as torch rounds it, with silu's polynomial exp (test/unit/perf-activation.test.ts bounds both).
   */
  void (*gelu_tanh_mul)(const float* gate, const float* up, float* out, size_t n);
  /**
   * out[i] = gelu(gate[i]) · up[i] (the erf form), or gelu(gate[i]) where up is null. The scalar table is torch's
   * 0.5·x·(1 + erf(x/√2)) through libm; the SIMD ones x·Φ(x) from a polynomial erfc (test/unit/perf-activation.test.ts).
   */
  void (*gelu_mul)(const float* gate, const float* up, float* out, size_t n);
  /**
   * values[j] ← exp(values[j] − shift) for j < n, where shift ≥ every value (attention's softmax), returning their sum
   * in the table's fixed order. AVX-512 uses the polynomial exp, within a few ulp; the others forward_math.h's
   * exp_shifted_sum (test/unit/perf-activation.test.ts).
   */
  float (*exp_shifted)(float* values, size_t n, float shift);
  /**
   * values[j] ← cap · tanh(values[j] / cap) for j < n (Gemma 2's attention and final-logit soft-capping). The
   * scalar table is forward_math.h's soft_cap (libm's tanhf); the SIMD ones a polynomial tanh, within a few ulp
   * (test/unit/perf-activation.test.ts).
   */
  void (*soft_cap)(float* values, size_t n, float cap);
};

/** The GEMM recipe `kernels` uses for a weight stored in `dtype`. */
inline const GemmKernels& gemm_for(const ForwardKernels& kernels, Dtype dtype) {
  if (kernels.gemm_bf16 && (kernels.bf16_use == Bf16Use::AllWeights || (kernels.bf16_use == Bf16Use::Bf16Weights && dtype == Dtype::BF16))) {
    return *kernels.gemm_bf16;
  }
  return kernels.gemm_fp32;
}

/** How the forward engine multiplies (the request's `compute`). */
enum class Compute : uint8_t { Fp32, Bf16, Auto };

const ForwardKernels& scalar_forward_kernels();
/** Null when the build left the AVX2 unit out. */
const ForwardKernels* avx2_forward_kernels();
/**
 * Null when the build left the AVX-512 unit out. `use` selects the table whose bf16 recipe is used as it says
 * (null when the CPU lacks AVX512_BF16 and `use` is not Never). The registry (../kernel_dispatch.cpp) lists the
 * Never table at the AVX-512 level.
 */
const ForwardKernels* avx512_forward_kernels(Bf16Use use);
/** True when this CPU executes AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16). */
bool cpu_runs_avx512_bf16();
/**
 * The table for `compute` (forward_compute_choice.cpp): the one kernel chooser's fp32 table for Fp32, and for
 * Bf16/Auto its bf16 variant where the chooser picked AVX-512 and the CPU has AVX512_BF16 (else the same fp32
 * table; its name says which ran).
 */
const ForwardKernels& forward_kernels_for(Compute compute);
/** The table the one kernel chooser picked (../kernel_choice.h; ABLITERATE_KERNELS caps it). */
const ForwardKernels& best_forward_kernels();

}  // namespace fwd
}  // namespace abl
