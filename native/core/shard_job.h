// Plain C++ descriptions of the work the addon hands to the core, already converted from JavaScript
// (native/addon.cpp). Field meanings follow lib/native/addon.ts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dtype.h"

namespace abl {

struct TensorJob {
  std::string name;
  uint64_t offset = 0;  // absolute byte offset of element 0 in the shard file
  uint64_t rows = 0;
  uint64_t cols = 0;
  Dtype dtype = Dtype::F32;
  int d_model_axis = 0;       // 0: [d_model, cols], columns are projected; 1: [rows, d_model], rows are
  std::vector<double> basis;  // rank × d_model, orthonormal rows
  unsigned rank = 0;
  double alpha = 1.0;
  bool norm_preserving = false;

  uint64_t d_model() const { return d_model_axis == 0 ? rows : cols; }
  uint64_t bytes() const { return rows * cols * dtype_size(dtype); }
  uint64_t end() const { return offset + bytes(); }
};

struct ExecutionOptions {
  uint64_t chunk_bytes = 8ull << 20;
  unsigned threads = 0;  // 0: hardware concurrency
  std::string backend;  // apply only: the projection backend asked for, empty for the default (projection_backend.h)
};

struct ApplyJob {
  std::string input_path;
  std::string output_path;
  std::vector<TensorJob> tensors;
  ExecutionOptions options;
  // fsync the output before returning (the default). Off when the caller makes the output durable itself: apply
  // fsyncs the whole output folder while it verifies, before the rename. (Starting writeback per shard with
  // sync_file_range was measured: it slowed the writes of the next shard more than it saved at the end.)
  bool sync = true;
};

struct ApplyResult {
  uint64_t bytes_copied = 0;
  uint64_t bytes_rewritten = 0;
  double seconds = 0;
  std::string backend = "cpu";
  std::string backend_fallback;  // why `backend` is not the one asked for; empty when it is
};

struct VerifyJob {
  std::string original_path;
  std::string modified_path;
  std::vector<TensorJob> tensors;
  ExecutionOptions options;
};

struct VerifiedTensor {
  std::string name;
  uint64_t elements = 0;
  uint64_t mismatches = 0;
  double max_ulp_error = 0;
  int64_t first_mismatch_index = -1;
  double first_mismatch_expected = 0;
  double first_mismatch_actual = 0;
  double projection_before = 0;
  double projection_after = 0;
  // The non-finite rule (docs/reliability.md): an edited tensor must hold only finite values, before and after.
  // Elements whose original or modified value is NaN/Inf (each also counted in `mismatches`), and those of them
  // whose original is; the first row-major index of each, or -1.
  uint64_t non_finite = 0;
  int64_t first_non_finite = -1;
  uint64_t non_finite_original = 0;
  int64_t first_non_finite_original = -1;
};

struct VerifyResult {
  std::vector<VerifiedTensor> tensors;  // in the job's order
  bool untouched_identical = true;
  int64_t first_untouched_difference = -1;
  double seconds = 0;
};

/** Called with (bytes of the whole file done, file size); the core calls it at most ~20 times a second. */
using ProgressCallback = std::function<void(uint64_t done, uint64_t total)>;

ApplyResult apply_shard(const ApplyJob& job, const ProgressCallback& progress);
VerifyResult verify_shard(const VerifyJob& job, const ProgressCallback& progress);

/**
 * Checks a job list against a file of `file_size` bytes and returns the indices in offset order.
 * E_INVALID_JOB for: a tensor outside the file, overlapping tensors, a basis whose length is not
 * rank × d_model, rank 0, a non-finite alpha or basis entry, sizes that overflow.
 */
std::vector<size_t> validate_tensor_jobs(const std::vector<TensorJob>& tensors, uint64_t file_size,
                                         const std::string& path);

}  // namespace abl
