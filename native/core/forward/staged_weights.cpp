#include "staged_weights.h"

#include <algorithm>

#include "dynamic_for.h"

namespace abl {
namespace fwd {
namespace {

/** Bytes per read: large enough that the syscall is noise, small enough to share a layer between the threads. */
constexpr uint64_t kSliceBytes = uint64_t(2) << 20;

}  // namespace

void StagedWeights::stage(const MappedFiles& files, const std::vector<const TensorRef*>& tensors, ThreadPool& pool) {
  ranges_.clear();
  size_t end = 0;
  for (const TensorRef* ref : tensors) {
    // Each copy keeps its offset's place within a cache line, so every kernel sees the alignment the mapping gave.
    const size_t at = (end + 63) / 64 * 64 + ref->offset % 64;
    ranges_.push_back(Range{ref->file, ref->offset, ref->bytes(), at});
    end = at + ref->bytes();
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

}  // namespace fwd
}  // namespace abl
