// Floating dtypes of safetensors tensors and exact conversions to and from double.
//
// Decoding is exact (every F32/F16/BF16 value is a double). Encoding rounds once, to nearest-even, straight
// from the double's bits, so f64 -> bf16/f16 is correctly rounded (no f32 intermediate, no double
// rounding). NaN stays NaN: the payload's leading bits are kept as far as the format has room, and the
// result is a quiet NaN; F64 -> F64 keeps the bits as they are. Bytes are little-endian.
#pragma once

#include <cstdint>
#include <cstring>

#include "host_device.h"

namespace abl {

enum class Dtype : uint8_t { F64, F32, F16, BF16 };

ABL_FN unsigned dtype_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::F64: return 8;
    case Dtype::F32: return 4;
    case Dtype::F16: return 2;
    case Dtype::BF16: return 2;
  }
  return 0;
}

static inline const char* dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::F64: return "F64";
    case Dtype::F32: return "F32";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
  }
  return "?";
}

/** IEEE-style binary interchange layout narrower than binary64: sign, exponent, trailing mantissa. */
struct NarrowFormat {
  int mantissa_bits;
  int exponent_bits;
};


ABL_FN uint64_t double_to_bits(double value) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(value));
#else
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
#endif
}

ABL_FN double bits_to_double(uint64_t bits) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
#endif
}

/** Exact value of a narrow-format bit pattern. */
ABL_FN double narrow_bits_to_double(uint32_t bits, NarrowFormat format) {
  const int mb = format.mantissa_bits;
  const int eb = format.exponent_bits;
  const uint64_t sign = static_cast<uint64_t>((bits >> (mb + eb)) & 1u) << 63;
  const uint32_t exponent = (bits >> mb) & ((1u << eb) - 1u);
  const uint64_t mantissa = bits & ((1u << mb) - 1u);
  const int bias = (1 << (eb - 1)) - 1;
  if (exponent == (1u << eb) - 1u) {
    if (mantissa == 0) return bits_to_double(sign | (0x7FFull << 52));
    // Quiet NaN, payload left-aligned into the double's mantissa.
    return bits_to_double(sign | (0x7FFull << 52) | (1ull << 51) | (mantissa << (52 - mb)));
  }
  if (exponent == 0) {
    if (mantissa == 0) return bits_to_double(sign);
    // Subnormal: value = mantissa * 2^(1 - bias - mb); normalize so the leading one becomes implicit.
    int msb = 0;
    while ((mantissa >> (msb + 1)) != 0) ++msb;
    const int64_t unbiased = 1 - bias - mb + msb;
    const uint64_t fraction = (mantissa << (52 - msb)) & ((1ull << 52) - 1);
    return bits_to_double(sign | (static_cast<uint64_t>(unbiased + 1023) << 52) | fraction);
  }
  const int64_t unbiased = static_cast<int64_t>(exponent) - bias;
  return bits_to_double(sign | (static_cast<uint64_t>(unbiased + 1023) << 52) | (mantissa << (52 - mb)));
}

/** Rounds a double to the nearest narrow-format value, ties to even; overflow gives ±Inf. */
ABL_FN uint32_t double_to_narrow_bits(double value, NarrowFormat format) {
  const int mb = format.mantissa_bits;
  const int eb = format.exponent_bits;
  const uint64_t bits = double_to_bits(value);
  const uint32_t sign = static_cast<uint32_t>(bits >> 63) << (mb + eb);
  const int exponent = static_cast<int>((bits >> 52) & 0x7FF);
  const uint64_t fraction = bits & ((1ull << 52) - 1);
  const uint32_t exponent_all_ones = (1u << eb) - 1u;
  if (exponent == 0x7FF) {
    if (fraction == 0) return sign | (exponent_all_ones << mb);
    const uint32_t payload = static_cast<uint32_t>(fraction >> (52 - mb));
    return sign | (exponent_all_ones << mb) | payload | (1u << (mb - 1));
  }
  if (exponent == 0) return sign;  // double subnormals are below half the smallest narrow subnormal
  const int bias = (1 << (eb - 1)) - 1;
  const int unbiased = exponent - 1023;
  const uint64_t significand = fraction | (1ull << 52);  // value = significand * 2^(unbiased - 52)
  // Bits to drop: to mb fraction bits in the normal range, more below it (subnormal results).
  int shift = 52 - mb;
  const int min_normal_exponent = 1 - bias;
  if (unbiased < min_normal_exponent) shift += min_normal_exponent - unbiased;
  if (shift > 54) return sign;  // below half the smallest subnormal
  uint64_t kept = significand >> shift;
  const uint64_t remainder = significand & ((1ull << shift) - 1);
  const uint64_t half = 1ull << (shift - 1);
  if (remainder > half || (remainder == half && (kept & 1))) ++kept;
  uint64_t magnitude;
  if (unbiased < min_normal_exponent) {
    magnitude = kept;  // a carry to 1 << mb is exactly the smallest normal
  } else {
    // kept holds the implicit one at bit mb; adding it to (E - 1) << mb carries into the exponent.
    magnitude = (static_cast<uint64_t>(unbiased + bias - 1) << mb) + kept;
    const uint64_t infinity = static_cast<uint64_t>(exponent_all_ones) << mb;
    if (magnitude >= infinity) magnitude = infinity;
  }
  return sign | static_cast<uint32_t>(magnitude);
}

constexpr NarrowFormat kF32Format{23, 8};
constexpr NarrowFormat kF16Format{10, 5};
constexpr NarrowFormat kBF16Format{7, 8};

// The same as functions: nvcc does not let device code read namespace-scope objects.
ABL_FN NarrowFormat f32_format() { return NarrowFormat{23, 8}; }
ABL_FN NarrowFormat f16_format() { return NarrowFormat{10, 5}; }
ABL_FN NarrowFormat bf16_format() { return NarrowFormat{7, 8}; }

ABL_FN NarrowFormat narrow_format(Dtype dtype) {
  return dtype == Dtype::F32 ? f32_format() : dtype == Dtype::F16 ? f16_format() : bf16_format();
}

/** Reads element `index` of a little-endian buffer of `dtype`. */
ABL_FN double load_element(const uint8_t* data, uint64_t index, Dtype dtype) {
  const uint8_t* p = data + index * dtype_size(dtype);
  switch (dtype) {
    case Dtype::F64: {
      uint64_t bits = 0;
      for (int i = 7; i >= 0; --i) bits = (bits << 8) | p[i];
      return bits_to_double(bits);
    }
    case Dtype::F32: {
      const uint32_t bits = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
      return narrow_bits_to_double(bits, f32_format());
    }
    case Dtype::F16: return narrow_bits_to_double(p[0] | (p[1] << 8), f16_format());
    case Dtype::BF16: return narrow_bits_to_double(p[0] | (p[1] << 8), bf16_format());
  }
  return 0.0;
}

/** Rounds `value` into element `index` of a little-endian buffer of `dtype`. */
ABL_FN void store_element(uint8_t* data, uint64_t index, Dtype dtype, double value) {
  uint8_t* p = data + index * dtype_size(dtype);
  if (dtype == Dtype::F64) {
    const uint64_t bits = double_to_bits(value);
    for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(bits >> (8 * i));
    return;
  }
  const uint32_t bits = double_to_narrow_bits(value, narrow_format(dtype));
  const unsigned size = dtype_size(dtype);
  for (unsigned i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(bits >> (8 * i));
}

}  // namespace abl
