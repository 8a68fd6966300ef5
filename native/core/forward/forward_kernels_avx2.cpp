// AVX2 + FMA + F16C forward kernels. The build compiles this unit alone with -mavx2 -mfma -mf16c
// (cmake/simd.cmake matches *kernels_avx2.cpp); see forward_kernels.h for why it holds nothing but raw loops.
#include "forward_kernels.h"

#if defined(ABLITERATE_KERNEL_AVX2)
#include <immintrin.h>

#include <cstring>

#include "forward_math.h"

namespace abl {
namespace fwd {
namespace {

/** The fp32 register tile of this table: 6 rows of X × 16 weight rows (12 of the 16 ymm registers). */
constexpr size_t kGemmMr = 6;
constexpr size_t kGemmNr = 16;

static_assert(kGemmMr == 6 && kGemmNr == 16, "the AVX2 micro-kernel is written for a 6 x 16 tile");

inline __m256 load8(const uint8_t* p, Dtype dtype) {
  switch (dtype) {
    case Dtype::F32: return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    case Dtype::F16: return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    case Dtype::BF16: {
      const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
    case Dtype::F64: {
      const __m128 low = _mm256_cvtpd_ps(_mm256_loadu_pd(reinterpret_cast<const double*>(p)));
      const __m128 high = _mm256_cvtpd_ps(_mm256_loadu_pd(reinterpret_cast<const double*>(p) + 4));
      return _mm256_set_m128(high, low);
    }
  }
  return _mm256_setzero_ps();
}

inline float load1(const uint8_t* p, Dtype dtype) {
  switch (dtype) {
    case Dtype::F32: {
      float value;
      std::memcpy(&value, p, 4);
      return value;
    }
    case Dtype::F16: return _cvtsh_ss(static_cast<unsigned short>(p[0] | (p[1] << 8)));
    case Dtype::BF16: {
      const uint32_t bits = static_cast<uint32_t>(p[0] | (p[1] << 8)) << 16;
      float value;
      std::memcpy(&value, &bits, 4);
      return value;
    }
    case Dtype::F64: {
      double value;
      std::memcpy(&value, p, 8);
      return static_cast<float>(value);
    }
  }
  return 0.0f;
}

void convert(const uint8_t* src, Dtype dtype, float* dst, size_t n) {
  const size_t size = dtype_size(dtype);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(src + i * size, dtype));
  for (; i < n; ++i) dst[i] = load1(src + i * size, dtype);
}

/** One micro-panel of X: panel[k * kGemmMr + i] = X[row0 + i][k0 + k], zero for i ≥ rows. */
void pack_activation_panel(const float* x, size_t ldx, size_t row0, size_t rows, size_t k0, size_t kc, void* panel_bytes) {
  float* panel = static_cast<float*>(panel_bytes);
  for (size_t i = 0; i < kGemmMr; ++i) {
    const float* row = i < rows ? x + (row0 + i) * ldx + k0 : nullptr;
    for (size_t k = 0; k < kc; ++k) panel[k * kGemmMr + i] = row ? row[k] : 0.0f;
  }
}

void pack_weight_panel(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t nr, size_t k0, size_t kc,
                       void* panel_bytes) {
  float* panel = static_cast<float*>(panel_bytes);
  const size_t size = dtype_size(dtype);
  // Eight weight rows at a time are converted 8 columns wide and transposed in registers into the panel.
  for (size_t j0 = 0; j0 < kGemmNr; j0 += 8) {
    const size_t rows = nr > j0 ? (nr - j0 < 8 ? nr - j0 : 8) : 0;
    const uint8_t* row[8];
    for (size_t r = 0; r < 8; ++r) row[r] = r < rows ? weight + ((n0 + j0 + r) * ldw + k0) * size : nullptr;
    size_t k = 0;
    if (rows == 8) {
      for (; k + 8 <= kc; k += 8) {
        __m256 r0 = load8(row[0] + k * size, dtype), r1 = load8(row[1] + k * size, dtype);
        __m256 r2 = load8(row[2] + k * size, dtype), r3 = load8(row[3] + k * size, dtype);
        __m256 r4 = load8(row[4] + k * size, dtype), r5 = load8(row[5] + k * size, dtype);
        __m256 r6 = load8(row[6] + k * size, dtype), r7 = load8(row[7] + k * size, dtype);
        const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
        const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
        const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        r0 = _mm256_permute2f128_ps(s0, s4, 0x20);
        r1 = _mm256_permute2f128_ps(s1, s5, 0x20);
        r2 = _mm256_permute2f128_ps(s2, s6, 0x20);
        r3 = _mm256_permute2f128_ps(s3, s7, 0x20);
        r4 = _mm256_permute2f128_ps(s0, s4, 0x31);
        r5 = _mm256_permute2f128_ps(s1, s5, 0x31);
        r6 = _mm256_permute2f128_ps(s2, s6, 0x31);
        r7 = _mm256_permute2f128_ps(s3, s7, 0x31);
        float* out = panel + k * kGemmNr + j0;
        _mm256_store_ps(out + 0 * kGemmNr, r0);
        _mm256_store_ps(out + 1 * kGemmNr, r1);
        _mm256_store_ps(out + 2 * kGemmNr, r2);
        _mm256_store_ps(out + 3 * kGemmNr, r3);
        _mm256_store_ps(out + 4 * kGemmNr, r4);
        _mm256_store_ps(out + 5 * kGemmNr, r5);
        _mm256_store_ps(out + 6 * kGemmNr, r6);
        _mm256_store_ps(out + 7 * kGemmNr, r7);
      }
    }
    for (; k < kc; ++k) {
      float* out = panel + k * kGemmNr + j0;
      for (size_t r = 0; r < 8; ++r) out[r] = r < rows ? load1(row[r] + k * size, dtype) : 0.0f;
    }
  }
}

void pack_transposed_panel(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t nr, size_t k0, size_t kc,
                           void* panel_bytes) {
  float* panel = static_cast<float*>(panel_bytes);
  const size_t size = dtype_size(dtype);
  for (size_t k = 0; k < kc; ++k) {
    const uint8_t* row = weight + ((k0 + k) * ldw + n0) * size;
    float* out = panel + k * kGemmNr;
    if (nr == kGemmNr) {
      _mm256_store_ps(out, load8(row, dtype));
      _mm256_store_ps(out + 8, load8(row + 8 * size, dtype));
    } else {
      for (size_t j = 0; j < kGemmNr; ++j) out[j] = j < nr ? load1(row + j * size, dtype) : 0.0f;
    }
  }
}

void micro_kernel(size_t kc, const void* a_panel, const void* b_panel, float* c, size_t ldc, size_t mr, size_t nr,
                  bool accumulate) {
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (size_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
    a += kGemmMr;
    b += kGemmNr;
  }
  const __m256 tile[kGemmMr][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (nr == kGemmNr) {
    for (size_t i = 0; i < mr; ++i) {
      float* row = c + i * ldc;
      __m256 v0 = tile[i][0], v1 = tile[i][1];
      if (accumulate) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row + 8));
      }
      _mm256_storeu_ps(row, v0);
      _mm256_storeu_ps(row + 8, v1);
    }
    return;
  }
  alignas(32) float spill[kGemmNr];
  for (size_t i = 0; i < mr; ++i) {
    _mm256_store_ps(spill, tile[i][0]);
    _mm256_store_ps(spill + 8, tile[i][1]);
    float* row = c + i * ldc;
    for (size_t j = 0; j < nr; ++j) row[j] = accumulate ? row[j] + spill[j] : spill[j];
  }
}

inline float horizontal_sum(__m256 v) {
  const __m128 low = _mm256_castps256_ps128(v);
  const __m128 high = _mm256_extractf128_ps(v, 1);
  __m128 sum = _mm_add_ps(low, high);
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

float dot(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float sum = horizontal_sum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy(float a, const float* x, float* y, size_t n) {
  const __m256 va = _mm256_set1_ps(a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

void scale(float a, float* y, size_t n) {
  const __m256 va = _mm256_set1_ps(a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(va, _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] *= a;
}

/** exp(t) = high · scale for 8 lanes of t ∈ [−110, 0]: forward_avx512.h's exp_split16 (see there). */
struct Exp8 {
  __m256 high;
  __m256 scale;
};

inline Exp8 exp_split8(__m256 t) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(t, _mm256_set1_ps(exp_poly::kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-exp_poly::kLn2High), t);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(-exp_poly::kLn2Low), r);
  __m256 p = _mm256_set1_ps(exp_poly::kP[0]);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly::kP[1]));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly::kP[2]));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly::kP[3]));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly::kP[4]));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly::kP[5]));
  const __m256 q = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i k = _mm256_cvtps_epi32(n);
  const __m256i k1 = _mm256_srai_epi32(k, 1);
  const __m256i k2 = _mm256_sub_epi32(k, k1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
  return Exp8{_mm256_mul_ps(q, s1), s2};
}

/** x · sigmoid(u) for 8 lanes, u of x's sign: forward_avx512.h's x_sigmoid16 (see there), with blends for the masks. */
inline __m256 x_sigmoid8(__m256 x, __m256 u) {
  const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), u);
  const Exp8 e = exp_split8(_mm256_max_ps(_mm256_set1_ps(-exp_poly::kSiluZeroBeyond), _mm256_sub_ps(_mm256_setzero_ps(), magnitude)));
  const __m256 in_range = _mm256_cmp_ps(magnitude, _mm256_set1_ps(exp_poly::kSiluZeroBeyond), _CMP_LE_OQ);
  const __m256 e_high = _mm256_and_ps(in_range, e.high);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 denominator = _mm256_fmadd_ps(e_high, e.scale, one);
  const __m256 negative = _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 numerator = _mm256_blendv_ps(one, e_high, negative);
  const __m256 quotient = _mm256_div_ps(_mm256_mul_ps(x, numerator), denominator);
  return _mm256_mul_ps(quotient, _mm256_blendv_ps(one, e.scale, negative));
}

inline __m256 silu8(__m256 x) { return x_sigmoid8(x, x); }

/** gelu(approximate="tanh") for 8 lanes: forward_avx512.h's gelu_tanh16 (see there). */
inline __m256 gelu_tanh8(__m256 x) {
  const __m256 cube = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 inner = _mm256_mul_ps(_mm256_set1_ps(gelu_tanh_poly::kBeta), _mm256_add_ps(x, _mm256_mul_ps(_mm256_set1_ps(gelu_tanh_poly::kKappa), cube)));
  return x_sigmoid8(x, _mm256_add_ps(inner, inner));
}

/** Exact gelu for 8 lanes: forward_avx512.h's gelu16 (see there), with blends for the masks. */
inline __m256 gelu8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_mul_ps(a, _mm256_set1_ps(gelu_erfc_poly::kInvSqrt2)), half, one));
  const __m256 w = _mm256_sub_ps(t, _mm256_set1_ps(gelu_erfc_poly::kCenter));
  __m256 p = _mm256_set1_ps(gelu_erfc_poly::kP[0]);
  for (int k = 1; k < 11; ++k) p = _mm256_fmadd_ps(p, w, _mm256_set1_ps(gelu_erfc_poly::kP[k]));
  const __m256 h = _mm256_mul_ps(a, a);
  const __m256 l = _mm256_fmsub_ps(a, a, h);
  const __m256 half_h = _mm256_mul_ps(h, half);
  const __m256 in_range = _mm256_cmp_ps(half_h, _mm256_set1_ps(gelu_erfc_poly::kZeroBeyond), _CMP_LE_OQ);
  const Exp8 gauss = exp_split8(_mm256_max_ps(_mm256_set1_ps(-gelu_erfc_poly::kZeroBeyond), _mm256_sub_ps(_mm256_setzero_ps(), half_h)));
  const Exp8 rest = exp_split8(_mm256_fnmadd_ps(l, half, p));
  const __m256 m = _mm256_and_ps(in_range, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, t), _mm256_mul_ps(rest.high, rest.scale)), gauss.high));
  const __m256 negative = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 above = _mm256_mul_ps(x, _mm256_fnmadd_ps(m, gauss.scale, one));
  const __m256 below = _mm256_mul_ps(_mm256_mul_ps(x, m), gauss.scale);
  return _mm256_blendv_ps(above, below, negative);
}

void dot_rows(const float* x, const float* rows, size_t stride, size_t count, size_t n, float* out) {
  for (size_t j = 0; j < count; ++j) out[j] = dot(x, rows + j * stride, n);
}

void axpy_rows(const float* weights, const float* rows, size_t stride, size_t count, size_t n, float* y) {
  for (size_t j = 0; j < count; ++j) axpy(weights[j], rows + j * stride, y, n);
}

/** tanh for 8 lanes: forward_avx512.h's tanh16 (see there), with blends for the masks. */
inline __m256 tanh8(__m256 y) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 t = _mm256_andnot_ps(sign_bit, y);
  const __m256 s = _mm256_mul_ps(t, t);
  __m256 q = _mm256_set1_ps(tanh_poly::kQ[0]);
  for (int k = 1; k < 6; ++k) q = _mm256_fmadd_ps(q, s, _mm256_set1_ps(tanh_poly::kQ[k]));
  const __m256 near_zero = _mm256_fmadd_ps(q, _mm256_mul_ps(s, t), t);
  const Exp8 e = exp_split8(_mm256_max_ps(_mm256_set1_ps(-2.0f * tanh_poly::kOneBeyond), _mm256_mul_ps(t, _mm256_set1_ps(-2.0f))));
  const __m256 ev = _mm256_mul_ps(e.high, e.scale);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 far = _mm256_sub_ps(one, _mm256_div_ps(_mm256_add_ps(ev, ev), _mm256_add_ps(one, ev)));
  const __m256 small = _mm256_cmp_ps(t, _mm256_set1_ps(tanh_poly::kPolyBelow), _CMP_LT_OQ);
  const __m256 magnitude = _mm256_blendv_ps(far, near_zero, small);
  return _mm256_or_ps(magnitude, _mm256_and_ps(sign_bit, y));
}

/** out = f(gate) · up, or f(gate) where up is null, 8 lanes at a time. */
template <__m256 (*F)(__m256)>
void activation_mul(const float* gate, const float* up, float* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = F(_mm256_loadu_ps(gate + i));
    if (up) v = _mm256_mul_ps(v, _mm256_loadu_ps(up + i));
    _mm256_storeu_ps(out + i, v);
  }
  if (i == n) return;
  // The tail through a padded block, so every element gets the same arithmetic as the vector body.
  float g[8] = {}, u[8] = {}, o[8];
  std::memcpy(g, gate + i, (n - i) * sizeof(float));
  if (up) std::memcpy(u, up + i, (n - i) * sizeof(float));
  __m256 v = F(_mm256_loadu_ps(g));
  if (up) v = _mm256_mul_ps(v, _mm256_loadu_ps(u));
  _mm256_storeu_ps(o, v);
  std::memcpy(out + i, o, (n - i) * sizeof(float));
}

void silu_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<silu8>(gate, up, out, n); }
void gelu_tanh_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<gelu_tanh8>(gate, up, out, n); }
void gelu_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<gelu8>(gate, up, out, n); }

void soft_cap_values(float* values, size_t n, float cap) {
  const __m256 c = _mm256_set1_ps(cap);
  size_t i = 0;
  // x / cap, as forward_math.h's soft_cap divides.
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(values + i, _mm256_mul_ps(tanh8(_mm256_div_ps(_mm256_loadu_ps(values + i), c)), c));
  if (i == n) return;
  // The tail through a padded block, so every element gets the same arithmetic as the vector body.
  float v[8] = {};
  std::memcpy(v, values + i, (n - i) * sizeof(float));
  _mm256_storeu_ps(v, _mm256_mul_ps(tanh8(_mm256_div_ps(_mm256_loadu_ps(v), c)), c));
  std::memcpy(values + i, v, (n - i) * sizeof(float));
}

const ForwardKernels kAvx2{"avx2", convert,
                          GemmKernels{"avx2", kGemmMr, kGemmNr, 1, 4, pack_activation_panel, pack_weight_panel, pack_transposed_panel, micro_kernel},
                          nullptr, Bf16Use::Never, dot, axpy, scale, dot_rows, axpy_rows, silu_mul, gelu_tanh_mul, gelu_mul, exp_shifted_sum, soft_cap_values};

}  // namespace

const ForwardKernels* avx2_forward_kernels() { return &kAvx2; }

}  // namespace fwd
}  // namespace abl
#endif
