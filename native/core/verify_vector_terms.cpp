#include "verify_vector_terms.h"

#include <cmath>

namespace abl {

namespace {

constexpr double kUnit = 0x1p-53;

/** The exact error of fl(a·b) (Dekker, from 26-bit halves; the operands are far from overflow). */
double product_error(double a, double b, double product) {
  double a_hi, a_lo, b_hi, b_lo;
  veltkamp_split(a, 27, a_hi, a_lo);
  veltkamp_split(b, 27, b_hi, b_lo);
  return ((a_hi * b_hi - product) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo;
}

long double scale_from_norms(long double norm_sq, long double projected_sq) {
  if (std::isnan(norm_sq) || std::isnan(projected_sq)) return NAN;
  if (!(norm_sq > 0) || !(projected_sq > 0)) return 0;  // a vanished projection keeps scale 0
  return std::sqrt(norm_sq / projected_sq);
}

}  // namespace

void finish_compensated(double sum, double comp, double& hi, double& lo) {
  if (!std::isfinite(sum)) {
    hi = sum;
    lo = 0.0;
    return;
  }
  hi = sum + comp;
  const double z = hi - sum;
  lo = (sum - (hi - z)) + (comp - z);
}

long double compensated_value(double sum, double comp) {
  return std::isfinite(sum) ? static_cast<long double>(sum) + comp : sum;
}

void veltkamp_split(double x, int shift, double& hi, double& lo) {
  const double c = x * (std::ldexp(1.0, shift) + 1.0);
  hi = c - (c - x);
  lo = x - hi;
}

ScaledProjection scale_projection(double alpha, double v_hi, double v_lo) {
  ScaledProjection c;
  c.hi = alpha * v_hi;
  c.lo = std::isfinite(c.hi) ? product_error(alpha, v_hi, c.hi) + alpha * v_lo : 0.0;
  veltkamp_split(c.hi, 27, c.hi27, c.lo27);
  return c;
}

VectorTerms vector_terms(const VectorFacts& f) {
  const double n = static_cast<double>(f.length), rank = f.rank, u = kUnit;
  // |v_k − exact| for the double-double v_k: the compensation term sums n errors of TwoSum (≤ u of the
  // partial sums) and n low product parts (≤ low_part_ratio of the products), each addition erring by u
  // of its operands; Σ_i |b_ki w_i| ≤ max|b| · n · max|w|.
  const double product_sum = f.basis_largest * n * f.abs_max;
  const double projection_error = 1.01 * n * u * (n * u + f.low_part_ratio) * product_sum;
  // |α| Σ_k |b_k| |δv_k|, the update's share of that error, for any element of the vector.
  const double update_share = std::fabs(f.alpha) * rank * f.basis_largest * projection_error;

  VectorTerms terms;
  terms.scale = 1.0;
  terms.scale_exact = 1.0L;
  double sigma = 0.0;  // |ŝ − s| ≤ sigma·ŝ
  if (f.norm_preserving) {
    terms.scale_exact = scale_from_norms(compensated_value(f.norm_sum, f.norm_comp),
                                         compensated_value(f.square_sum, f.square_comp));
    terms.scale = static_cast<double>(terms.scale_exact);
    // Σ w'² from double-double terms: each w'_i errs by the update's share plus a few u² of its parts,
    // so the sum errs relatively by about 2‖ε‖/‖w'‖ (Cauchy–Schwarz), which halves in the square root.
    const double element_error =
        std::fabs(f.alpha) * rank * f.basis_largest * n * (projection_error + 4.0 * u * u * f.projection_largest) +
        4.0 * u * u * n * f.abs_max;
    sigma = f.square_sum > 0 ? 1.01 * u + 0x1p-60 + 2.0 * element_error / std::sqrt(f.square_sum) : INFINITY;
  }
  // Beyond this the bound's first-order reasoning no longer holds: every element goes to the judge.
  const bool usable = sigma <= 0x1p-20 && std::isfinite(terms.scale) && std::isfinite(update_share);
  // Per element, E = 2·[(2u + σ)|A| + (r + 3)u·ŝ·m + ŝ·Δ] with m = Σ_k |b_k ĉ_k| and Δ = update_share (+ a
  // floor for underflowed products).
  terms.relative_error = usable ? 4.0 * u + 2.0 * sigma : NAN;
  terms.update_error = 2.0 * (rank + 3.0) * u * terms.scale;
  terms.absolute_error = 2.0 * terms.scale * (update_share + (n + 1.0) * (rank + 1.0) * 0x1p-1000);
  // The tolerance's 4·2⁻⁵²·s(|w| + m) with s ≥ ŝ(1 − σ), shaved by 2⁻⁴⁰ for the screen's own roundings.
  terms.slack = usable ? 0x1p-50 * terms.scale * (1.0 - sigma) * (1.0 - 0x1p-40) : 0.0;
  // One E for the whole vector: |A| ≤ ŝ(max|w| + m) and m ≤ update_largest, up to a few u (the 2⁻⁴⁰).
  const double largest_a = terms.scale * (f.abs_max + f.update_largest);
  terms.vector_error =
      (terms.relative_error * largest_a + terms.update_error * f.update_largest + terms.absolute_error) *
      (1.0 + 0x1p-40);
  terms.magnitude_limit = f.largest_finite - terms.vector_error;
  return terms;
}

}  // namespace abl
