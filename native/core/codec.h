// Bulk dtype conversion for the addon's decode/encode, through the fastest kernel table.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dtype.h"

namespace abl {

void decode_elements(const uint8_t* in, double* out, size_t count, Dtype dtype);
void encode_elements(const double* in, uint8_t* out, size_t count, Dtype dtype);

}  // namespace abl
