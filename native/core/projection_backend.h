// Where the projection arithmetic runs. The shard executor owns the file I/O and hands the backend
// chunks of raw tensor bytes; the CPU backend runs the SIMD kernels on a thread pool, the CUDA backend
// (native/cuda/) copies each chunk to the device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

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
};

std::unique_ptr<ProjectionBackend> make_cpu_backend(unsigned threads);

/** CUDA devices visible to this process; 0 when the addon was built without CUDA. */
int cuda_device_count();

/** Non-null only in a CUDA build with a device present (and ABLITERATE_BACKEND is not "cpu"). */
std::unique_ptr<ProjectionBackend> make_cuda_backend_if_available();

}  // namespace abl
