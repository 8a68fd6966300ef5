// The chunk walk of the verifier's passes over one tensor (verify_tensor.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <future>

#include "file_io.h"
#include "shard_job.h"
#include "verify_tensor.h"

namespace abl {

/**
 * The chunks of a tensor, `chunk_bytes` of whole rows at a time, the original (and the modified) side by
 * side. A pass that walks backward starts on the chunk the previous (forward) pass ended with, which is
 * still loaded; the next chunk is read on an I/O thread while the body works on this one, so the copy out
 * of the page cache overlaps the arithmetic.
 */
class ChunkStream {
 public:
  enum class Files { original, both };
  enum class Walk { forward, backward };

  ChunkStream(const VerifyContext& context, const TensorJob& tensor)
      : context_(context), tensor_(tensor), row_bytes_(tensor.cols * dtype_size(tensor.dtype)), slots_(context.slots) {
    for (ChunkSlot& slot : slots_) slot.chunk = -1;  // they hold another tensor's chunks
    chunk_rows_ = std::max<uint64_t>(1, context.chunk_bytes / row_bytes_);
    chunks_ = (tensor.rows + chunk_rows_ - 1) / chunk_rows_;
  }

  /** body(row0, rows, original, modified) for every chunk; `modified` is null unless both files are read. */
  template <class Body>
  void for_each(Files files, Walk walk, const Body& body) {
    const bool with_modified = files == Files::both, forward = walk == Walk::forward;
    auto chunk_at = [&](uint64_t step) { return forward ? step : chunks_ - 1 - step; };
    const std::launch policy = chunks_ > 1 && chunk_rows_ * row_bytes_ >= kOverlapMinimum ? std::launch::async
                                                                                          : std::launch::deferred;
    auto load = [this, with_modified](uint64_t chunk, ChunkSlot* slot) {
      const uint64_t row0 = chunk * chunk_rows_;
      const uint64_t offset = tensor_.offset + row0 * row_bytes_;
      const size_t bytes = static_cast<size_t>(std::min(chunk_rows_, tensor_.rows - row0) * row_bytes_);
      if (slot->chunk != static_cast<int64_t>(chunk)) {
        slot->chunk = -1;
        slot->views[0].load(context_.original, offset, bytes);
        slot->chunk = static_cast<int64_t>(chunk);
        slot->with_modified = false;
      }
      if (with_modified && !slot->with_modified) {
        slot->views[1].load(context_.modified, offset, bytes);
        slot->with_modified = true;
      }
    };
    unsigned current = slots_[1].chunk == static_cast<int64_t>(chunk_at(0)) ? 1 : 0;
    std::future<void> loading = std::async(policy, load, chunk_at(0), &slots_[current]);
    for (uint64_t step = 0; step < chunks_; ++step) {
      loading.get();
      if (step + 1 < chunks_) loading = std::async(policy, load, chunk_at(step + 1), &slots_[1 - current]);
      const uint64_t row0 = chunk_at(step) * chunk_rows_;
      const uint64_t rows = std::min(chunk_rows_, tensor_.rows - row0);
      body(static_cast<size_t>(row0), static_cast<size_t>(rows), slots_[current].views[0].data(),
           with_modified ? slots_[current].views[1].data() : nullptr);
      current = 1 - current;
    }
  }

 private:
  static constexpr uint64_t kOverlapMinimum = 1u << 20;

  const VerifyContext& context_;
  const TensorJob& tensor_;
  uint64_t row_bytes_;
  uint64_t chunk_rows_;
  uint64_t chunks_;
  ChunkSlot (&slots_)[2];
};

}  // namespace abl
