#pragma once

#include <string>

namespace abl {

struct RuntimeInfo {
  std::string simd;  // "avx512", "avx2", "scalar": the kernel table in use
  unsigned threads;  // default kernel threads (hardware concurrency)
  bool cuda_compiled;
  int cuda_devices;
};

RuntimeInfo runtime_info();

}  // namespace abl
