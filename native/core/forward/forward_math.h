// Per-element maths of the forward pass, written as __host__ __device__ (ABL_HD) so a future CUDA forward backend
// shares them with the CPU engine (docs/architectures.md § Backends), and to
// round like HF transformers' fp32 eager code: every operation in fp32, in the order torch evaluates it.
#pragma once

#include <cmath>
#include <cstddef>

#include "../host_device.h"

namespace abl {
namespace fwd {

/**
 * Constants of the SIMD tables' exp (forward_avx512.h silu16, forward_kernels_avx2.cpp silu8), kept here so both
 * ISAs share them: ln 2 split for Cody–Waite reduction (the high part has 9 significant bits, so n · kLn2High is
 * exact for |n| < 2^15), the Cephes expf polynomial e^r ≈ 1 + r + r² · P(r) on |r| ≤ ln2/2 (P's coefficients from
 * the highest degree down), and the |x| past which x · e^−|x| rounds to zero in fp32.
 */
namespace exp_poly {
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f;
constexpr float kLn2Low = -2.12194440e-4f;
constexpr float kP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
constexpr float kSiluZeroBeyond = 110.0f;
}  // namespace exp_poly

/**
 * values[j] ← exp(values[j] − shift) for j < n, returning their sum in order: softmax's numerators, with `shift`
 * the largest value. The scalar tables' exp_shifted (libm's expf).
 */
ABL_FN float exp_shifted_sum(float* values, size_t n, float shift) {
  float sum = 0.0f;
  for (size_t j = 0; j < n; ++j) {
    values[j] = expf(values[j] - shift);
    sum += values[j];
  }
  return sum;
}

/**
 * Σ a[i] · b[i] (b null: Σ a[i]) in fp64, as four interleaved partial sums combined as (s0 + s1) + (s2 + s3): four
 * dependency chains instead of one (a serial fp64 sum waits an add's latency per element), in an order that does not
 * depend on the kernel table. The fp64 sums of norms and ablation hooks round to fp32 afterwards, where the order
 * changes the result only when the sum falls within 1e-16 of a rounding boundary.
 */
ABL_FN double sum_products_f64(const float* a, const float* b, size_t n) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  if (b) {
    for (; i + 4 <= n; i += 4) {
      for (size_t l = 0; l < 4; ++l) s[l] += double(a[i + l]) * double(b[i + l]);
    }
    for (size_t l = 0; i < n; ++i, ++l) s[l] += double(a[i]) * double(b[i]);
  } else {
    for (; i + 4 <= n; i += 4) {
      for (size_t l = 0; l < 4; ++l) s[l] += double(a[i + l]);
    }
    for (size_t l = 0; i < n; ++i, ++l) s[l] += double(a[i]);
  }
  return (s[0] + s[1]) + (s[2] + s[3]);
}

/** Σ (x[i] − mean)² in fp64, each difference rounded in fp32 first, in sum_products_f64's four partial sums. */
ABL_FN double sum_centered_squares_f64(const float* x, float mean, size_t n) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t l = 0; l < 4; ++l) {
      const double centered = double(x[i + l] - mean);
      s[l] += centered * centered;
    }
  }
  for (size_t l = 0; i < n; ++i, ++l) {
    const double centered = double(x[i] - mean);
    s[l] += centered * centered;
  }
  return (s[0] + s[1]) + (s[2] + s[3]);
}

/** torch.nn.functional.silu: x * sigmoid(x). */
ABL_FN float silu(float x) { return x * (1.0f / (1.0f + expf(-x))); }

/**
 * gelu(approximate="tanh")'s constants, torch's kBeta = √(2/π) and kKappa: inner = kBeta · (x + kKappa · x³), shared
 * by the scalar formula below and the SIMD tables' x · sigmoid(2 · inner) (forward_avx512.h gelu_tanh16).
 */
namespace gelu_tanh_poly {
constexpr float kBeta = 0.7978845608028654f;
constexpr float kKappa = 0.044715f;
}  // namespace gelu_tanh_poly

/** gelu(approximate="tanh") (gelu_pytorch_tanh, gelu_new). */
ABL_FN float gelu_tanh(float x) {
  const float inner = gelu_tanh_poly::kBeta * (x + gelu_tanh_poly::kKappa * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

/**
 * The SIMD tables' exact gelu, x · Φ(x) with Φ(x) = erfc(−x/√2) / 2, and erfc(z) = t · exp(−z² + P(t − kCenter))
 * for z ≥ 0, t = 1 / (1 + z/2): P is a degree-10 least-squares Chebyshev fit of ln(erfc(z) / t) + z² over
 * z ∈ [0, 10.5] (scripts/fit-gelu-erfc.py; fit error 8.2e-9, 1.2e-7 evaluated in fp32), coefficients from the
 * highest degree down. Past x²/2 = kZeroBeyond, |x| · Φ(−|x|) rounds to zero in fp32.
 */
namespace gelu_erfc_poly {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kCenter = 0.5799999833106995f;
constexpr float kP[11] = {-1.406173259e-01f, 1.487911791e-01f, 1.368547827e-01f, -2.484813929e-01f, -4.674827680e-02f, 2.961713374e-01f,
                          -3.962989151e-02f, -4.069010019e-01f, 9.476343542e-02f, 1.368118882e+00f, -5.631567836e-01f};
constexpr float kZeroBeyond = 110.0f;
}  // namespace gelu_erfc_poly

/** Exact gelu (erf form). */
ABL_FN float gelu_exact(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }

/**
 * The SIMD tables' tanh: below |y| = kPolyBelow, y + y³ · Q(y²), Q a degree-5 least-squares Chebyshev fit of
 * (tanh(y) − y) / y³ (scripts/fit-tanh.py; within 0.73 ulp evaluated in fp32; coefficients from the highest degree
 * down); above, 1 − 2e / (1 + e) with e = exp(−2|y|), which no longer cancels there. Past |y| = kOneBeyond tanh
 * rounds to ±1.
 */
namespace tanh_poly {
constexpr float kPolyBelow = 0.625f;
constexpr float kQ[6] = {2.295840997e-03f, -8.346980438e-03f, 2.176996134e-02f, -5.395940691e-02f, 1.333330423e-01f, -3.333333433e-01f};
constexpr float kOneBeyond = 20.0f;
}  // namespace tanh_poly

/** Gemma 2 soft-capping: cap · tanh(x / cap). */
ABL_FN float soft_cap(float x, float cap) { return tanhf(x / cap) * cap; }

/**
 * Rotates the first rotary_dim entries of one head in place (rotate_half convention: pairs (i, i + rotary_dim/2)).
 * cos/sin hold rotary_dim / 2 values for this position.
 */
ABL_FN void apply_rope(float* head, const float* cos_values, const float* sin_values, unsigned rotary_dim) {
  const unsigned half = rotary_dim / 2;
  for (unsigned i = 0; i < half; ++i) {
    const float a = head[i];
    const float b = head[i + half];
    head[i] = a * cos_values[i] + (-b) * sin_values[i];
    head[i + half] = b * cos_values[i] + a * sin_values[i];
  }
}

/**
 * The same rotation in Llama 4's convention (apply_rotary_emb, a complex product): adjacent pairs (2i, 2i + 1) are
 * the real and imaginary parts of x_i, and x_i · (cos_i + i sin_i) is written back.
 */
ABL_FN void apply_rope_interleaved(float* head, const float* cos_values, const float* sin_values, unsigned rotary_dim) {
  const unsigned half = rotary_dim / 2;
  for (unsigned i = 0; i < half; ++i) {
    const float a = head[2 * i];
    const float b = head[2 * i + 1];
    head[2 * i] = a * cos_values[i] - b * sin_values[i];
    head[2 * i + 1] = a * sin_values[i] + b * cos_values[i];
  }
}

/** Llama 4 attention temperature at `position`: log1p(floor((position + 1) / floor_scale)) · scale + 1, in fp32. */
ABL_FN float attention_temperature(unsigned position, float floor_scale, float scale) {
  return log1pf(floorf((static_cast<float>(position) + 1.0f) / floor_scale)) * scale + 1.0f;
}

}  // namespace fwd
}  // namespace abl
