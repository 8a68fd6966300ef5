// Vector lanes of the verifier's kernels (verify_kernels_impl.h): scalar, AVX2+F16C (4 doubles) and
// AVX-512 F/BW/VL (8 doubles). They are the verifier's own, not the apply kernels' simd.h, so that the two
// share nothing but the format of the bytes. A lane decodes `kWidth` elements of a dtype into doubles and
// offers the few comparisons and bit operations the screen needs; arithmetic uses the plain operators
// (GCC vector extensions), which round once each: the build disables FP contraction.
//
// Everything sits in an unnamed namespace and uses no standard-library code: every verify_kernels_<isa>.cpp
// is compiled with its own -m flags, and no out-of-line copy may leak from one into another (host_device.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dtype.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace abl {
namespace {

struct VerifyScalarLane {
  using V = double;
  using M = bool;
  static constexpr size_t kWidth = 1;
  static V broadcast(double x) { return x; }
  static V load(const double* p) { return *p; }
  static void store(double* p, V v) { *p = v; }
  static V abs(V x) { return __builtin_fabs(x); }
  /** The larger of a and b; b when either is NaN (like maxpd). */
  static V max(V a, V b) { return a > b ? a : b; }
  static V keep_bits(V x, uint64_t mask) { return bits_to_double(double_to_bits(x) & mask); }
  /** 2^-e for x = 2^e, a normal power of two (an integer subtraction of the exponent field). */
  static V reciprocal_power(V x) { return bits_to_double((2046ull << 52) - double_to_bits(x)); }
  static M less_equal(V a, V b) { return a <= b; }
  static M less(V a, V b) { return a < b; }
  static M both(M a, M b) { return a && b; }
  static bool all(M m) { return m; }
  /** Bit l set where lane l of m is false. */
  static unsigned failing_lanes(M m) { return m ? 0u : 1u; }
  static V zero_unless(M m, V x) { return m ? x : 0.0; }

  template <Dtype D>
  static V load_dtype(const uint8_t* p) {
    if constexpr (D == Dtype::F64) {
      double value;
      std::memcpy(&value, p, 8);
      return value;
    } else if constexpr (D == Dtype::F32) {
      float value;
      std::memcpy(&value, p, 4);
      return value;
    } else if constexpr (D == Dtype::BF16) {
      const uint32_t bits = static_cast<uint32_t>(p[0] | (p[1] << 8)) << 16;
      float value;
      std::memcpy(&value, &bits, 4);
      return value;
    } else {
      return load_element(p, 0, Dtype::F16);
    }
  }
};

#if defined(__AVX2__) && defined(__F16C__)
struct VerifyAvx2Lane {
  using V = __m256d;
  using M = __m256d;  // all-ones lanes where true
  static constexpr size_t kWidth = 4;
  static V broadcast(double x) { return _mm256_set1_pd(x); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V abs(V x) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), x); }
  static V max(V a, V b) { return _mm256_max_pd(a, b); }
  static V keep_bits(V x, uint64_t mask) {
    return _mm256_and_pd(x, _mm256_castsi256_pd(_mm256_set1_epi64x(static_cast<long long>(mask))));
  }
  static V reciprocal_power(V x) {
    return _mm256_castsi256_pd(
        _mm256_sub_epi64(_mm256_set1_epi64x(static_cast<long long>(2046ull << 52)), _mm256_castpd_si256(x)));
  }
  static M less_equal(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LE_OQ); }
  static M less(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static M both(M a, M b) { return _mm256_and_pd(a, b); }
  static bool all(M m) { return _mm256_movemask_pd(m) == 0xF; }
  static unsigned failing_lanes(M m) { return ~static_cast<unsigned>(_mm256_movemask_pd(m)) & 0xFu; }
  static V zero_unless(M m, V x) { return _mm256_and_pd(m, x); }

  template <Dtype D>
  static V load_dtype(const uint8_t* p) {
    if constexpr (D == Dtype::F64) {
      return _mm256_loadu_pd(reinterpret_cast<const double*>(p));
    } else if constexpr (D == Dtype::F32) {
      return _mm256_cvtps_pd(_mm_loadu_ps(reinterpret_cast<const float*>(p)));
    } else if constexpr (D == Dtype::BF16) {
      const __m128i halves = _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
      return _mm256_cvtps_pd(_mm_castsi128_ps(_mm_slli_epi32(halves, 16)));
    } else {
      return _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    }
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)
struct VerifyAvx512Lane {
  using V = __m512d;
  using M = __mmask8;
  static constexpr size_t kWidth = 8;
  static V broadcast(double x) { return _mm512_set1_pd(x); }
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static V abs(V x) { return _mm512_abs_pd(x); }
  static V max(V a, V b) { return _mm512_max_pd(a, b); }
  static V keep_bits(V x, uint64_t mask) {
    return _mm512_castsi512_pd(
        _mm512_and_si512(_mm512_castpd_si512(x), _mm512_set1_epi64(static_cast<long long>(mask))));
  }
  static V reciprocal_power(V x) {
    return _mm512_castsi512_pd(
        _mm512_sub_epi64(_mm512_set1_epi64(static_cast<long long>(2046ull << 52)), _mm512_castpd_si512(x)));
  }
  static M less_equal(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
  static M less(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static M both(M a, M b) { return static_cast<M>(a & b); }
  static bool all(M m) { return m == 0xFF; }
  static unsigned failing_lanes(M m) { return ~static_cast<unsigned>(m) & 0xFFu; }
  static V zero_unless(M m, V x) { return _mm512_maskz_mov_pd(m, x); }

  template <Dtype D>
  static V load_dtype(const uint8_t* p) {
    if constexpr (D == Dtype::F64) {
      return _mm512_loadu_pd(p);
    } else if constexpr (D == Dtype::F32) {
      return _mm512_cvtps_pd(_mm256_loadu_ps(reinterpret_cast<const float*>(p)));
    } else if constexpr (D == Dtype::BF16) {
      const __m256i halves = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      return _mm512_cvtps_pd(_mm256_castsi256_ps(_mm256_slli_epi32(halves, 16)));
    } else {
      return _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    }
  }
};
#endif

}  // namespace
}  // namespace abl
