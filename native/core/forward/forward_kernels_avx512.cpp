// AVX-512 (F, BW, VL) forward kernels: conversion, the fp32 GEMM recipe (12 × 32 register tile: 24 of the 32 zmm
// registers accumulate, two hold the weight panel's row, one the broadcast activation) and the vector helpers.
// The bf16 recipe lives in forward_bf16_kernels_avx512.cpp. The build compiles this unit alone with the AVX-512
// flags (cmake/simd.cmake matches *kernels_avx512.cpp); see forward_kernels.h for why it holds only raw loops.
#include "forward_kernels.h"

#if defined(ABLITERATE_KERNEL_AVX512)
#include <cstring>

#include "forward_avx512.h"

// GCC 12 expands several AVX-512 intrinsics through _mm512_undefined_*() and then warns that it is uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace abl {
namespace fwd {

/** The bf16 recipe (forward_bf16_kernels_avx512.cpp); its functions execute AVX512_BF16 instructions. */
const GemmKernels& avx512_bf16_gemm();

namespace {

using namespace avx512;

constexpr size_t kMr = 12;
constexpr size_t kNr = 32;

/** min(n, 16) elements of `dtype` at p as fp32, zero beyond; masked loads never touch memory past them. */
inline __m512 load16(const uint8_t* p, Dtype dtype, size_t n) {
  const __mmask16 m = mask16(n);
  switch (dtype) {
    case Dtype::F32: return _mm512_maskz_loadu_ps(m, p);
    case Dtype::F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    case Dtype::BF16: return bf16_to_fp32(_mm256_maskz_loadu_epi16(m, p));
    case Dtype::F64: {
      const __m256 low = _mm512_cvtpd_ps(_mm512_maskz_loadu_pd(__mmask8(m & 0xFF), p));
      const __m256 high = _mm512_cvtpd_ps(_mm512_maskz_loadu_pd(__mmask8(m >> 8), p + 64));
      return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(low)), _mm256_castps_pd(high), 1));
    }
  }
  return _mm512_setzero_ps();
}

void convert(const uint8_t* src, Dtype dtype, float* dst, size_t n) {
  const size_t size = dtype_size(dtype);
  for (size_t i = 0; i < n; i += 16) _mm512_mask_storeu_ps(dst + i, mask16(n - i), load16(src + i * size, dtype, n - i));
}

/** panel[k * 12 + i] = X[row0 + i][k0 + k] for k < kc, zero for i ≥ rows: 16 × 16 transposes, 12 rows kept. */
void pack_a(const float* x, size_t ldx, size_t row0, size_t rows, size_t k0, size_t kc, void* panel_bytes) {
  float* panel = static_cast<float*>(panel_bytes);
  __m512i r[16];
  for (size_t k = 0; k < kc; k += 16) {
    const __mmask16 m = mask16(kc - k);
    for (size_t i = 0; i < 16; ++i) {
      r[i] = i < rows && i < kMr ? _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + (row0 + i) * ldx + k0 + k)) : _mm512_setzero_si512();
    }
    transpose16x16(r);
    const size_t columns = kc - k < 16 ? kc - k : 16;
    for (size_t c = 0; c < columns; ++c) _mm512_mask_storeu_epi32(panel + (k + c) * kMr, mask16(kMr), r[c]);
  }
}

/** panel[k * 32 + j] = W[n0 + j][k0 + k], zero for j ≥ rows: per 16 weight rows, 16 × 16 transposes. */
void pack_b(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t rows, size_t k0, size_t kc, void* panel_bytes) {
  float* panel = static_cast<float*>(panel_bytes);
  const size_t size = dtype_size(dtype);
  __m512i r[16];
  for (size_t half = 0; half < kNr; half += 16) {
    for (size_t k = 0; k < kc; k += 16) {
      for (size_t j = 0; j < 16; ++j) {
        r[j] = half + j < rows ? _mm512_castps_si512(load16(weight + ((n0 + half + j) * ldw + k0 + k) * size, dtype, kc - k))
                               : _mm512_setzero_si512();
      }
      transpose16x16(r);
      const size_t columns = kc - k < 16 ? kc - k : 16;
      for (size_t c = 0; c < columns; ++c) _mm512_store_si512(panel + (k + c) * kNr + half, r[c]);
    }
  }
}

/** The same for a weight stored [in, out]: each stored row k is 32 consecutive panel entries. */
void pack_b_transposed(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t rows, size_t k0, size_t kc,
                       void* panel_bytes) {
  float* panel = static_cast<float*>(panel_bytes);
  const size_t size = dtype_size(dtype);
  for (size_t k = 0; k < kc; ++k) {
    const uint8_t* row = weight + ((k0 + k) * ldw + n0) * size;
    _mm512_store_ps(panel + k * kNr, load16(row, dtype, rows));
    _mm512_store_ps(panel + k * kNr + 16, rows > 16 ? load16(row + 16 * size, dtype, rows - 16) : _mm512_setzero_ps());
  }
}

/** Stores (or adds) the 12 × 32 tile's first `rows` rows and `cols` columns. */
inline void store_tile(const __m512 (&acc)[kMr][2], float* c, size_t ldc, size_t rows, size_t cols, bool accumulate) {
  const __mmask16 m0 = mask16(cols);
  const __mmask16 m1 = cols > 16 ? mask16(cols - 16) : __mmask16(0);
  // Unrolled, so the accumulators stay in registers rather than being spilled to be indexed.
#pragma GCC unroll 12
  for (size_t i = 0; i < kMr; ++i) {
    if (i >= rows) break;
    float* row = c + i * ldc;
    __m512 v0 = acc[i][0], v1 = acc[i][1];
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row + 16));
    }
    _mm512_mask_storeu_ps(row, m0, v0);
    _mm512_mask_storeu_ps(row + 16, m1, v1);
  }
}

void micro_kernel(size_t kc, const void* a_panel, const void* b_panel, float* c, size_t ldc, size_t rows, size_t cols,
                  bool accumulate) {
  const float* a = static_cast<const float*>(a_panel);
  const float* b = static_cast<const float*>(b_panel);
  __m512 acc[kMr][2];
#pragma GCC unroll 12
  for (size_t i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (size_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
    for (size_t i = 0; i < kMr; ++i) {
      const __m512 x = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
    }
    a += kMr;
    b += kNr;
  }
  store_tile(acc, c, ldc, rows, cols, accumulate);
}

/** Sum of the 16 lanes (pairwise; not _mm512_reduce_add_ps, whose GCC 12 expansion warns falsely). */
inline float horizontal_sum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  __m128 s = _mm512_castps512_ps128(v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float dot(const float* a, const float* b, size_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
  }
  return horizontal_sum(_mm512_add_ps(acc0, acc1));
}

void axpy(float a, const float* x, float* y, size_t n) {
  const __m512 va = _mm512_set1_ps(a);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void scale(float a, float* y, size_t n) {
  const __m512 va = _mm512_set1_ps(a);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, y + i)));
  }
}

void dot_rows(const float* x, const float* rows, size_t stride, size_t count, size_t n, float* out) {
  // dot inlined: consecutive keys are independent, so their loads and sums overlap.
  for (size_t j = 0; j < count; ++j) out[j] = dot(x, rows + j * stride, n);
}

void axpy_rows(const float* weights, const float* rows, size_t stride, size_t count, size_t n, float* y) {
  // 64 columns of y at a time held in registers across every row: the same fused multiply-adds as axpy, in the same
  // order, without a load and store of y per row.
  for (size_t c = 0; c < n; c += 64) {
    const size_t width = n - c < 64 ? n - c : 64;
    const __mmask16 m0 = mask16(width), m1 = width > 16 ? mask16(width - 16) : __mmask16(0);
    const __mmask16 m2 = width > 32 ? mask16(width - 32) : __mmask16(0), m3 = width > 48 ? mask16(width - 48) : __mmask16(0);
    float* out = y + c;
    __m512 y0 = _mm512_maskz_loadu_ps(m0, out), y1 = _mm512_maskz_loadu_ps(m1, out + 16);
    __m512 y2 = _mm512_maskz_loadu_ps(m2, out + 32), y3 = _mm512_maskz_loadu_ps(m3, out + 48);
    const float* row = rows + c;
    for (size_t j = 0; j < count; ++j, row += stride) {
      const __m512 w = _mm512_set1_ps(weights[j]);
      y0 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m0, row), y0);
      y1 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m1, row + 16), y1);
      y2 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m2, row + 32), y2);
      y3 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m3, row + 48), y3);
    }
    _mm512_mask_storeu_ps(out, m0, y0);
    _mm512_mask_storeu_ps(out + 16, m1, y1);
    _mm512_mask_storeu_ps(out + 32, m2, y2);
    _mm512_mask_storeu_ps(out + 48, m3, y3);
  }
}

/** out = f(gate) · up, or f(gate) where up is null, 16 lanes at a time; the tail masked. */
template <__m512 (*F)(__m512)>
void activation_mul(const float* gate, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    __m512 v = F(_mm512_maskz_loadu_ps(m, gate + i));
    if (up) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, up + i));
    _mm512_mask_storeu_ps(out + i, m, v);
  }
}

void silu_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<silu16>(gate, up, out, n); }
void gelu_tanh_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<gelu_tanh16>(gate, up, out, n); }
void gelu_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<gelu16>(gate, up, out, n); }

float exp_shifted(float* values, size_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    // Lanes past n compute exp(0) and are neither stored nor summed.
    const __m512 e = exp_nonpositive16(_mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, values + i), s));
    _mm512_mask_storeu_ps(values + i, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  return horizontal_sum(sum);
}

void soft_cap_values(float* values, size_t n, float cap) {
  const __m512 c = _mm512_set1_ps(cap);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = mask16(n - i);
    // x / cap, as forward_math.h's soft_cap divides.
    const __m512 y = _mm512_div_ps(_mm512_maskz_loadu_ps(m, values + i), c);
    _mm512_mask_storeu_ps(values + i, m, _mm512_mul_ps(tanh16(y), c));
  }
}

const GemmKernels kFp32Gemm{"avx512", kMr, kNr, 1, 4, pack_a, pack_b, pack_b_transposed, micro_kernel};

}  // namespace

const ForwardKernels* avx512_forward_kernels(Bf16Use use) {
  static const ForwardKernels fp32{"avx512", convert, kFp32Gemm, nullptr, Bf16Use::Never, dot, axpy, scale, dot_rows, axpy_rows, silu_mul, gelu_tanh_mul, gelu_mul, exp_shifted, soft_cap_values};
  if (use == Bf16Use::Never) return &fp32;
  if (!cpu_runs_avx512_bf16()) return nullptr;
  // The bf16 tables are the fp32 one with the bf16 recipe switched on; every other entry is shared.
  const auto with_bf16 = [](const char* name, Bf16Use bf16_use) {
    ForwardKernels table = fp32;
    table.name = name;
    table.gemm_bf16 = &avx512_bf16_gemm();
    table.bf16_use = bf16_use;
    return table;
  };
  static const ForwardKernels bf16_weights = with_bf16("avx512+bf16", Bf16Use::Bf16Weights);
  static const ForwardKernels all_weights = with_bf16("avx512+bf16-all", Bf16Use::AllWeights);
  return use == Bf16Use::AllWeights ? &all_weights : &bf16_weights;
}

}  // namespace fwd
}  // namespace abl
#endif
