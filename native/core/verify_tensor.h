// The independent reference behind verify_shard: v = Bᵀw from exact products summed as a double-double,
// an fp64 screen with a rigorous error bound that settles almost every element, and a long double judge
// for the rest (docs/precision.md). It shares nothing with the apply kernels but the dtypes' layout.
#pragma once

#include <functional>

#include "file_io.h"
#include "shard_job.h"
#include "thread_pool.h"

namespace abl {

/** Two chunks of a tensor, the original (and the modified) side by side: the double buffer of ChunkStream. */
struct ChunkSlot {
  int64_t chunk = -1;  // the chunk views[0] (and, with_modified, views[1]) hold
  bool with_modified = false;
  FileView views[2];  // original, modified
};

struct VerifyContext {
  const File& original;
  const File& modified;
  uint64_t chunk_bytes;
  ThreadPool& pool;
  /** Kept for the whole shard, so every tensor's chunks land in the same buffers. */
  ChunkSlot (&slots)[2];
};

/**
 * Recomputes every element of `tensor` from the original and compares it with the modified file
 * (verify_tolerance.h). The tensor must lie inside both files. `on_bytes(n)` reports n more tensor
 * bytes compared.
 */
VerifiedTensor verify_tensor(const VerifyContext& context, const TensorJob& tensor,
                             const std::function<void(uint64_t)>& on_bytes);

}  // namespace abl
