// Portable forward kernels: the reference the SIMD tables must agree with, and the fallback on any CPU.
// Written so the compiler can vectorize them with the baseline instruction set.
#include <cstring>

#include "forward_kernels.h"
#include "forward_math.h"

namespace abl {
namespace fwd {
namespace {

/** The fp32 register tile of this table: 6 rows of X × 16 weight rows (12 of the 16 ymm registers). */
constexpr size_t kGemmMr = 6;
constexpr size_t kGemmNr = 16;

float load_as_float(const uint8_t* p, Dtype dtype) {
  switch (dtype) {
    case Dtype::F32: {
      float value;
      std::memcpy(&value, p, 4);
      return value;
    }
    case Dtype::BF16: {
      const uint32_t bits = static_cast<uint32_t>(p[0] | (p[1] << 8)) << 16;
      float value;
      std::memcpy(&value, &bits, 4);
      return value;
    }
    case Dtype::F16: return static_cast<float>(narrow_bits_to_double(p[0] | (p[1] << 8), kF16Format));
    case Dtype::F64: return static_cast<float>(load_element(p, 0, Dtype::F64));
  }
  return 0.0f;
}

void convert(const uint8_t* src, Dtype dtype, float* dst, size_t n) {
  if (dtype == Dtype::F32) {
    std::memcpy(dst, src, n * 4);
    return;
  }
  const size_t size = dtype_size(dtype);
  for (size_t i = 0; i < n; ++i) dst[i] = load_as_float(src + i * size, dtype);
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
  for (size_t j = 0; j < kGemmNr; ++j) {
    if (j >= nr) {
      for (size_t k = 0; k < kc; ++k) panel[k * kGemmNr + j] = 0.0f;
      continue;
    }
    const uint8_t* row = weight + ((n0 + j) * ldw + k0) * size;
    for (size_t k = 0; k < kc; ++k) panel[k * kGemmNr + j] = load_as_float(row + k * size, dtype);
  }
}

void pack_transposed_panel(const uint8_t* weight, Dtype dtype, size_t ldw, size_t n0, size_t nr, size_t k0, size_t kc,
                           void* panel_bytes) {
  float* panel = static_cast<float*>(panel_bytes);
  const size_t size = dtype_size(dtype);
  for (size_t k = 0; k < kc; ++k) {
    const uint8_t* row = weight + ((k0 + k) * ldw + n0) * size;
    for (size_t j = 0; j < kGemmNr; ++j) panel[k * kGemmNr + j] = j < nr ? load_as_float(row + j * size, dtype) : 0.0f;
  }
}

void micro_kernel(size_t kc, const void* a_bytes, const void* b_bytes, float* c, size_t ldc, size_t mr, size_t nr,
                  bool accumulate) {
  const float* a_panel = static_cast<const float*>(a_bytes);
  const float* b_panel = static_cast<const float*>(b_bytes);
  float acc[kGemmMr][kGemmNr] = {};
  for (size_t k = 0; k < kc; ++k) {
    const float* a = a_panel + k * kGemmMr;
    const float* b = b_panel + k * kGemmNr;
    for (size_t i = 0; i < kGemmMr; ++i) {
      for (size_t j = 0; j < kGemmNr; ++j) acc[i][j] += a[i] * b[j];
    }
  }
  for (size_t i = 0; i < mr; ++i) {
    float* row = c + i * ldc;
    for (size_t j = 0; j < nr; ++j) row[j] = accumulate ? row[j] + acc[i][j] : acc[i][j];
  }
}

float dot(const float* a, const float* b, size_t n) {
  // Eight partial sums, as the SIMD kernels keep, so both orders of summation are alike.
  float partial[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t l = 0; l < 8; ++l) partial[l] += a[i + l] * b[i + l];
  }
  float sum = 0.0f;
  for (size_t l = 0; l < 8; ++l) sum += partial[l];
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void scale(float a, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] *= a;
}

void dot_rows(const float* x, const float* rows, size_t stride, size_t count, size_t n, float* out) {
  for (size_t j = 0; j < count; ++j) out[j] = dot(x, rows + j * stride, n);
}

void axpy_rows(const float* weights, const float* rows, size_t stride, size_t count, size_t n, float* y) {
  for (size_t j = 0; j < count; ++j) axpy(weights[j], rows + j * stride, y, n);
}

/** out = f(gate) · up, or f(gate) where up is null, element by element with forward_math.h's f. */
template <float (*F)(float)>
void activation_mul(const float* gate, const float* up, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = up ? F(gate[i]) * up[i] : F(gate[i]);
}

void silu_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<silu>(gate, up, out, n); }
void gelu_tanh_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<gelu_tanh>(gate, up, out, n); }
void gelu_mul(const float* gate, const float* up, float* out, size_t n) { activation_mul<gelu_exact>(gate, up, out, n); }

void soft_cap_values(float* values, size_t n, float cap) {
  for (size_t i = 0; i < n; ++i) values[i] = soft_cap(values[i], cap);
}

const ForwardKernels kScalar{"scalar", convert,
                          GemmKernels{"scalar", kGemmMr, kGemmNr, 1, 4, pack_activation_panel, pack_weight_panel, pack_transposed_panel, micro_kernel},
                          nullptr, Bf16Use::Never, dot, axpy, scale, dot_rows, axpy_rows, silu_mul, gelu_tanh_mul, gelu_mul, exp_shifted_sum, soft_cap_values};

}  // namespace

const ForwardKernels& scalar_forward_kernels() { return kScalar; }

}  // namespace fwd
}  // namespace abl
