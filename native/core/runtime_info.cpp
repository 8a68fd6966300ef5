#include "runtime_info.h"

#include <algorithm>
#include <thread>

#include "kernels.h"
#include "projection_backend.h"

namespace abl {

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.simd = best_kernels().name;
  info.threads = std::max(1u, std::thread::hardware_concurrency());
#if defined(ABLITERATE_WITH_CUDA)
  info.cuda_compiled = true;
#else
  info.cuda_compiled = false;
#endif
  info.cuda_devices = cuda_device_count();
  return info;
}

}  // namespace abl
