// The projection on a CUDA device. The executor (native/core/shard_apply.cpp) still does all file I/O;
// each chunk of raw tensor bytes is copied to the device, projected there with the same per-element
// maths as the CPU kernels (native/core/projection_math.h, native/core/dtype.h), and copied back.
//
// Determinism: pass 1 gives each column to one thread that adds the chunk's rows in order, exactly as
// the CPU kernels do, so dModelAxis 0 results match the CPU bit for bit (the build passes --fmad=false).
// Row dot products (dModelAxis 1) are reduced over a block in a fixed tree order.
#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "core/native_error.h"
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
 * One block per row. Shared memory: (rank + 1) compensated sums per thread, reduced pairwise in a fixed
 * order, then rank coefficients and the scale.
 */
__global__ void project_rows_kernel(TensorShape shape, const uint8_t* in, uint8_t* out, const double* basis) {
  extern __shared__ double shared[];
  const unsigned threads = blockDim.x;
  const unsigned t = threadIdx.x;
  const unsigned sums = shape.rank + 1;  // the last one is ‖w‖²
  double* sum = shared;
  double* comp = shared + sums * threads;
  double* coefficients = shared + 2 * sums * threads;
  const size_t d = shape.d_model;
  const uint8_t* row_in = in + blockIdx.x * d * dtype_size(shape.dtype);
  uint8_t* row_out = out + blockIdx.x * d * dtype_size(shape.dtype);

  for (unsigned k = 0; k < sums; ++k) sum[k * threads + t] = comp[k * threads + t] = 0.0;
  for (size_t i = t; i < d; i += threads) {
    const double w = load_element(row_in, i, shape.dtype);
    for (unsigned k = 0; k < shape.rank; ++k) {
      accumulate_product<ScalarLane>(sum[k * threads + t], comp[k * threads + t], basis[k * d + i], w);
    }
    if (shape.norm_preserving) accumulate_product<ScalarLane>(sum[shape.rank * threads + t], comp[shape.rank * threads + t], w, w);
  }
  __syncthreads();
  for (unsigned stride = threads / 2; stride > 0; stride /= 2) {
    if (t < stride) {
      for (unsigned k = 0; k < sums; ++k) {
        merge_sums<ScalarLane>(sum[k * threads + t], comp[k * threads + t], sum[k * threads + t + stride],
                               comp[k * threads + t + stride]);
      }
    }
    __syncthreads();
  }
  if (t == 0) {
    DoubleDouble projection_sq{0.0, 0.0};
    for (unsigned k = 0; k < shape.rank; ++k) {
      const DoubleDouble v = finish_sum(sum[k * threads], comp[k * threads]);
      coefficients[k] = -(shape.alpha * v.hi);
      projection_sq = dd_add(projection_sq, dd_square(v));
    }
    coefficients[shape.rank] = shape.norm_preserving
                                   ? norm_preserving_scale(finish_sum(sum[shape.rank * threads], comp[shape.rank * threads]),
                                                           projection_sq, shape.alpha)
                                   : 1.0;
  }
  __syncthreads();
  for (size_t i = t; i < d; i += threads) {
    double value = load_element(row_in, i, shape.dtype);
    for (unsigned k = 0; k < shape.rank; ++k) value = ScalarLane::fma(coefficients[k], basis[k * d + i], value);
    if (shape.norm_preserving) value = value * coefficients[shape.rank];
    store_element(row_out, i, shape.dtype, value);
  }
}

constexpr unsigned kThreads = 256;

unsigned blocks_for(size_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

class CudaBackend final : public ProjectionBackend {
 public:
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
    // Fewer threads for large ranks, so the per-thread sums fit in 48 KiB of shared memory.
    unsigned threads = kThreads;
    const auto shared_bytes = [&](unsigned n) { return (2 * (shape_.rank + 1) * n + shape_.rank + 1) * sizeof(double); };
    while (threads > 32 && shared_bytes(threads) > 48 * 1024) threads /= 2;
    if (shared_bytes(threads) > 48 * 1024) {
      throw NativeError(error_code::kCuda, "rank " + std::to_string(shape_.rank) + " is too large for the CUDA row kernel");
    }
    project_rows_kernel<<<static_cast<unsigned>(rows), threads, shared_bytes(threads)>>>(shape_, device_in,
                                                                                          device_out_.get(), basis_.get());
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

  const TensorJob* tensor_ = nullptr;
  TensorShape shape_{};
  DeviceArray<double> basis_, projection_sum_, projection_comp_, projection_, norm_sum_, norm_comp_, scale_;
  DeviceArray<uint8_t> device_in_, device_out_;
};

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

std::unique_ptr<ProjectionBackend> make_cuda_backend_if_available() {
  const char* forced = std::getenv("ABLITERATE_BACKEND");
  if (forced && std::strcmp(forced, "cpu") == 0) return nullptr;
  if (cuda_device_count() <= 0) return nullptr;
  return std::make_unique<CudaBackend>();
}

}  // namespace abl
