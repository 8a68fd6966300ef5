// The element arithmetic of the verifier's kernels (verify_kernels_columns.h, verify_kernels_rows.h), for any
// lane L of verify_lanes.h. Products are exact and sums compensated, without FMA (docs/precision.md):
//  - b·w for a narrow dtype: b = hi + lo is split so that hi·w and lo·w are both exact doubles;
//  - b·w for F64 and every product of two doubles: Dekker's product, from 26-bit halves;
//  - sums: TwoSum of the high parts, with the errors and the low parts gathered in a compensation term.
// And the fp64 screen, which settles the elements that are certainly within tolerance.
//
// Only for inclusion by verify_kernels_*.cpp (unnamed namespace, no standard-library code).
#pragma once

#include "verify_kernels.h"
#include "verify_lanes.h"

namespace abl {
namespace {

constexpr double kDekkerSplit = 134217729.0;  // 2^27 + 1
constexpr uint64_t kSignAndExponent = 0xFFF0000000000000ull;

template <Dtype D>
struct DtypeConstants {
  static constexpr size_t kSize = D == Dtype::F64 ? 8 : D == Dtype::F32 ? 4 : 2;
  static constexpr int kMantissaBits = D == Dtype::F64 ? 52 : D == Dtype::F32 ? 23 : D == Dtype::F16 ? 10 : 7;
  static constexpr int kMinExponent = D == Dtype::F64 ? -1022 : D == Dtype::F16 ? -14 : -126;
  static constexpr int kMaxExponent = D == Dtype::F64 ? 1023 : D == Dtype::F16 ? 15 : 127;
  static constexpr double power(int e) {
    double x = 1.0;
    for (; e > 0; --e) x *= 2.0;
    for (; e < 0; ++e) x *= 0.5;
    return x;
  }
  static constexpr double kMinNormal = power(kMinExponent);
  // The spacing in a binade, per unit of the binade, shaved by 2⁻⁴⁰ for the screen's own roundings.
  static constexpr double kUlpPerBinade = power(-kMantissaBits) * (1.0 - 0x1p-40);
  static constexpr double kUnitsPerBinade = power(kMantissaBits);
  static constexpr double kLargestFinite = power(kMaxExponent) * (2.0 - power(-kMantissaBits));
};

template <class L>
struct VerifyMath {
  using V = typename L::V;

  /** s + e = a + b exactly. */
  static void two_sum(V a, V b, V& s, V& e) {
    s = a + b;
    const V z = s - a;
    e = (a - (s - z)) + (b - z);
  }

  /** (sum, comp) += high + low, where high + low is an exact product. */
  static void accumulate(V& sum, V& comp, V high, V low) {
    V s, e;
    two_sum(sum, high, s, e);
    sum = s;
    comp = comp + (e + low);
  }

  /** x = hi + lo with 26-bit halves (Veltkamp). */
  static void split(V x, V& hi, V& lo) {
    const V c = x * L::broadcast(kDekkerSplit);
    hi = c - (c - x);
    lo = x - hi;
  }

  /** The exact error of p = fl(a·b), from the halves of a and b (Dekker). */
  static V product_error(V p, V a_hi, V a_lo, V b_hi, V b_lo) {
    return ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo;
  }

  /** (p_hi, p_lo) −= b·c, with c = c_hi + c_lo a double-double; b and c_hi come with their halves. */
  static void subtract_product(V& p_hi, V& p_lo, V b, V b_hi, V b_lo, V c_hi, V c_hh, V c_hl, V c_lo) {
    const V product = b * c_hi;
    const V error = product_error(product, b_hi, b_lo, c_hh, c_hl);
    V s, e;
    two_sum(p_hi, -product, s, e);
    p_hi = s;
    p_lo = p_lo + (e - (error + b * c_lo));
  }

  /** (sum, comp) += (hi + lo)², dropping lo². */
  static void accumulate_square(V& sum, V& comp, V hi, V lo) {
    V h, l;
    split(hi, h, l);
    const V square = hi * hi;
    const V error = product_error(square, h, l, h, l);
    V s, e;
    two_sum(sum, square, s, e);
    sum = s;
    comp = comp + (e + (error + (hi + hi) * lo));
  }
};

/** The per-vector coefficients of ScreenTerms as lanes (the ones a dtype's screen reads). */
template <class L>
struct ScreenVector {
  typename L::V scale, vector_error, magnitude_limit, relative, update, slack, absolute;
};

/**
 * The fp64 screen of one lane-wide group of elements: original w, actual a, t = Σ_k b_k ĉ_k and (F64
 * only) m = Σ_k |b_k ĉ_k| in fp64. True in lanes whose |a − ref| is certainly within the tolerance
 * ulp(ref) + 4·2⁻⁵²·s(|w| + |α|Σ|b_k v_k|) of the exact reference ref, given a bound E on |A − ref| for
 * A = ŝ(w − t) (ScreenTerms; docs/precision.md derives it with a factor 2 to spare).
 *
 * `ratio_max` keeps, over the settled lanes, |a − A| in units of the binade of the spacing's lower bound
 * (the caller multiplies by 2^mb once): |a − A|/ulp, within E/ulp of |a − ref|/ulp(ref).
 */
template <class L, Dtype D, bool Scaled>
static typename L::M screen(typename L::V w, typename L::V a, typename L::V t, typename L::V m,
                            const ScreenVector<L>& p, typename L::V& ratio_max) {
  using V = typename L::V;
  using C = DtypeConstants<D>;
  V approximation = w - t;
  if constexpr (Scaled) approximation = p.scale * approximation;
  const V magnitude = L::abs(approximation);
  const V error = L::abs(a - approximation);
  if constexpr (D == Dtype::F64) {
    // fp64 noise is as large as the dtype's spacing here: the bound is per element, and the tolerance's
    // second term counts.
    const V bound = (p.relative * magnitude + p.update * m) + p.absolute;
    // ref ≥ |A| − E (rounded down: E holds 2u|A| to spare), so its spacing is at least that of the binade
    // of |A| − E; below the normals (or for |A| − E ≤ 0) the subnormal spacing.
    const V binade = L::max(L::keep_bits(magnitude - bound, kSignAndExponent), L::broadcast(C::kMinNormal));
    const V allowed = binade * L::broadcast(C::kUlpPerBinade) + p.slack * (L::abs(w) + m);
    // |A| + E < largest finite: ref cannot round to infinity; NaN and Inf fail here or above.
    const typename L::M settled = L::both(L::less_equal(error + bound, allowed),
                                          L::less(magnitude + bound, L::broadcast(C::kLargestFinite)));
    ratio_max = L::max(L::zero_unless(settled, error * L::reciprocal_power(binade)), ratio_max);
    return settled;
  } else {
    // The bound is one per vector, and the tolerance's second term, 2²⁹ or more times below the spacing,
    // is left out: both only send more elements to the judge.
    (void)w;
    (void)m;
    const V bound = p.vector_error;
    const V binade = L::max(L::keep_bits(magnitude - bound, kSignAndExponent), L::broadcast(C::kMinNormal));
    const V scale = L::reciprocal_power(binade);  // exact scalings by a power of two
    const V units = error * scale;
    const typename L::M settled = L::both(L::less_equal(units + bound * scale, L::broadcast(C::kUlpPerBinade)),
                                          L::less(magnitude, p.magnitude_limit));
    ratio_max = L::max(L::zero_unless(settled, units), ratio_max);
    return settled;
  }
}

/**
 * The basis entries of one row (dModelAxis 0) or the per-vector coefficients of one row (dModelAxis 1)
 * that a kernel multiplies by: for R > 0 copied into locals, which the compiler keeps in registers (the
 * kernels' vector stores may alias anything in memory); for R = 0 (any rank) read where they lie.
 */
template <unsigned R>
struct Coefficients {
  double local[R ? R : 1];
  const double* memory = nullptr;
  size_t stride = 0;

  void gather(const double* source, size_t source_stride) {
    if constexpr (R > 0) {
      for (unsigned k = 0; k < R; ++k) local[k] = source[k * source_stride];
    } else {
      memory = source;
      stride = source_stride;
    }
  }
  double operator[](unsigned k) const {
    if constexpr (R > 0) {
      return local[k];
    } else {
      return memory[k * stride];
    }
  }
};

/** Exact products of an element w of dtype D (and its halves, for F64) with a split coefficient. */
template <Dtype D>
struct ElementProducts {
  /** high + low = b·w exactly: a narrow value times the dtype's split of b, or Dekker's product for F64. */
  template <class Lane>
  static void exact_product(typename Lane::V b, typename Lane::V b_hi, typename Lane::V b_lo, typename Lane::V w,
                            typename Lane::V w_hi, typename Lane::V w_lo, typename Lane::V& high,
                            typename Lane::V& low) {
    if constexpr (D == Dtype::F64) {
      high = b * w;
      low = VerifyMath<Lane>::product_error(high, b_hi, b_lo, w_hi, w_lo);
    } else {
      (void)b;
      (void)w_hi;
      (void)w_lo;
      high = b_hi * w;
      low = b_lo * w;
    }
  }

  /** high + low = w² exactly. */
  template <class Lane>
  static void exact_square(typename Lane::V w, typename Lane::V w_hi, typename Lane::V w_lo, typename Lane::V& high,
                           typename Lane::V& low) {
    high = w * w;
    if constexpr (D == Dtype::F64) {
      low = VerifyMath<Lane>::product_error(high, w_hi, w_lo, w_hi, w_lo);
    } else {
      (void)w_hi;
      (void)w_lo;
      low = high - high;
    }
  }

  template <class Lane>
  static void split_element(typename Lane::V w, typename Lane::V& w_hi, typename Lane::V& w_lo) {
    if constexpr (D == Dtype::F64) {
      VerifyMath<Lane>::split(w, w_hi, w_lo);
    } else {
      w_hi = w;
      w_lo = w;
    }
  }
};

/** The larger of `previous` (in ulps) and the screens' ratio_max values (in binade units). */
template <class L, Dtype D>
static double fold_ratio(double previous, double scalar, typename L::V lanes_max) {
  double lanes[L::kWidth];
  L::store(lanes, lanes_max);
  double units = scalar;
  for (size_t lane = 0; lane < L::kWidth; ++lane) units = lanes[lane] > units ? lanes[lane] : units;
  const double ratio = units * DtypeConstants<D>::kUnitsPerBinade;
  return previous > ratio ? previous : ratio;
}

}  // namespace
}  // namespace abl
