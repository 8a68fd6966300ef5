// The acceptance test of verify (docs/precision.md):
//   |actual − ref| ≤ ulp_dtype(ref) + 4·2⁻⁵²·s·(|w| + |α| Σ_k |b_k v_k|)
// where ref is the extended-precision reference, w the original element, v = Bᵀw, and s the
// norm-preserving scale (1 otherwise). The second term is what fp64 arithmetic may lose to cancellation.
// NaN matches NaN; infinities must be equal; a finite reference that rounds past the dtype's largest
// finite value expects the infinity of its sign.
#pragma once

#include <cmath>
#include <cstdint>

#include "dtype.h"

namespace abl {

struct DtypeGeometry {
  int mantissa_bits;
  int min_exponent;  // exponent of the smallest normal
  int max_exponent;  // exponent of the largest finite binade
};

static inline DtypeGeometry dtype_geometry(Dtype dtype) {
  switch (dtype) {
    case Dtype::F64: return {52, -1022, 1023};
    case Dtype::F32: return {23, -126, 127};
    case Dtype::F16: return {10, -14, 15};
    case Dtype::BF16: return {7, -126, 127};
  }
  return {52, -1022, 1023};
}

/** 2^e as a double for e in [-1074, 1023], built from bits (libm's ldexpl is far too slow per element). */
static inline double power_of_two(int e) {
  if (e >= -1022) return bits_to_double(static_cast<uint64_t>(e + 1023) << 52);
  return bits_to_double(1ull << (e + 1074));
}

class ToleranceJudge {
 public:
  explicit ToleranceJudge(Dtype dtype) : g_(dtype_geometry(dtype)) {
    min_normal_ = power_of_two(g_.min_exponent);
    subnormal_ulp_ = power_of_two(g_.min_exponent - g_.mantissa_bits);
    const long double largest = static_cast<long double>(power_of_two(g_.max_exponent)) *
                                (2.0L - static_cast<long double>(power_of_two(-g_.mantissa_bits)));
    overflow_ = largest + static_cast<long double>(power_of_two(g_.max_exponent - g_.mantissa_bits - 1));
  }

  /** Spacing of the dtype's values at |x| (the subnormal spacing below the smallest normal). */
  long double ulp_of(long double x) const {
    const long double magnitude = std::fabs(x);
    if (!(magnitude >= min_normal_)) return subnormal_ulp_;
    if (!std::isfinite(magnitude)) return power_of_two(g_.max_exponent - g_.mantissa_bits);
    // The exponent of the nearest double, one lower if that double rounded up into the next binade.
    int exponent = static_cast<int>((double_to_bits(static_cast<double>(magnitude)) >> 52) & 0x7FF) - 1023;
    if (exponent > g_.max_exponent) exponent = g_.max_exponent;
    if (static_cast<long double>(power_of_two(exponent)) > magnitude) --exponent;
    return power_of_two(exponent - g_.mantissa_bits);
  }

  /**
   * Judges one element; keeps the largest |actual − ref| / ulp seen in *max_ulp_error (a division only
   * when the maximum grows). Returns whether the element is within tolerance.
   */
  bool judge(double actual, long double reference, long double original, long double update_magnitude,
             long double scale, double* max_ulp_error) const {
    if (std::isnan(reference) || std::isnan(actual)) {
      const bool both = std::isnan(reference) && std::isnan(actual);
      if (!both) *max_ulp_error = INFINITY;
      return both;
    }
    long double expected = reference;
    if (std::fabs(reference) >= overflow_) expected = reference > 0 ? INFINITY : -INFINITY;
    if (std::isinf(expected) || std::isinf(actual)) {
      const bool equal = static_cast<long double>(actual) == expected;
      if (!equal) *max_ulp_error = INFINITY;
      return equal;
    }
    const long double ulp = ulp_of(reference);
    const long double error = std::fabs(static_cast<long double>(actual) - reference);
    if (error > *max_ulp_error * ulp) *max_ulp_error = static_cast<double>(error / ulp);
    const long double slack = kSlackPerUnit * std::fabs(scale) * (std::fabs(original) + update_magnitude);
    return error <= ulp + slack;
  }

 private:
  static constexpr long double kSlackPerUnit = 4.0L / 4503599627370496.0L;  // 4·2⁻⁵²
  DtypeGeometry g_;
  double min_normal_;
  double subnormal_ulp_;
  long double overflow_;
};

}  // namespace abl
