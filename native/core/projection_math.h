// Per-element maths of the projection, shared by the CPU kernels (scalar and SIMD lanes) and the CUDA
// kernels, so that every backend performs the same sequence of IEEE operations.
//
// The lane type L supplies `V` (double, __m256d, __m512d) and `fma`. Arithmetic on V uses the plain
// operators (GCC/Clang vector extensions for SIMD types); the build disables FP contraction, so each
// operator rounds exactly once, as the error analysis in docs/precision.md assumes.
//
// Dot products use Ogita-Rump-Oishi "Dot2": the product's rounding error is recovered exactly with an
// FMA and the sum's with TwoSum; both go into a compensation term. The result is as accurate as if it
// had been computed in twice the working precision, which keeps cancellation (bᵀw ≪ ‖w‖) harmless.
#pragma once

#include <cmath>

#include "host_device.h"

namespace abl {

// Unnamed namespace: every translation unit gets its own copy (see ABL_FN in host_device.h).
namespace {
struct ScalarLane {
  using V = double;
  ABL_HD static double fma(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
    return __fma_rn(a, b, c);
#else
    return std::fma(a, b, c);
#endif
  }
};
}  // namespace

/** (sum, comp) += a·b, carrying both rounding errors in comp. */
template <class L>
ABL_FN void accumulate_product(typename L::V& sum, typename L::V& comp, typename L::V a, typename L::V b) {
  using V = typename L::V;
  const V product = a * b;
  const V product_error = L::fma(a, b, -product);
  const V total = sum + product;
  const V virtual_product = total - sum;
  const V sum_error = (sum - (total - virtual_product)) + (product - virtual_product);
  comp = comp + (sum_error + product_error);
  sum = total;
}

/** (sum, comp) += (other_sum, other_comp): joins two partial compensated sums. */
template <class L>
ABL_FN void merge_sums(typename L::V& sum, typename L::V& comp, typename L::V other_sum, typename L::V other_comp) {
  using V = typename L::V;
  const V total = sum + other_sum;
  const V virtual_other = total - sum;
  const V sum_error = (sum - (total - virtual_other)) + (other_sum - virtual_other);
  comp = comp + (sum_error + other_comp);
  sum = total;
}

/** A double-double: the unevaluated sum hi + lo with |lo| ≤ ulp(hi)/2. */
struct DoubleDouble {
  double hi;
  double lo;
};

ABL_FN DoubleDouble two_sum(double a, double b) {
  const double s = a + b;
  const double v = s - a;
  return {s, (a - (s - v)) + (b - v)};
}

/** Rounds a compensated sum to a normalized double-double. */
ABL_FN DoubleDouble finish_sum(double sum, double comp) {
  // Inf/NaN make the compensation meaningless; keep the naive sum's verdict.
  if (!(sum - sum == 0.0)) return {sum, 0.0};
  return two_sum(sum, comp);
}

ABL_FN DoubleDouble dd_add(DoubleDouble a, DoubleDouble b) {
  const DoubleDouble s = two_sum(a.hi, b.hi);
  return two_sum(s.hi, s.lo + (a.lo + b.lo));
}

ABL_FN DoubleDouble dd_scale(DoubleDouble a, double b) {
  const double p = a.hi * b;
  const double e = ScalarLane::fma(a.hi, b, -p);
  return two_sum(p, e + a.lo * b);
}

ABL_FN DoubleDouble dd_square(DoubleDouble a) {
  const double p = a.hi * a.hi;
  const double e = ScalarLane::fma(a.hi, a.hi, -p);
  return two_sum(p, e + 2.0 * a.hi * a.lo);
}

/**
 * Norm-preserving rescale factor ‖w‖ / ‖w'‖ for w' = w − α B Bᵀw with orthonormal B:
 *   ‖w'‖² = ‖w‖² − 2α Σ_k v_k² + α² Σ_k v_k²,   v = Bᵀw.
 * Evaluated in double-double so the cancellation at α ≈ 1 costs nothing. A column (or row) whose
 * projection vanishes (‖w'‖² ≤ 0) has no direction left to rescale: the factor is 0 and it stays 0.
 */
ABL_FN double norm_preserving_scale(DoubleDouble norm_sq, DoubleDouble projection_sq, double alpha) {
  const DoubleDouble linear = dd_scale(projection_sq, 2.0 * alpha);
  const DoubleDouble quadratic = dd_scale(dd_scale(projection_sq, alpha), alpha);
  const DoubleDouble projected_sq =
      dd_add(dd_add(norm_sq, DoubleDouble{-linear.hi, -linear.lo}), quadratic);
  if (!(norm_sq.hi > 0.0) || !(projected_sq.hi > 0.0)) {
    // NaN/Inf inputs propagate; a vanished projection is written as zeros.
    if (norm_sq.hi != norm_sq.hi || projected_sq.hi != projected_sq.hi) return norm_sq.hi + projected_sq.hi;
    return 0.0;
  }
#if defined(__CUDA_ARCH__)
  return sqrt(norm_sq.hi / projected_sq.hi);
#else
  return std::sqrt(norm_sq.hi / projected_sq.hi);
#endif
}

}  // namespace abl
