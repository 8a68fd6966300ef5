// The projection backend registry (projection_backend.h). Plug-ins are listed here explicitly, each under the build
// flag that compiles it, so a build without CUDA has no CUDA symbol at all (no stubs, no weak references).
#include <cstdlib>
#include <string>

#include "native_error.h"
#include "projection_backend.h"

namespace abl {

#if defined(ABLITERATE_WITH_CUDA)
/** native/cuda/cuda_backend.cu */
const ProjectionBackendPlugin& cuda_projection_plugin();
#endif

namespace {

int cpu_devices(std::string*) { return 1; }

const ProjectionBackendPlugin kCpuPlugin{"cpu", cpu_devices, make_cpu_backend};

/** Names a job may ask for, whether or not this build has them (a typo is an error, a missing build is not). */
bool known_name(const std::string& name) { return name == "auto" || name == "cpu" || name == "cuda"; }

}  // namespace

const std::vector<const ProjectionBackendPlugin*>& projection_backend_plugins() {
  static const std::vector<const ProjectionBackendPlugin*> plugins = {
      &kCpuPlugin,
#if defined(ABLITERATE_WITH_CUDA)
      &cuda_projection_plugin(),
#endif
  };
  return plugins;
}

std::unique_ptr<ProjectionBackend> make_projection_backend(const ExecutionOptions& options) {
  // The job's request, else ABLITERATE_BACKEND, else auto.
  const char* environment = std::getenv("ABLITERATE_BACKEND");
  const std::string request = !options.backend.empty() ? options.backend : environment && *environment ? environment : "auto";
  if (!known_name(request)) {
    throw NativeError(error_code::kInvalidJob, "backend must be auto, cpu or cuda (got '" + request + "')");
  }
  if (request == "cpu") return make_cpu_backend(options.threads);
  std::string reason;
  for (const ProjectionBackendPlugin* plugin : projection_backend_plugins()) {
    const std::string name = plugin->name;
    if (name == "cpu" || (request != "auto" && name != request)) continue;
    std::string why;
    if (plugin->devices(&why) > 0) return plugin->create(options.threads);
    reason = name + ": " + (why.empty() ? "no device" : why);
    if (request != "auto") break;
  }
  std::unique_ptr<ProjectionBackend> cpu = make_cpu_backend(options.threads);
  if (request != "auto") {
    cpu->fallback_reason = reason.empty() ? request + ": not compiled into this build (ABLITERATE_CUDA=OFF)" : reason;
  }
  return cpu;
}

}  // namespace abl
