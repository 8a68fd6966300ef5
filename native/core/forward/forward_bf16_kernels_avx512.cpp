// The bf16 GEMM recipe: Y = X · Wᵀ with X rounded to bf16 (round to nearest even, vcvtne2ps2bf16), W read as bf16
// (exactly when stored BF16; F16/F32 weights rounded to nearest even when the table says so) and every product
// summed in fp32 by vdpbf16ps. A product of two bf16 values is exact in fp32, so the only roundings are the
// activation's (2^-9 relative) and the fp32 sums', as in an fp32 GEMM over bf16-rounded inputs; docs/precision.md
// measures the result against HF in fp32 and in bf16.
//
// Operands come in pairs along k (one 32-bit word holds X[i][2g], X[i][2g+1]; the panel's word holds W[j][2g],
// W[j][2g+1]), the layout vdpbf16ps multiplies. Register tile 12 × 32 as in the fp32 recipe. These functions
// execute AVX512_BF16 instructions (target attribute): the dispatcher hands this recipe out only where the CPU has
// them. The unit is otherwise compiled with the AVX-512 flags (cmake/simd.cmake matches *kernels_avx512.cpp).
#include "forward_kernels.h"

#if defined(ABLITERATE_KERNEL_AVX512)
#include "forward_avx512.h"

// GCC 12 expands several AVX-512 intrinsics through _mm512_undefined_*() and then warns that it is uninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"

#define ABL_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

namespace abl {
namespace fwd {
namespace {

using namespace avx512;

constexpr size_t kMr = 12;
constexpr size_t kNr = 32;

/** 32 fp32 values rounded to 32 bf16 (element t of the result from lo[t] for t < 16, else hi[t - 16]). */
ABL_BF16 inline __m512i round_pair(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

/** min(n, 32) elements of `dtype` at p as 32 bf16 patterns (zero beyond): BF16 copied, others rounded. */
ABL_BF16 inline __m512i load32_bf16(const uint8_t* p, Dtype dtype, size_t n) {
  if (dtype == Dtype::BF16) return _mm512_maskz_loadu_epi16(mask32(n), p);
  const size_t size = dtype_size(dtype);
  __m512 lo, hi = _mm512_setzero_ps();
  const __mmask16 m0 = mask16(n);
  switch (dtype) {
    case Dtype::F32:
      lo = _mm512_maskz_loadu_ps(m0, p);
      if (n > 16) hi = _mm512_maskz_loadu_ps(mask16(n - 16), p + 16 * size);
      break;
    case Dtype::F16:
      lo = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, p));
      if (n > 16) hi = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(n - 16), p + 16 * size));
      break;
    default: {
      // F64: rare enough for a plain loop.
      alignas(64) float values[32] = {};
      const double* d = reinterpret_cast<const double*>(p);
      for (size_t t = 0; t < 32 && t < n; ++t) values[t] = static_cast<float>(d[t]);
      lo = _mm512_load_ps(values);
      hi = _mm512_load_ps(values + 16);
    }
  }
  return round_pair(lo, hi);
}

/** panel word [g * 12 + i] = (X[row0 + i][k0 + 2g], X[row0 + i][k0 + 2g + 1]) in bf16, zero past kc and rows. */
ABL_BF16 void pack_a(const float* x, size_t ldx, size_t row0, size_t rows, size_t k0, size_t kc, void* panel_bytes) {
  uint32_t* panel = static_cast<uint32_t*>(panel_bytes);
  const size_t groups = (kc + 1) / 2;
  __m512i r[16];
  for (size_t k = 0; k < kc; k += 32) {
    const __mmask16 m0 = mask16(kc - k);
    const __mmask16 m1 = kc - k > 16 ? mask16(kc - k - 16) : __mmask16(0);
    for (size_t i = 0; i < 16; ++i) {
      if (i < rows && i < kMr) {
        const float* row = x + (row0 + i) * ldx + k0 + k;
        r[i] = round_pair(_mm512_maskz_loadu_ps(m0, row), _mm512_maskz_loadu_ps(m1, row + 16));
      } else {
        r[i] = _mm512_setzero_si512();
      }
    }
    transpose16x16(r);
    const size_t g0 = k / 2;
    const size_t count = groups - g0 < 16 ? groups - g0 : 16;
    for (size_t c = 0; c < count; ++c) _mm512_mask_storeu_epi32(panel + (g0 + c) * kMr, mask16(kMr), r[c]);
  }
}

/** panel word [g * 32 + j] = (W[n0 + j][k0 + 2g], W[n0 + j][k0 + 2g + 1]), zero for j ≥ rows and past kc. */
ABL_BF16 void pack_b(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t rows, size_t k0, size_t kc,
                     void* panel_bytes) {
  uint32_t* panel = static_cast<uint32_t*>(panel_bytes);
  const size_t size = dtype_size(dtype);
  const size_t groups = (kc + 1) / 2;
  __m512i r[16];
  for (size_t half = 0; half < kNr; half += 16) {
    for (size_t k = 0; k < kc; k += 32) {
      for (size_t j = 0; j < 16; ++j) {
        r[j] = half + j < rows ? load32_bf16(weight + ((n0 + half + j) * ldw + k0 + k) * size, dtype, kc - k) : _mm512_setzero_si512();
      }
      transpose16x16(r);
      const size_t g0 = k / 2;
      const size_t count = groups - g0 < 16 ? groups - g0 : 16;
      for (size_t c = 0; c < count; ++c) _mm512_store_si512(panel + (g0 + c) * kNr + half, r[c]);
    }
  }
}

/** The same for a weight stored [in, out]: stored rows k0 + 2g and k0 + 2g + 1 interleaved element by element. */
ABL_BF16 void pack_b_transposed(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t rows, size_t k0, size_t kc,
                                void* panel_bytes) {
  uint32_t* panel = static_cast<uint32_t*>(panel_bytes);
  const size_t size = dtype_size(dtype);
  const __m512i low_index = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5,
                                             36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i high_index = _mm512_add_epi16(low_index, _mm512_set1_epi16(16));
  for (size_t g = 0; g < (kc + 1) / 2; ++g) {
    const __m512i even = load32_bf16(weight + ((k0 + 2 * g) * ldw + n0) * size, dtype, rows);
    const __m512i odd = 2 * g + 1 < kc ? load32_bf16(weight + ((k0 + 2 * g + 1) * ldw + n0) * size, dtype, rows) : _mm512_setzero_si512();
    _mm512_store_si512(panel + g * kNr, _mm512_permutex2var_epi16(even, low_index, odd));
    _mm512_store_si512(panel + g * kNr + 16, _mm512_permutex2var_epi16(even, high_index, odd));
  }
}

ABL_BF16 void micro_kernel(size_t groups, const void* a_panel, const void* b_panel, float* c, size_t ldc, size_t rows,
                           size_t cols, bool accumulate) {
  const int32_t* a = static_cast<const int32_t*>(a_panel);
  const uint32_t* b = static_cast<const uint32_t*>(b_panel);
  __m512 acc[kMr][2];
#pragma GCC unroll 12
  for (size_t i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (size_t g = 0; g < groups; ++g) {
    // 16 groups (2 KB) ahead: packed panels lie in memory order, so near a panel's end this fetches the next
    // panel, which would otherwise arrive at the pace of demand misses (decode steps read each panel from DRAM).
    // Measured +3–5 % on generation, +1–2 % on capture (bench/forward-bench.ts); past a scratch panel it is harmless.
    _mm_prefetch(reinterpret_cast<const char*>(b + 16 * kNr), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 16 * kNr + 16), _MM_HINT_T0);
    // The X micro-panel streams from L2 (the tile's rows at this depth block are its L2 working set); 64 groups
    // (3 KB) ahead hides that latency, and near a micro-panel's end fetches the next one (the driver lays them
    // out one after another). With the driver's depth-major X, GEMMs of the bench model's shapes went from
    // 530–545 to 690–700 GFLOP/s on 2 cores. Prefetching the C tile as well made it slower (600): its lines
    // evicted the weight panel from L1.
    _mm_prefetch(reinterpret_cast<const char*>(a + 64 * kMr), _MM_HINT_T0);
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 12
    for (size_t i = 0; i < kMr; ++i) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(a[i]);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, b1);
    }
    a += kMr;
    b += kNr;
  }
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

const GemmKernels kBf16Gemm{"avx512-bf16", kMr, kNr, 2, 2, pack_a, pack_b, pack_b_transposed, micro_kernel};

}  // namespace

const GemmKernels& avx512_bf16_gemm() { return kBf16Gemm; }

}  // namespace fwd
}  // namespace abl
#endif
