// Where the projection arithmetic runs. The shard executor owns the file I/O and hands the backend chunks of raw
// tensor bytes; the CPU backend runs the SIMD kernels on a thread pool, the CUDA backend (native/cuda/) copies each
// chunk to the device.
//
// Backends are plug-ins in a small registry, in the spirit of ggml's backend registry: each plug-in has a name, says
// how many devices it can use right now (and why not, when none), and creates a backend. The CPU plug-in is always
// registered and always available; the CUDA one is registered only in builds with ABLITERATE_CUDA=ON. A job names
// the backend it wants ("auto", "cpu", "cuda"); the result reports the one that ran and, when the request could
// not be met, why it fell back to the CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shard_job.h"

namespace abl {

class ProjectionBackend {
 public:
  virtual ~ProjectionBackend() = default;
  virtual const char* name() const = 0;

  /** Resets the per-tensor state (accumulators sized rank × cols for dModelAxis 0). */
  virtual void begin_tensor(const TensorJob& tensor) = 0;
  /** dModelAxis 0, pass 1: `rows` rows starting at tensor row `row0`. */
  virtual void accumulate_columns(const uint8_t* chunk, size_t rows, size_t row0) = 0;
  /** dModelAxis 0: after the last pass-1 chunk; computes v = Bᵀw and the norm-preserving scales. */
  virtual void finish_accumulation() = 0;
  /** dModelAxis 0, pass 2. */
  virtual void rewrite_rows(const uint8_t* in, uint8_t* out, size_t rows, size_t row0) = 0;
  /** dModelAxis 1: whole rows. */
  virtual void project_rows(const uint8_t* in, uint8_t* out, size_t rows) = 0;

  /** Set by the registry when this backend runs in place of the one the job asked for: why. */
  std::string fallback_reason;
};

struct ProjectionBackendPlugin {
  /** "cpu", "cuda": what jobs ask for and results report. */
  const char* name;
  /** Devices the plug-in can use now; 0 with `reason` filled when it cannot run. */
  int (*devices)(std::string* reason);
  std::unique_ptr<ProjectionBackend> (*create)(unsigned threads);
};

/** Every plug-in compiled into this build, the CPU first. */
const std::vector<const ProjectionBackendPlugin*>& projection_backend_plugins();

/**
 * The backend for `options.backend` (empty: the ABLITERATE_BACKEND environment variable, else "auto"): "cpu"; "cuda" (falls back to the CPU, with fallback_reason set, when the
 * plug-in is not compiled in or finds no device); "auto" (default; the first non-CPU plug-in with a device, else the
 * CPU). Throws NativeError for a name no plug-in of any build has.
 */
std::unique_ptr<ProjectionBackend> make_projection_backend(const ExecutionOptions& options);

std::unique_ptr<ProjectionBackend> make_cpu_backend(unsigned threads);

}  // namespace abl
