// apply_shard: the output gets the input's bytes with every target tensor projected. Bytes between
// targets are copied by the kernel (copy_file_range); target ranges are read chunk by chunk, projected
// and written at the same offsets, so memory stays O(chunk + rank × cols) whatever the shard size.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <future>
#include <vector>

#include "file_io.h"
#include "large_mappings.h"
#include "native_error.h"
#include "progress_throttle.h"
#include "projection_backend.h"
#include "shard_job.h"

namespace abl {

namespace {

void refuse_same_file(const File& input, const std::string& output_path) {
  struct stat in_info, out_info;
  if (::fstat(input.descriptor(), &in_info) != 0) throw_system_error("fstat", input.path(), errno);
  if (::stat(output_path.c_str(), &out_info) != 0) return;  // not there yet: nothing to clobber
  if (in_info.st_dev == out_info.st_dev && in_info.st_ino == out_info.st_ino) {
    throw_invalid_job("output is the input file itself; it would be truncated before being read", output_path);
  }
}

uint64_t rows_per_chunk(const TensorJob& tensor, uint64_t chunk_bytes) {
  const uint64_t row_bytes = tensor.cols * dtype_size(tensor.dtype);
  return std::max<uint64_t>(1, chunk_bytes / std::max<uint64_t>(1, row_bytes));
}

/**
 * Projects one tensor chunk by chunk. Reading the next chunk and writing the previous one overlap with the
 * projection of the current one, two buffers each way.
 */
class TensorRewriter {
 public:
  TensorRewriter(const File& input, const File& output, ProjectionBackend& backend, uint64_t chunk_bytes,
                 ProgressThrottle& progress)
      : input_(input), output_(output), backend_(backend), chunk_bytes_(chunk_bytes), progress_(progress) {}

  void rewrite(const TensorJob& tensor) {
    if (tensor.bytes() == 0) return;
    const uint64_t row_bytes = tensor.cols * dtype_size(tensor.dtype);
    const uint64_t chunk_rows = rows_per_chunk(tensor, chunk_bytes_);
    const uint64_t chunks = (tensor.rows + chunk_rows - 1) / chunk_rows;
    const size_t buffer_bytes = static_cast<size_t>(std::min(tensor.rows, chunk_rows) * row_bytes);
    for (ChunkBuffer& buffer : out_) buffer.reserve(buffer_bytes);
    // Threads for I/O only pay off for chunks of some size; small ones run in order on this thread.
    const std::launch policy =
        chunks > 1 && buffer_bytes >= kOverlapMinimum ? std::launch::async : std::launch::deferred;
    struct Span {
      uint64_t row, rows, offset;
      size_t bytes;
    };
    auto span = [&](uint64_t chunk) {
      const uint64_t row = chunk * chunk_rows;
      const uint64_t rows = std::min(chunk_rows, tensor.rows - row);
      return Span{row, rows, tensor.offset + row * row_bytes, static_cast<size_t>(rows * row_bytes)};
    };
    auto read = [&](uint64_t chunk) {
      return std::async(policy, [this, chunk, &span] {
        const Span s = span(chunk);
        in_[chunk % 2].load(input_, s.offset, s.bytes);
      });
    };

    backend_.begin_tensor(tensor);
    if (tensor.d_model_axis == 0) {
      std::future<void> reading = read(0);
      for (uint64_t chunk = 0; chunk < chunks; ++chunk) {
        reading.get();
        if (chunk + 1 < chunks) reading = read(chunk + 1);
        const Span s = span(chunk);
        backend_.accumulate_columns(in_[chunk % 2].data(), static_cast<size_t>(s.rows), static_cast<size_t>(s.row));
      }
      backend_.finish_accumulation();
    }

    std::future<void> reading = read(0);
    std::future<void> writing;
    size_t written_bytes = 0;
    for (uint64_t chunk = 0; chunk < chunks; ++chunk) {
      reading.get();
      if (chunk + 1 < chunks) reading = read(chunk + 1);
      const Span s = span(chunk);
      const uint8_t* in = in_[chunk % 2].data();
      uint8_t* out = out_[chunk % 2].data();
      if (tensor.d_model_axis == 0) {
        backend_.rewrite_rows(in, out, static_cast<size_t>(s.rows), static_cast<size_t>(s.row));
      } else {
        backend_.project_rows(in, out, static_cast<size_t>(s.rows));
      }
      if (writing.valid()) {
        writing.get();
        progress_.advance(written_bytes);
      }
      writing = std::async(policy, [this, out, s] { output_.write_at(out, s.bytes, s.offset); });
      written_bytes = s.bytes;
    }
    writing.get();
    progress_.advance(written_bytes);
  }

 private:
  static constexpr size_t kOverlapMinimum = 1u << 20;

  const File& input_;
  const File& output_;
  ProjectionBackend& backend_;
  uint64_t chunk_bytes_;
  ProgressThrottle& progress_;
  FileView in_[2];
  ChunkBuffer out_[2];
};

}  // namespace

ApplyResult apply_shard(const ApplyJob& job, const ProgressCallback& progress_callback) {
  const KeepThisJobsMappings keep_chunk_buffers_for_the_next_shard;
  const auto started = std::chrono::steady_clock::now();
  File input = File::open_read(job.input_path);
  const uint64_t size = input.size();
  const std::vector<size_t> order = validate_tensor_jobs(job.tensors, size, job.input_path);
  refuse_same_file(input, job.output_path);

  std::unique_ptr<ProjectionBackend> backend = make_projection_backend(job.options);

  File output = File::open_write(job.output_path);
  // The whole shard's blocks in one call, before the writes. Without it ext4 (delayed allocation) reserves space,
  // records a delayed extent and takes the inode lock per page written, on the two threads that write this file at
  // once (the kernel copy of the gaps and the projected chunks); with it the writes land inside the file's size, in
  // extents that exist. Measured by `npm run bench` on the 2.2 GB checkpoint: system time 1.7 → 1.3 s per apply.
  output.preallocate(size);
  ProgressThrottle progress(progress_callback, size);
  TensorRewriter rewriter(input, output, *backend, std::max<uint64_t>(1, job.options.chunk_bytes), progress);
  ApplyResult result;
  result.backend = backend->name();
  result.backend_fallback = backend->fallback_reason;

  // The byte ranges between targets, copied by the kernel on a thread of their own while the targets
  // are projected: the two touch disjoint ranges of the output.
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t position = 0;
  for (size_t index : order) {
    const TensorJob& tensor = job.tensors[index];
    if (tensor.offset > position) gaps.emplace_back(position, tensor.offset);
    position = std::max(position, tensor.end());
    result.bytes_rewritten += tensor.bytes();
  }
  if (size > position) gaps.emplace_back(position, size);
  for (const auto& gap : gaps) result.bytes_copied += gap.second - gap.first;
  std::future<void> copying = std::async(gaps.empty() ? std::launch::deferred : std::launch::async, [&] {
    for (const auto& gap : gaps) {
      copy_range(input, output, gap.first, gap.second - gap.first, [&](uint64_t bytes) { progress.advance(bytes); });
    }
  });
  for (size_t index : order) rewriter.rewrite(job.tensors[index]);
  copying.get();
  if (job.sync) output.sync();
  output.close();
  progress.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace abl
