#include <algorithm>
#include <cmath>
#include <numeric>

#include "native_error.h"
#include "shard_job.h"

namespace abl {

namespace {
constexpr uint64_t kMaxSafeInteger = (1ull << 53) - 1;
}

std::vector<size_t> validate_tensor_jobs(const std::vector<TensorJob>& tensors, uint64_t file_size,
                                         const std::string& path) {
  for (const TensorJob& tensor : tensors) {
    const std::string who = "tensor '" + tensor.name + "'";
    if (tensor.rows > kMaxSafeInteger || tensor.cols > kMaxSafeInteger || tensor.offset > kMaxSafeInteger ||
        (tensor.cols != 0 && tensor.rows > kMaxSafeInteger / tensor.cols / dtype_size(tensor.dtype))) {
      throw_invalid_job(who + ": size overflows", path);
    }
    if (tensor.d_model_axis != 0 && tensor.d_model_axis != 1) throw_invalid_job(who + ": dModelAxis must be 0 or 1", path);
    if (tensor.rank == 0) throw_invalid_job(who + ": rank must be at least 1", path);
    // More orthonormal directions than dimensions cannot exist; refusing them also keeps scratch memory
    // (rank × cols accumulators) bounded by the tensor's own size rather than by a claimed rank.
    if (tensor.rank > tensor.d_model()) {
      throw_invalid_job(who + ": rank " + std::to_string(tensor.rank) + " exceeds d_model " + std::to_string(tensor.d_model()), path);
    }
    // Division, not multiplication: rank × d_model must not be checked modulo 2^64.
    if (tensor.basis.size() % tensor.rank != 0 || tensor.basis.size() / tensor.rank != tensor.d_model()) {
      throw_invalid_job(who + ": basis has " + std::to_string(tensor.basis.size()) + " values, expected rank " +
                            std::to_string(tensor.rank) + " × d_model " + std::to_string(tensor.d_model()),
                        path);
    }
    if (!std::isfinite(tensor.alpha)) throw_invalid_job(who + ": alpha is not finite", path);
    for (double value : tensor.basis) {
      if (!std::isfinite(value)) throw_invalid_job(who + ": basis holds NaN or Inf", path);
    }
    if (tensor.end() > file_size) {
      throw_invalid_job(who + " ends at byte " + std::to_string(tensor.end()) + ", past the end of the file (" +
                            std::to_string(file_size) + " bytes)",
                        path);
    }
  }
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorJob& before = tensors[order[i - 1]];
    const TensorJob& after = tensors[order[i]];
    if (after.offset < before.end() && after.bytes() > 0 && before.bytes() > 0) {
      throw_invalid_job("tensors '" + before.name + "' and '" + after.name + "' overlap (bytes " +
                            std::to_string(after.offset) + " to " + std::to_string(std::min(before.end(), after.end())) +
                            ")",
                        path);
    }
  }
  return order;
}

}  // namespace abl
