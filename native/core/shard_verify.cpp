// verify_shard: reads the original and the modified shard side by side. Bytes outside the targets must
// be identical (the first difference is reported); every target element is recomputed independently
// (verify_tensor.cpp) and compared within the tolerance of docs/precision.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "file_io.h"
#include "progress_throttle.h"
#include "shard_job.h"
#include "thread_pool.h"
#include "verify_tensor.h"

namespace abl {

namespace {

constexpr size_t kCompareBuffer = 16u << 20;

/** Offset of the first byte in [from, to) that differs, or -1. Both files must hold the range. */
int64_t first_difference(const File& a, const File& b, uint64_t from, uint64_t to, FileView& left, FileView& right,
                         ProgressThrottle& progress) {
  for (uint64_t offset = from; offset < to;) {
    const size_t step = static_cast<size_t>(std::min<uint64_t>(kCompareBuffer, to - offset));
    left.load(a, offset, step);
    right.load(b, offset, step);
    if (std::memcmp(left.data(), right.data(), step) != 0) {
      size_t index = 0;
      while (left.data()[index] == right.data()[index]) ++index;
      return static_cast<int64_t>(offset + index);
    }
    offset += step;
    progress.advance(step);
  }
  return -1;
}

VerifiedTensor missing_from_modified(const TensorJob& tensor) {
  VerifiedTensor result;
  result.name = tensor.name;
  result.elements = tensor.rows * tensor.cols;
  result.mismatches = result.elements;
  result.max_ulp_error = INFINITY;
  result.first_mismatch_index = result.elements ? 0 : -1;
  result.first_mismatch_expected = NAN;
  result.first_mismatch_actual = NAN;
  result.projection_before = NAN;
  result.projection_after = NAN;
  return result;
}

}  // namespace

VerifyResult verify_shard(const VerifyJob& job, const ProgressCallback& progress_callback) {
  const auto started = std::chrono::steady_clock::now();
  File original = File::open_read(job.original_path);
  File modified = File::open_read(job.modified_path);
  const uint64_t size = original.size();
  const uint64_t modified_size = modified.size();
  const std::vector<size_t> order = validate_tensor_jobs(job.tensors, size, job.original_path);

  VerifyResult result;
  result.tensors.resize(job.tensors.size());
  ProgressThrottle progress(progress_callback, size);
  ThreadPool pool(job.options.threads);
  VerifyContext context{original, modified, std::max<uint64_t>(1, job.options.chunk_bytes), pool};
  FileView left, right;
  const uint64_t common = std::min(size, modified_size);

  auto compare_gap = [&](uint64_t from, uint64_t to) {
    if (result.first_untouched_difference >= 0) {
      progress.advance(to > from ? to - from : 0);
      return;
    }
    const uint64_t end = std::min(to, common);
    if (end > from) result.first_untouched_difference = first_difference(original, modified, from, end, left, right, progress);
    if (result.first_untouched_difference < 0 && to > common && from < to) {
      result.first_untouched_difference = static_cast<int64_t>(std::max(from, common));
    }
  };

  uint64_t position = 0;
  for (size_t index : order) {
    const TensorJob& tensor = job.tensors[index];
    compare_gap(position, tensor.offset);
    if (tensor.end() > modified_size) {
      result.tensors[index] = missing_from_modified(tensor);
      progress.advance(tensor.bytes());
    } else {
      result.tensors[index] = verify_tensor(context, tensor, [&](uint64_t bytes) { progress.advance(bytes); });
    }
    position = std::max(position, tensor.end());
  }
  compare_gap(position, size);
  if (modified_size != size && result.first_untouched_difference < 0) {
    result.first_untouched_difference = static_cast<int64_t>(common);
  }
  result.untouched_identical = result.first_untouched_difference < 0;
  progress.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace abl
