// Thin vector lanes for the kernel templates (kernel_impl.h): the scalar lane, AVX2+FMA+F16C (4 doubles)
// and AVX-512 F/BW/VL (8 doubles). A lane loads `width` elements of a dtype as doubles and stores doubles
// rounded back into the dtype, bit for bit as dtype.h does, so the SIMD body and its scalar tail agree.
//
// Narrowing to BF16/F16 goes through f32 with round-to-odd: the hardware f64->f32 conversion (RNE) is
// corrected to truncation plus a sticky last bit, after which the f32->bf16/f16 RNE step is the correctly
// rounded f64->bf16/f16 result (f32 has more than 2 extra bits; Boldo & Melquiond, "Emulation of FMA and
// correctly rounded sums: proved algorithms using rounding to odd").
//
// Everything here sits in an unnamed namespace: each kernel translation unit is compiled with its own
// -m flags and must not share out-of-line copies with the others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dtype.h"
#include "projection_math.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace abl {
namespace {

struct ScalarSimd : ScalarLane {
  static constexpr size_t kWidth = 1;
  static double broadcast(double x) { return x; }
  static double load(const double* p) { return *p; }
  static void store(double* p, double v) { *p = v; }
  static double lane(double v, size_t) { return v; }
  template <Dtype D>
  static double load_dtype(const uint8_t* p) { return load_element(p, 0, D); }
  template <Dtype D>
  static void store_dtype(uint8_t* p, double v) { store_element(p, 0, D, v); }
};

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
struct Avx2Simd {
  using V = __m256d;
  static constexpr size_t kWidth = 4;
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V broadcast(double x) { return _mm256_set1_pd(x); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static double lane(V v, size_t i) {
    double lanes[4];
    _mm256_storeu_pd(lanes, v);
    return lanes[i];
  }

  /** f32 bit patterns of x rounded to odd (NaN: quieted, payload truncated, like the scalar path). */
  static __m128i round_to_odd_f32(V x) {
    const __m128 nearest = _mm256_cvtpd_ps(x);
    const V back = _mm256_cvtps_pd(nearest);
    const V magnitude_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
    const V inexact = _mm256_cmp_pd(back, x, _CMP_NEQ_OQ);
    const V rounded_away = _mm256_cmp_pd(_mm256_and_pd(back, magnitude_mask),
                                         _mm256_and_pd(x, magnitude_mask), _CMP_GT_OQ);
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m128i inexact32 =
        _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(inexact), low_halves));
    const __m128i away32 =
        _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(rounded_away), low_halves));
    __m128i bits = _mm_add_epi32(_mm_castps_si128(nearest), away32);  // away: step back toward zero
    return _mm_or_si128(bits, _mm_srli_epi32(inexact32, 31));         // sticky bit
  }

  static __m128i nan_mask32(V x) {
    const V unordered = _mm256_cmp_pd(x, x, _CMP_UNORD_Q);
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(unordered), low_halves));
  }

  template <Dtype D>
  static V load_dtype(const uint8_t* p) {
    if constexpr (D == Dtype::F64) {
      return _mm256_loadu_pd(reinterpret_cast<const double*>(p));
    } else if constexpr (D == Dtype::F32) {
      return _mm256_cvtps_pd(_mm_loadu_ps(reinterpret_cast<const float*>(p)));
    } else if constexpr (D == Dtype::F16) {
      return _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    } else {
      const __m128i halves = _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
      return _mm256_cvtps_pd(_mm_castsi128_ps(_mm_slli_epi32(halves, 16)));
    }
  }

  template <Dtype D>
  static void store_dtype(uint8_t* p, V v) {
    if constexpr (D == Dtype::F64) {
      _mm256_storeu_pd(reinterpret_cast<double*>(p), v);
    } else if constexpr (D == Dtype::F32) {
      _mm_storeu_ps(reinterpret_cast<float*>(p), _mm256_cvtpd_ps(v));
    } else if constexpr (D == Dtype::F16) {
      const __m128i halves =
          _mm_cvtps_ph(_mm_castsi128_ps(round_to_odd_f32(v)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), halves);
    } else {
      const __m128i odd = round_to_odd_f32(v);
      const __m128i lsb = _mm_and_si128(_mm_srli_epi32(odd, 16), _mm_set1_epi32(1));
      const __m128i rounded =
          _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(odd, _mm_set1_epi32(0x7FFF)), lsb), 16);
      const __m128i result = _mm_blendv_epi8(rounded, _mm_srli_epi32(odd, 16), nan_mask32(v));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi32(result, result));
    }
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)
struct Avx512Simd {
  using V = __m512d;
  static constexpr size_t kWidth = 8;
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V broadcast(double x) { return _mm512_set1_pd(x); }
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static double lane(V v, size_t i) {
    double lanes[8];
    _mm512_storeu_pd(lanes, v);
    return lanes[i];
  }

  /**
   * Round to odd is truncation plus a sticky last bit, and AVX-512 converts with an embedded rounding mode: one
   * conversion toward zero replaces the AVX2 lane's nearest-then-step-back (the rewrite kernel's hottest part).
   * Overflow truncates to FLT_MAX, odd already, which the bf16/f16 step then rounds to Inf as it must.
   */
  static __m256i round_to_odd_f32(V x) {
    const __m256 truncated = _mm512_cvt_roundpd_ps(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask8 inexact = _mm512_cmp_pd_mask(_mm512_cvtps_pd(truncated), x, _CMP_NEQ_OQ);
    const __m256i bits = _mm256_castps_si256(truncated);
    return _mm256_mask_or_epi32(bits, inexact, bits, _mm256_set1_epi32(1));
  }

  template <Dtype D>
  static V load_dtype(const uint8_t* p) {
    if constexpr (D == Dtype::F64) {
      return _mm512_loadu_pd(p);
    } else if constexpr (D == Dtype::F32) {
      return _mm512_cvtps_pd(_mm256_loadu_ps(reinterpret_cast<const float*>(p)));
    } else if constexpr (D == Dtype::F16) {
      return _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    } else {
      const __m256i halves = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      return _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_slli_epi32(halves, 16)));
    }
  }

  template <Dtype D>
  static void store_dtype(uint8_t* p, V v) {
    if constexpr (D == Dtype::F64) {
      _mm512_storeu_pd(p, v);
    } else if constexpr (D == Dtype::F32) {
      _mm256_storeu_ps(reinterpret_cast<float*>(p), _mm512_cvtpd_ps(v));
    } else if constexpr (D == Dtype::F16) {
      const __m128i halves = _mm256_cvtps_ph(_mm256_castsi256_ps(round_to_odd_f32(v)),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), halves);
    } else {
      const __m256i odd = round_to_odd_f32(v);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(odd, 16), _mm256_set1_epi32(1));
      __m256i result = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF)), lsb), 16);
      const __mmask8 nan = _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q);
      result = _mm256_mask_mov_epi32(result, nan, _mm256_srli_epi32(odd, 16));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtepi32_epi16(result));
    }
  }
};
#endif

}  // namespace
}  // namespace abl
