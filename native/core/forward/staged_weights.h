// One layer's weights read out of the checkpoint into a buffer on huge pages, for the prompt pass.
//
// Reading a mapped checkpoint faults its 4 KB page-cache pages into the process one fault-around block at a time,
// and on the project's VMs that costs more than copying the bytes: touching the bench model's 860 MB through a
// fresh mapping took 0.30–0.38 s on one thread, reading them with pread into a reused buffer 0.09–0.10 s. A buffer
// on 2 MB pages also takes a handful of TLB entries where the mapping takes one per 4 KB, which pack_b's strided
// walk down a weight panel needs. So before the prompt pass of layer l, the layer's dense tensors are read into
// one buffer (by every pool thread, in slices) and the GEMMs read them there; the buffer is reused for the next
// layer, so memory holds one layer, as a streamed run's mapping did. Routed experts stay mapped: a batch touches
// only the experts its tokens choose. Generation's decode steps read packed panels or the mapping, not this.
#pragma once

#include <cstdint>
#include <vector>

#include "../thread_pool.h"
#include "forward_job.h"
#include "gemm.h"
#include "large_mappings.h"
#include "mapped_files.h"

namespace abl {
namespace fwd {

class StagedWeights {
 public:
  /**
   * Reads the tensors' bytes into the buffer (replacing what it held), all pool threads together. The members of a
   * group lie back to back, so matrices of one depth (q, k and v; gate and up) form one stacked matrix (stacked()).
   */
  void stage(const MappedFiles& files, const std::vector<std::vector<const TensorRef*>>& groups, ThreadPool& pool);
  /** Forgets the staged tensors (the buffer stays for the next stage()). */
  void clear() { ranges_.clear(); }
  /** The staged copy of exactly the tensor at [offset, offset + bytes) of `file`, or nullptr. */
  const uint8_t* find(uint32_t file, uint64_t offset, uint64_t bytes) const;
  /**
   * The staged tensors as one [Σ rows, cols] matrix, or a matrix with null data where they are not staged back to
   * back or differ in dtype, depth or layout.
   */
  WeightMatrix stacked(const std::vector<const TensorRef*>& tensors) const;
  /** Bytes read by stage() so far. */
  uint64_t staged_bytes() const { return staged_bytes_; }

 private:
  struct Range {
    uint32_t file;
    uint64_t offset, bytes;
    size_t at;  // in buffer_
  };
  LargeVector<uint8_t> buffer_;
  std::vector<Range> ranges_;
  uint64_t staged_bytes_ = 0;
};

}  // namespace fwd
}  // namespace abl
