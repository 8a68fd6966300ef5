#include "runtime_info.h"

#include <algorithm>
#include <thread>

#include "forward/forward_kernels.h"
#include "kernel_choice.h"
#include "kernels.h"
#include "projection_backend.h"
#include "verify_kernels.h"

namespace abl {

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  const KernelChoice& choice = kernel_choice();
  info.threads = std::max(1u, std::thread::hardware_concurrency());
  info.kernel_setting = choice.setting;
  info.cpu_level = kernel_level_name(choice.cpu);
  info.projection_kernels = choice.projection->name;
  info.verify_kernels = choice.verify->name;
  info.forward_kernels = choice.forward->name;
  info.forward_bf16_kernels = fwd::forward_kernels_for(fwd::Compute::Bf16).name;
  info.forward_auto_kernels = fwd::forward_kernels_for(fwd::Compute::Auto).name;
  for (const ProjectionBackendPlugin* plugin : projection_backend_plugins()) {
    BackendInfo backend;
    backend.name = plugin->name;
    backend.devices = plugin->devices(&backend.reason);
    info.backends.push_back(backend);
  }
  return info;
}

}  // namespace abl
