#include "staged_weights.h"

#include <algorithm>

#include "dynamic_for.h"

namespace abl {
namespace fwd {
namespace {

/** Bytes per read: large enough that the syscall is noise, small enough to share a layer between the threads. */
constexpr uint64_t kSliceBytes = uint64_t(2) << 20;

}  // namespace

void StagedWeights::stage(const MappedFiles& files, const std::vector<std::vector<const TensorRef*>>& groups, ThreadPool& pool) {
  ranges_.clear();
  size_t end = 0;
  for (const std::vector<const TensorRef*>& group : groups) {
    if (group.empty()) continue;
    // A group starts on a cache line (the kernels load unaligned, so no result depends on the address).
    end = (end + 63) / 64 * 64;
    for (const TensorRef* ref : group) {
      ranges_.push_back(Range{ref->file, ref->offset, ref->bytes(), end});
      end += ref->bytes();
    }
  }
  if (buffer_.size() < end) {
    buffer_ = LargeVector<uint8_t>();  // the old storage goes first, so the new one may reuse its pages
    buffer_.resize(end);
  }
  struct Slice {
    const Range* range;
    uint64_t begin, bytes;
  };
  std::vector<Slice> slices;
  for (const Range& range : ranges_) {
    for (uint64_t begin = 0; begin < range.bytes; begin += kSliceBytes) {
      slices.push_back(Slice{&range, begin, std::min(kSliceBytes, range.bytes - begin)});
    }
  }
  dynamic_for(pool, slices.size(), [&](unsigned, size_t i) {
    const Slice& slice = slices[i];
    files.read(slice.range->file, slice.range->offset + slice.begin, slice.bytes, buffer_.data() + slice.range->at + slice.begin);
  });
  for (const Range& range : ranges_) staged_bytes_ += range.bytes;
}

const uint8_t* StagedWeights::find(uint32_t file, uint64_t offset, uint64_t bytes) const {
  for (const Range& range : ranges_) {
    if (range.file == file && range.offset == offset && range.bytes == bytes) return buffer_.data() + range.at;
  }
  return nullptr;
}

WeightMatrix StagedWeights::stacked(const std::vector<const TensorRef*>& tensors) const {
  WeightMatrix m;
  const uint8_t* next = nullptr;
  for (const TensorRef* ref : tensors) {
    const uint8_t* data = find(ref->file, ref->offset, ref->bytes());
    const size_t rows = ref->shape.empty() ? 1 : ref->shape[0];
    const size_t cols = rows ? ref->numel() / rows : 0;
    if (!data || ref->transposed || ref->shape.size() != 2 || (next && (data != next || ref->dtype != m.dtype || cols != m.cols))) {
      return WeightMatrix{};
    }
    if (!next) {
      m.data = data;
      m.dtype = ref->dtype;
      m.cols = cols;
    }
    m.rows += rows;
    next = data + ref->bytes();
  }
  return m;
}

}  // namespace fwd
}  // namespace abl
