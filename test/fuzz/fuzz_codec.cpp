// libFuzzer harness for the dtype codec (native/core/dtype.h through every kernel table's decode/encode).
//
// For each dtype, on arbitrary bytes and arbitrary doubles:
// - decode then encode gives back the same bits (exact decoding, correctly rounded encoding), NaNs aside,
//   which must stay NaN with the quiet bit set;
// - encoding a double rounds to nearest-even exactly like an independent reference built from
//   ilogb/ldexp/nearbyint (below), with overflow to ±Inf and gradual underflow;
// - the scalar, AVX2 and AVX-512 tables (whichever this CPU runs) agree bit for bit, NaN payloads included.
//
// Built and run by test/fuzz/build-and-run.sh.
#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace {

struct Geometry {
  abl::Dtype dtype;
  int mantissa_bits;
  int min_exponent;  // of the smallest normal
  int max_exponent;
};

constexpr Geometry kNarrow[] = {
    {abl::Dtype::F32, 23, -126, 127},
    {abl::Dtype::F16, 10, -14, 15},
    {abl::Dtype::BF16, 7, -126, 127},
};

/** x rounded to nearest-even in the narrow format, by arithmetic only (no bit manipulation). */
double reference_round(double x, const Geometry& g) {
  if (std::isnan(x) || std::isinf(x) || x == 0) return x;
  const int exponent = std::max(std::ilogb(x), g.min_exponent);
  // ldexp by a power of two is exact here: the scaled value has at most 53 significant bits and stays normal.
  const double scaled = std::ldexp(x, g.mantissa_bits - exponent);
  const double rounded = std::ldexp(std::nearbyint(scaled), exponent - g.mantissa_bits);
  const double largest = std::ldexp(2.0 - std::ldexp(1.0, -g.mantissa_bits), g.max_exponent);
  if (std::fabs(rounded) > largest) return std::copysign(INFINITY, x);
  return rounded;
}

bool same_double(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

[[noreturn]] void fail(const char* what, const char* table, abl::Dtype dtype, double input, double got, double want) {
  std::fprintf(stderr, "%s [%s, %s]: input %.17g (%a) gave %.17g (%a), expected %.17g (%a)\n", what, table,
               abl::dtype_name(dtype), input, input, got, got, want, want);
  std::abort();
}

std::vector<const abl::KernelTable*> tables() {
  std::vector<const abl::KernelTable*> list{&abl::scalar_kernels()};
  const abl::KernelTable& best = abl::best_kernels();
  if (&best != list[0]) list.push_back(&best);
  // best_kernels() picked the widest table the CPU runs; AVX2 also runs wherever AVX-512 does.
  if (std::strcmp(best.name, "avx512") == 0 && abl::avx2_kernels()) list.push_back(abl::avx2_kernels());
  return list;
}

bool quiet_nan_bits(const uint8_t* bytes, abl::Dtype dtype) {
  switch (dtype) {
    case abl::Dtype::F64: return true;  // F64 keeps its bits as they are
    case abl::Dtype::F32: {
      uint32_t bits;
      std::memcpy(&bits, bytes, 4);
      return (bits & 0x7FC00000u) == 0x7FC00000u;
    }
    case abl::Dtype::F16: return (static_cast<uint16_t>(bytes[0] | (bytes[1] << 8)) & 0x7E00u) == 0x7E00u;
    case abl::Dtype::BF16: return (static_cast<uint16_t>(bytes[0] | (bytes[1] << 8)) & 0x7FC0u) == 0x7FC0u;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::fesetround(FE_TONEAREST);
  static const std::vector<const abl::KernelTable*> kTables = tables();
  const abl::Dtype dtypes[] = {abl::Dtype::F64, abl::Dtype::F32, abl::Dtype::F16, abl::Dtype::BF16};

  // 1. Arbitrary bytes: decode, encode back, same bits (NaNs: still NaN, quiet); all tables agree.
  for (abl::Dtype dtype : dtypes) {
    const size_t element = abl::dtype_size(dtype);
    const size_t count = size / element;
    std::vector<double> decoded(count), first(count);
    std::vector<uint8_t> encoded(count * element), first_bytes(count * element);
    for (size_t t = 0; t < kTables.size(); ++t) {
      kTables[t]->decode(data, decoded.data(), count, dtype);
      kTables[t]->encode(decoded.data(), encoded.data(), count, dtype);
      for (size_t i = 0; i < count; ++i) {
        const uint8_t* original = data + i * element;
        const uint8_t* again = encoded.data() + i * element;
        if (std::isnan(decoded[i])) {
          double back;
          kTables[t]->decode(again, &back, 1, dtype);
          if (!std::isnan(back) || !quiet_nan_bits(again, dtype)) fail("NaN lost its NaN-ness or quiet bit", kTables[t]->name, dtype, decoded[i], back, NAN);
        } else if (std::memcmp(original, again, element) != 0) {
          double back;
          kTables[t]->decode(again, &back, 1, dtype);
          fail("decode then encode changed the bits", kTables[t]->name, dtype, decoded[i], back, decoded[i]);
        }
      }
      if (t == 0) {
        first = decoded;
        first_bytes = encoded;
      } else {
        for (size_t i = 0; i < count; ++i) {
          uint64_t a, b;
          std::memcpy(&a, &first[i], 8);
          std::memcpy(&b, &decoded[i], 8);
          if (a != b) fail("decode differs between tables", kTables[t]->name, dtype, 0, decoded[i], first[i]);
        }
        if (first_bytes != encoded) fail("encode differs between tables", kTables[t]->name, dtype, 0, 0, 0);
      }
    }
  }

  // 2. Arbitrary doubles: encoding rounds like the reference; tables agree on the bits.
  const size_t count = size / 8;
  std::vector<double> values(count);
  if (count > 0) std::memcpy(values.data(), data, count * 8);
  for (const Geometry& g : kNarrow) {
    const size_t element = abl::dtype_size(g.dtype);
    std::vector<uint8_t> first_bytes(count * element), bytes(count * element);
    std::vector<double> back(count);
    for (size_t t = 0; t < kTables.size(); ++t) {
      kTables[t]->encode(values.data(), bytes.data(), count, g.dtype);
      kTables[t]->decode(bytes.data(), back.data(), count, g.dtype);
      for (size_t i = 0; i < count; ++i) {
        const double want = reference_round(values[i], g);
        if (!same_double(back[i], want)) fail("encode is not round-to-nearest-even", kTables[t]->name, g.dtype, values[i], back[i], want);
      }
      if (t == 0) first_bytes = bytes;
      else if (first_bytes != bytes) fail("encode differs between tables", kTables[t]->name, g.dtype, 0, 0, 0);
    }
  }
  return 0;
}
