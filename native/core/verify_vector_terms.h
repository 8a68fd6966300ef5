// The per-vector quantities between the verifier's passes (verify_tensor.cpp): v = Bᵀw as a
// double-double, the update coefficients handed to the kernels, the norm-preserving scale, and the
// coefficients of the fp64 screen's error bound. docs/precision.md derives the bounds.
#pragma once

#include <cstddef>

#include "dtype.h"

namespace abl {

/** hi + lo = sum + comp (a compensated sum), or (sum, 0) once sum is not finite. */
void finish_compensated(double sum, double comp, double& hi, double& lo);

/** sum + comp in long double, or sum once it is not finite. */
long double compensated_value(double sum, double comp);

/** x = hi + lo exactly, hi with 53 − shift significant bits (Veltkamp's split with 2^shift + 1). */
void veltkamp_split(double x, int shift, double& hi, double& lo);

/**
 * c = α·v as a double-double (hi, lo) for v = v_hi + v_lo, with hi's 26-bit halves: the operand of the
 * direct ‖w'‖² of norm-preserving tensors.
 */
struct ScaledProjection {
  double hi, hi27, lo27, lo;
};
ScaledProjection scale_projection(double alpha, double v_hi, double v_lo);

/** What the screen bound of one vector depends on. */
struct VectorFacts {
  size_t length;                // d_model
  unsigned rank;
  double alpha;
  double basis_largest;         // max |b| over the basis
  double low_part_ratio;        // VerifyDtypeTraits::low_part_ratio
  double largest_finite;        // of the dtype
  double abs_max;               // max |w| over the vector
  double projection_largest;    // max_k |v_k|
  double update_largest;        // Σ_k max_i |b_ki| · |ĉ_k|, ĉ_k = fl(α v_k): bounds Σ_k |b_k ĉ_k|
  bool norm_preserving;
  double norm_sum, norm_comp;      // Σ w², compensated
  double square_sum, square_comp;  // Σ w'², compensated (w' unscaled)
};

/** The vector's coefficients of ScreenTerms (verify_kernels.h), and the scale the judge uses. */
struct VectorTerms {
  double scale;             // ŝ = fl(scale_exact)
  double vector_error;
  double magnitude_limit;
  double relative_error;
  double update_error;
  double slack;
  double absolute_error;
  long double scale_exact;  // ‖w‖/‖w'‖ from the direct sums, in long double (1 without norm preservation)
};

VectorTerms vector_terms(const VectorFacts& facts);

}  // namespace abl
