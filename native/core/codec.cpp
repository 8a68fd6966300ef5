#include "codec.h"

#include "kernels.h"

namespace abl {

void decode_elements(const uint8_t* in, double* out, size_t count, Dtype dtype) {
  best_kernels().decode(in, out, count, dtype);
}

void encode_elements(const double* in, uint8_t* out, size_t count, Dtype dtype) {
  best_kernels().encode(in, out, count, dtype);
}

}  // namespace abl
