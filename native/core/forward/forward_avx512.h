// Register-level helpers shared by the AVX-512 forward units (forward_kernels_avx512.cpp and
// forward_bf16_kernels_avx512.cpp). Everything here is `static inline` (internal linkage), so no copy compiled with
// AVX-512 can ever be linked into baseline code. Include only from units compiled with the AVX-512 flags.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "forward_math.h"

namespace abl {
namespace fwd {
namespace avx512 {

/** Lanes [0, n) set, n ≤ 16 (n ≥ 16: all). */
static inline __mmask16 mask16(size_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }
/** Lanes [0, n) set, n ≤ 32 (n ≥ 32: all). */
static inline __mmask32 mask32(size_t n) { return n >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << n) - 1u); }

/** r[j] becomes column j of the 16 × 16 matrix of 32-bit elements whose row i is r[i]. */
static inline void transpose16x16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4G + c], 128-bit lane L: rows 4G .. 4G+3 of column 4L + c.
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
    const __m512i w = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
    const __m512i w2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_i32x4(v, v2, 0x88);
    r[8 + c] = _mm512_shuffle_i32x4(v, v2, 0xDD);
    r[4 + c] = _mm512_shuffle_i32x4(w, w2, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(w, w2, 0xDD);
  }
}

/** 16 BF16 values (as 16-bit patterns in a ymm) widened exactly to fp32. */
static inline __m512 bf16_to_fp32(__m256i bits) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}

/** exp(t) = high · scale for 16 lanes of t ∈ [−110, 0] (NaN: high is NaN); scale is a normal power of two. */
struct Exp16 {
  __m512 high;
  __m512 scale;
};

/**
 * Cody–Waite range reduction (n = round(t / ln 2), r = t − n ln 2 in two parts) and the degree-7 Cephes polynomial
 * for e^r on |r| ≤ ln2/2. 2^n is returned as two normal powers of two, so a caller whose result is subnormal
 * applies the second last and rounds once, rather than computing from a subnormal exp.
 */
static inline Exp16 exp_split16(__m512 t) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(exp_poly::kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-exp_poly::kLn2High), t);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(-exp_poly::kLn2Low), r);
  __m512 p = _mm512_set1_ps(exp_poly::kP[0]);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_poly::kP[1]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_poly::kP[2]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_poly::kP[3]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_poly::kP[4]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_poly::kP[5]));
  const __m512 q = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  const __m512i k = _mm512_cvtps_epi32(n);  // in [−159, 0] wherever t is a number
  const __m512i k1 = _mm512_srai_epi32(k, 1);
  const __m512i k2 = _mm512_sub_epi32(k, k1);
  const __m512i bias = _mm512_set1_epi32(127);
  const __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k1, bias), 23));
  const __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(k2, bias), 23));
  return Exp16{_mm512_mul_ps(q, s1), s2};
}

/**
 * exp(t) for 16 lanes of t ≤ 0 (softmax's shifted scores), within a few ulp, subnormal results included. Below
 * −110 the result rounds to zero and is computed as that; a NaN stays NaN.
 */
static inline __m512 exp_nonpositive16(__m512 t) {
  // max returns its second operand where either is NaN, so a NaN t passes through.
  const Exp16 e = exp_split16(_mm512_max_ps(_mm512_set1_ps(-exp_poly::kSiluZeroBeyond), t));
  return _mm512_mul_ps(e.high, e.scale);
}

/**
 * x · sigmoid(u) for 16 lanes where u has x's sign, within a few ulp of the exact value, subnormal results included
 * (test/unit/perf-activation.test.ts bounds it). sigmoid comes from e = exp(−|u|) ∈ (0, 1], which never overflows:
 * x / (1 + e) for u ≥ 0, x · e / (1 + e) below. The second power of two of exp_split16 is applied after the
 * division, so a result that is subnormal is rounded once. Past |u| = 110, |x|·e^−|u| rounds to zero in fp32 (|u| ≥
 * |x| for silu and gelu_tanh), so e is zero there; a NaN stays NaN through the product with x, and x = −inf gives
 * NaN as torch's formulas do.
 */
static inline __m512 x_sigmoid16(__m512 x, __m512 u) {
  const __m512 magnitude = _mm512_abs_ps(u);
  const Exp16 e = exp_split16(_mm512_max_ps(_mm512_set1_ps(-exp_poly::kSiluZeroBeyond), _mm512_sub_ps(_mm512_setzero_ps(), magnitude)));
  // Lanes with |u| > 110 or NaN compare false and get e = 0.
  const __mmask16 in_range = _mm512_cmp_ps_mask(magnitude, _mm512_set1_ps(exp_poly::kSiluZeroBeyond), _CMP_LE_OQ);
  const __m512 e_high = _mm512_maskz_mov_ps(in_range, e.high);
  const __m512 denominator = _mm512_fmadd_ps(e_high, e.scale, _mm512_set1_ps(1.0f));
  const __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 numerator = _mm512_mask_blend_ps(negative, one, e_high);
  const __m512 quotient = _mm512_div_ps(_mm512_mul_ps(x, numerator), denominator);
  return _mm512_mask_mul_ps(quotient, negative, quotient, e.scale);
}

/** silu(x) = x · sigmoid(x) for 16 lanes (x_sigmoid16). */
static inline __m512 silu16(__m512 x) { return x_sigmoid16(x, x); }

/**
 * gelu(approximate="tanh") for 16 lanes: 0.5·x·(1 + tanh(inner)) = x · sigmoid(2·inner), with inner rounded as
 * torch's formula rounds it (forward_math.h gelu_tanh; no contraction into FMAs), so only tanh's evaluation differs.
 * The sigmoid form has no cancellation in 1 + tanh for x < 0, where libm's form loses every digit past x ≈ −5.
 */
static inline __m512 gelu_tanh16(__m512 x) {
  const __m512 cube = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 inner = _mm512_mul_ps(_mm512_set1_ps(gelu_tanh_poly::kBeta), _mm512_add_ps(x, _mm512_mul_ps(_mm512_set1_ps(gelu_tanh_poly::kKappa), cube)));
  return x_sigmoid16(x, _mm512_add_ps(inner, inner));
}

/**
 * Exact gelu for 16 lanes: x · Φ(x), Φ(x) = 1 − erfc(z)/2 for x ≥ 0 and erfc(z)/2 below, z = |x|/√2, erfc from
 * forward_math.h's gelu_erfc_poly. The Gaussian factor exp(−x²/2) is exp(−h/2) · exp(−l/2) with h + l = x² exactly
 * (an FMA gives l), since rounding x² (or z = |x|/√2) first would cost |x|² ulp of the result where x is far below
 * 0; the second factor joins the polynomial's. Past x²/2 = 110 (and at ±inf, NaN) erfc is 0: x ≥ 0 gives x, below
 * it x · 0 (NaN for −inf, as torch's 0.5·x·(1 + erf(x/√2)) gives).
 */
static inline __m512 gelu16(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 a = _mm512_abs_ps(x);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_mul_ps(a, _mm512_set1_ps(gelu_erfc_poly::kInvSqrt2)), half, one));
  const __m512 w = _mm512_sub_ps(t, _mm512_set1_ps(gelu_erfc_poly::kCenter));
  __m512 p = _mm512_set1_ps(gelu_erfc_poly::kP[0]);
  for (int k = 1; k < 11; ++k) p = _mm512_fmadd_ps(p, w, _mm512_set1_ps(gelu_erfc_poly::kP[k]));
  const __m512 h = _mm512_mul_ps(a, a);
  const __m512 l = _mm512_fmsub_ps(a, a, h);
  const __m512 half_h = _mm512_mul_ps(h, half);
  // Lanes with x²/2 > 110, inf or NaN compare false and get erfc = 0.
  const __mmask16 in_range = _mm512_cmp_ps_mask(half_h, _mm512_set1_ps(gelu_erfc_poly::kZeroBeyond), _CMP_LE_OQ);
  const Exp16 gauss = exp_split16(_mm512_max_ps(_mm512_set1_ps(-gelu_erfc_poly::kZeroBeyond), _mm512_sub_ps(_mm512_setzero_ps(), half_h)));
  const Exp16 rest = exp_split16(_mm512_fnmadd_ps(l, half, p));
  // erfc(z)/2 = m · gauss.scale, m normal; the scale goes last, so a subnormal result is rounded once.
  const __m512 m = _mm512_maskz_mul_ps(in_range, _mm512_mul_ps(_mm512_mul_ps(half, t), _mm512_mul_ps(rest.high, rest.scale)), gauss.high);
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 above = _mm512_mul_ps(x, _mm512_fnmadd_ps(m, gauss.scale, one));
  const __m512 below = _mm512_mul_ps(_mm512_mul_ps(x, m), gauss.scale);
  return _mm512_mask_blend_ps(negative, above, below);
}

/**
 * tanh for 16 lanes (forward_math.h's tanh_poly), within a few ulp (test/unit/perf-activation.test.ts). It works on
 * |y| and puts y's sign back last, so ±0 stay ±0; ±inf give ±1 and NaN stays NaN (max passes its second operand's
 * NaN to the exp).
 */
static inline __m512 tanh16(__m512 y) {
  const __m512 t = _mm512_abs_ps(y);
  const __m512 s = _mm512_mul_ps(t, t);
  __m512 q = _mm512_set1_ps(tanh_poly::kQ[0]);
  for (int k = 1; k < 6; ++k) q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(tanh_poly::kQ[k]));
  const __m512 near_zero = _mm512_fmadd_ps(q, _mm512_mul_ps(s, t), t);
  const Exp16 e = exp_split16(_mm512_max_ps(_mm512_set1_ps(-2.0f * tanh_poly::kOneBeyond), _mm512_mul_ps(t, _mm512_set1_ps(-2.0f))));
  const __m512 ev = _mm512_mul_ps(e.high, e.scale);
  const __m512 one = _mm512_set1_ps(1.0f);
  // 1 − 2e / (1 + e) rather than (1 − e) / (1 + e): near saturation the quotient's own error is far below an ulp of
  // the result, which then rounds once, where ties between capped logits are decided.
  const __m512 far = _mm512_sub_ps(one, _mm512_div_ps(_mm512_add_ps(ev, ev), _mm512_add_ps(one, ev)));
  const __mmask16 small = _mm512_cmp_ps_mask(t, _mm512_set1_ps(tanh_poly::kPolyBelow), _CMP_LT_OQ);
  const __m512 magnitude = _mm512_mask_blend_ps(small, far, near_zero);
  const __m512 sign = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(int(0x80000000u))));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude), _mm512_castps_si512(sign)));
}

}  // namespace avx512
}  // namespace fwd
}  // namespace abl
