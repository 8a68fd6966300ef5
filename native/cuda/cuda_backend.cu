// The projection on a CUDA device. The executor (native/core/shard_apply.cpp) still does all file I/O;
// each chunk of raw tensor bytes is copied to the device, projected there with the same per-element
// maths as the CPU kernels (native/core/projection_math.h, native/core/dtype.h), and copied back.
//
// Determinism: pass 1 gives each column to one thread that adds the chunk's rows in order, exactly as
// the CPU kernels do, so dModelAxis 0 results match the CPU bit for bit (the build passes --fmad=false).
// Row dot products (dModelAxis 1) are reduced in the order of the CPU kernel table in use (its vector width), so
// those match the CPU byte for byte too. test/unit/native-backend-parity.test.ts checks both where a device exists.
// Registered as the "cuda" plug-in of native/core/projection_backend.h.
#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "core/native_error.h"
#include "core/kernels.h"
#include "core/projection_backend.h"
#include "core/projection_math.h"

namespace abl {

namespace {

void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) {
    throw NativeError(error_code::kCuda, std::string(call) + ": " + cudaGetErrorString(status));
  }
}

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() {
    if (data_) cudaFree(data_);
  }
  /** Grows to at least `count` elements; the contents are not kept. */
  void reserve(size_t count) {
    if (count <= capacity_) return;
    if (data_) cudaFree(data_);
    data_ = nullptr;
    check(cudaMalloc(&data_, count * sizeof(T)), "cudaMalloc");
    capacity_ = count;
  }
  void zero(size_t count) { check(cudaMemset(data_, 0, count * sizeof(T)), "cudaMemset"); }
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t capacity_ = 0;
};

struct TensorShape {
  Dtype dtype;
  size_t cols;
  size_t d_model;
  unsigned rank;
  double alpha;
  bool norm_preserving;
};

__global__ void accumulate_columns_kernel(TensorShape shape, const uint8_t* chunk, size_t rows, size_t row0,
                                          const double* basis, double* projection_sum, double* projection_comp,
                                          double* norm_sum, double* norm_comp) {
  const size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (j >= shape.cols) return;
  for (size_t i = 0; i < rows; ++i) {
    const double w = load_element(chunk, i * shape.cols + j, shape.dtype);
    for (unsigned k = 0; k < shape.rank; ++k) {
      double sum = projection_sum[k * shape.cols + j];
      double comp = projection_comp[k * shape.cols + j];
      accumulate_product<ScalarLane>(sum, comp, basis[k * shape.d_model + row0 + i], w);
      projection_sum[k * shape.cols + j] = sum;
      projection_comp[k * shape.cols + j] = comp;
    }
    if (shape.norm_preserving) {
      double sum = norm_sum[j];
      double comp = norm_comp[j];
      accumulate_product<ScalarLane>(sum, comp, w, w);
      norm_sum[j] = sum;
      norm_comp[j] = comp;
    }
  }
}

__global__ void finish_columns_kernel(TensorShape shape, const double* projection_sum, const double* projection_comp,
                                      const double* norm_sum, const double* norm_comp, double* projection,
                                      double* scale) {
  const size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (j >= shape.cols) return;
  DoubleDouble projection_sq{0.0, 0.0};
  for (unsigned k = 0; k < shape.rank; ++k) {
    const DoubleDouble v = finish_sum(projection_sum[k * shape.cols + j], projection_comp[k * shape.cols + j]);
    projection[k * shape.cols + j] = v.hi;
    projection_sq = dd_add(projection_sq, dd_square(v));
  }
  if (shape.norm_preserving) {
    scale[j] = norm_preserving_scale(finish_sum(norm_sum[j], norm_comp[j]), projection_sq, shape.alpha);
  }
}

__global__ void rewrite_rows_kernel(TensorShape shape, const uint8_t* in, uint8_t* out, size_t rows, size_t row0,
                                    const double* basis, const double* projection, const double* scale) {
  const size_t index = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (index >= rows * shape.cols) return;
  const size_t i = index / shape.cols;
  const size_t j = index % shape.cols;
  double value = load_element(in, index, shape.dtype);
  for (unsigned k = 0; k < shape.rank; ++k) {
    const double coefficient = -(shape.alpha * basis[k * shape.d_model + row0 + i]);
    value = ScalarLane::fma(coefficient, projection[k * shape.cols + j], value);
  }
  if (shape.norm_preserving) value = value * scale[j];
  store_element(out, index, shape.dtype, value);
}

/**
 * Rows of [rows, d_model], in the reduction order of the CPU kernel table of `width` doubles per vector
 * (native/core/kernel_impl.h, project_row): a block holds blockDim / width rows; lane l of a row sums the elements
 * j ≡ l (mod width) below d − d % width in order, as lane l of the CPU vector does; lane 0 then joins the lanes in
 * order 0, 1, …, width − 1 and adds the tail element by element. Every step is the same IEEE operation as on the
 * CPU (compensated sums, explicit fma, --fmad=false), so the output is byte-identical to the CPU backend's.
 *
 * Shared memory: per thread, (rank + 1) sums and compensations; per row, rank coefficients and the scale.
 */
__global__ void project_rows_kernel(TensorShape shape, unsigned width, const uint8_t* in, uint8_t* out, size_t rows,
                                    const double* basis) {
  extern __shared__ double shared[];
  const unsigned t = threadIdx.x;
  const unsigned groups = blockDim.x / width;
  const unsigned group = t / width;
  const unsigned lane = t % width;
  const size_t row = blockIdx.x * static_cast<size_t>(groups) + group;
  const bool active = group < groups && row < rows;
  const unsigned sums = shape.rank + 1;  // the last one is ‖w‖²
  const size_t d = shape.d_model;
  const size_t body = d - d % width;
  double* sum = shared + static_cast<size_t>(t) * 2 * sums;
  double* comp = sum + sums;
  double* coefficients = shared + static_cast<size_t>(blockDim.x) * 2 * sums + static_cast<size_t>(group) * sums;
  const uint8_t* row_in = in + row * d * dtype_size(shape.dtype);
  uint8_t* row_out = out + row * d * dtype_size(shape.dtype);

  if (active) {
    for (unsigned k = 0; k < sums; ++k) sum[k] = comp[k] = 0.0;
    for (size_t j = lane; j < body; j += width) {
      const double w = load_element(row_in, j, shape.dtype);
      for (unsigned k = 0; k < shape.rank; ++k) accumulate_product<ScalarLane>(sum[k], comp[k], basis[k * d + j], w);
      if (shape.norm_preserving) accumulate_product<ScalarLane>(sum[shape.rank], comp[shape.rank], w, w);
    }
  }
  __syncthreads();
  if (active && lane == 0) {
    DoubleDouble projection_sq{0.0, 0.0};
    for (unsigned k = 0; k <= shape.rank; ++k) {
      if (k == shape.rank && !shape.norm_preserving) break;
      double s = sum[k];
      double c = comp[k];
      for (unsigned other = 1; other < width; ++other) {
        const double* other_sum = shared + static_cast<size_t>(t + other) * 2 * sums;
        merge_sums<ScalarLane>(s, c, other_sum[k], other_sum[sums + k]);
      }
      for (size_t j = body; j < d; ++j) {
        const double w = load_element(row_in, j, shape.dtype);
        accumulate_product<ScalarLane>(s, c, k == shape.rank ? w : basis[k * d + j], w);
      }
      const DoubleDouble total = finish_sum(s, c);
      if (k < shape.rank) {
        coefficients[k] = -(shape.alpha * total.hi);
        if (shape.norm_preserving) projection_sq = dd_add(projection_sq, dd_square(total));
      } else {
        coefficients[shape.rank] = norm_preserving_scale(total, projection_sq, shape.alpha);
      }
    }
    if (!shape.norm_preserving) coefficients[shape.rank] = 1.0;
  }
  __syncthreads();
  if (!active) return;
  for (size_t j = lane; j < d; j += width) {
    double value = load_element(row_in, j, shape.dtype);
    for (unsigned k = 0; k < shape.rank; ++k) value = ScalarLane::fma(coefficients[k], basis[k * d + j], value);
    if (shape.norm_preserving) value = value * coefficients[shape.rank];
    store_element(row_out, j, shape.dtype, value);
  }
}

constexpr unsigned kThreads = 256;

unsigned blocks_for(size_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

class CudaBackend final : public ProjectionBackend {
 public:
  /** `width`: doubles per vector of the CPU projection table in use, whose row reduction order is mirrored. */
  explicit CudaBackend(unsigned width) : width_(width) {}
  const char* name() const override { return "cuda"; }

  void begin_tensor(const TensorJob& tensor) override {
    tensor_ = &tensor;
    shape_ = TensorShape{tensor.dtype,       static_cast<size_t>(tensor.cols), static_cast<size_t>(tensor.d_model()),
                         tensor.rank,        tensor.alpha,                     tensor.norm_preserving};
    basis_.reserve(tensor.basis.size());
    check(cudaMemcpy(basis_.get(), tensor.basis.data(), tensor.basis.size() * sizeof(double), cudaMemcpyHostToDevice),
          "cudaMemcpy basis");
    if (tensor.d_model_axis != 0) return;
    const size_t accumulators = static_cast<size_t>(tensor.rank) * tensor.cols;
    projection_sum_.reserve(accumulators);
    projection_comp_.reserve(accumulators);
    projection_.reserve(accumulators);
    norm_sum_.reserve(tensor.cols);
    norm_comp_.reserve(tensor.cols);
    scale_.reserve(tensor.cols);
    projection_sum_.zero(accumulators);
    projection_comp_.zero(accumulators);
    norm_sum_.zero(tensor.cols);
    norm_comp_.zero(tensor.cols);
  }

  void accumulate_columns(const uint8_t* chunk, size_t rows, size_t row0) override {
    const uint8_t* device_chunk = upload(chunk, rows * shape_.cols);
    accumulate_columns_kernel<<<blocks_for(shape_.cols), kThreads>>>(shape_, device_chunk, rows, row0, basis_.get(),
                                                                      projection_sum_.get(), projection_comp_.get(),
                                                                      norm_sum_.get(), norm_comp_.get());
    check(cudaGetLastError(), "accumulate_columns_kernel");
  }

  void finish_accumulation() override {
    finish_columns_kernel<<<blocks_for(shape_.cols), kThreads>>>(shape_, projection_sum_.get(), projection_comp_.get(),
                                                                  norm_sum_.get(), norm_comp_.get(), projection_.get(),
                                                                  scale_.get());
    check(cudaGetLastError(), "finish_columns_kernel");
  }

  void rewrite_rows(const uint8_t* in, uint8_t* out, size_t rows, size_t row0) override {
    const size_t elements = rows * shape_.cols;
    const uint8_t* device_in = upload(in, elements);
    device_out_.reserve(elements * dtype_size(shape_.dtype));
    rewrite_rows_kernel<<<blocks_for(elements), kThreads>>>(shape_, device_in, device_out_.get(), rows, row0,
                                                             basis_.get(), projection_.get(), scale_.get());
    check(cudaGetLastError(), "rewrite_rows_kernel");
    download(out, elements);
  }

  void project_rows(const uint8_t* in, uint8_t* out, size_t rows) override {
    const size_t elements = rows * shape_.cols;
    const uint8_t* device_in = upload(in, elements);
    device_out_.reserve(elements * dtype_size(shape_.dtype));
    // Fewer threads (whole rows of `width` lanes) for large ranks, so the sums fit in 48 KiB of shared memory.
    const auto shared_bytes = [&](unsigned n) {
      return (2 * static_cast<size_t>(shape_.rank + 1) * n + static_cast<size_t>(shape_.rank + 1) * (n / width_)) * sizeof(double);
    };
    unsigned threads = kThreads - kThreads % width_;
    while (threads > width_ && shared_bytes(threads) > 48 * 1024) threads = std::max(width_, (threads / 2) - (threads / 2) % width_);
    if (shared_bytes(threads) > 48 * 1024) {
      throw NativeError(error_code::kCuda, "rank " + std::to_string(shape_.rank) + " is too large for the CUDA row kernel");
    }
    const size_t rows_per_block = threads / width_;
    const unsigned blocks = static_cast<unsigned>((rows + rows_per_block - 1) / rows_per_block);
    project_rows_kernel<<<blocks, threads, shared_bytes(threads)>>>(shape_, width_, device_in, device_out_.get(), rows,
                                                                    basis_.get());
    check(cudaGetLastError(), "project_rows_kernel");
    download(out, elements);
  }

 private:
  const uint8_t* upload(const uint8_t* host, size_t elements) {
    const size_t bytes = elements * dtype_size(shape_.dtype);
    device_in_.reserve(bytes);
    check(cudaMemcpy(device_in_.get(), host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
    return device_in_.get();
  }

  void download(uint8_t* host, size_t elements) {
    check(cudaMemcpy(host, device_out_.get(), elements * dtype_size(shape_.dtype), cudaMemcpyDeviceToHost),
          "cudaMemcpy to host");
  }

  unsigned width_;
  const TensorJob* tensor_ = nullptr;
  TensorShape shape_{};
  DeviceArray<double> basis_, projection_sum_, projection_comp_, projection_, norm_sum_, norm_comp_, scale_;
  DeviceArray<uint8_t> device_in_, device_out_;
};

int cuda_devices(std::string* reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    if (reason) *reason = cudaGetErrorString(status);
    return 0;
  }
  if (count == 0 && reason) *reason = "no CUDA device";
  return count;
}

std::unique_ptr<ProjectionBackend> create_cuda_backend(unsigned) {
  return std::make_unique<CudaBackend>(best_kernels().width);
}

}  // namespace

const ProjectionBackendPlugin& cuda_projection_plugin() {
  static const ProjectionBackendPlugin plugin{"cuda", cuda_devices, create_cuda_backend};
  return plugin;
}

}  // namespace abl
