// One layer's weights read out of the checkpoint into a buffer on huge pages, for the prompt pass.
//
// Reading a mapped checkpoint faults its 4 KB page-cache pages into the process one fault-around block at a time,
// and on the project's VMs that costs more than copying the bytes: touching the bench model's 860 MB through a
// fresh mapping took 0.30–0.38 s on one thread, reading them with pread into a reused buffer 0.09–0.10 s. A buffer
// on 2 MB pages also takes a handful of TLB entries where the mapping takes one per 4 KB. So before the prompt pass
// of layer l, the layer's tensors (routed experts aside: a batch touches only the experts its tokens choose) are
// read into one buffer by every pool thread, and the buffer is reused for the next layer, so memory holds one
// layer, as a streamed run's mapping did. Generation's decode steps read packed panels or the mapping, not this.
//
// Matrices are read a few panels' rows at a time into a small buffer that stays in L2 and packed from there into
// the recipe's weight panels (gemm.h PackedWeight), once per layer; the GEMMs then read the panels. Packing on the
// fly instead packs every panel again for each tile of rows (three times per capture of the bench model), from
// memory. q, k and v (and gate and up) are packed as one stacked matrix, so one GEMM computes them all: X is packed
// once and the tiles of all parts share one loop. Each output element's sums are the same as with one GEMM per
// part, since they do not depend on the columns beside it. Vectors (norms, biases), matrices the recipe cannot
// pack in their own size (fp32 arithmetic on bf16 weights: fp32 panels, twice the layer, captured the bench model
// no faster, 4.64–4.96 s against 4.63–4.85 s), transposed ones, and every tensor of a run that packs its weights
// for the whole job (generation) are copied as they are stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../thread_pool.h"
#include "forward_job.h"
#include "forward_kernels.h"
#include "gemm.h"
#include "../large_mappings.h"
#include "mapped_files.h"

namespace abl {
namespace fwd {

/** Row-major matrices of one depth as one [Σ rows, cols] matrix: dtype and shape, no data. */
WeightMatrix stacked_shape(const std::vector<const TensorRef*>& group);

/** Whether two refs name the same bytes read the same way (file, offset, dtype, shape, orientation). */
bool same_tensor(const TensorRef& a, const TensorRef& b);

class StagedWeights {
 public:
  /**
   * Reads the groups' tensors into the buffer (replacing what it held), all pool threads together. A group of
   * matrices of one depth and dtype becomes one stacked matrix; with `pack` (the run's kernels) matrices are stored
   * as its weight panels, without it as stored in the file (members of a group back to back). Only the first
   * `packed_groups` groups are packed; the rest are copied as stored whatever `pack` says (a kept layer's routed
   * experts: their few-row GEMMs read the mapping's bytes in every other run, and panels would sum them in another
   * order).
   */
  void stage(const MappedFiles& files, const std::vector<std::vector<const TensorRef*>>& groups, const ForwardKernels* pack,
             ThreadPool& pool, size_t packed_groups = SIZE_MAX);
  /**
   * Lays the groups out as stage() would, reading nothing: held_bytes() then says what staging them takes (a layer
   * is kept only where it fits, kept_layers.h). stage() or clear() must follow before the layer is used.
   */
  uint64_t plan(const std::vector<std::vector<const TensorRef*>>& groups, const ForwardKernels* pack, size_t packed_groups = SIZE_MAX);
  /** Forgets the staged tensors (the buffer stays for the next stage()). */
  void clear();
  /** The bytes of exactly the tensor at [offset, offset + bytes) of `file` as stored, if staged so, or nullptr. */
  const uint8_t* find(uint32_t file, uint64_t offset, uint64_t bytes) const;
  /**
   * The staged tensors as one [Σ rows, cols] matrix: their panels (`packed` set, `data` the first tensor's mapped
   * bytes, which the GEMM does not read), or their stored bytes back to back; null `data` where they were not staged
   * as one group.
   */
  WeightMatrix stacked(const MappedFiles& files, const std::vector<const TensorRef*>& tensors) const;
  /** Bytes read by stage() so far. */
  uint64_t staged_bytes() const { return staged_bytes_; }
  /**
   * Whether the last stage() read exactly these groups (compared by value, so a later job's refs to the same bytes
   * match) for this kernel table: what a layer kept between jobs must show before it serves one (kept_layers.h).
   */
  bool staged_from(const std::vector<std::vector<const TensorRef*>>& groups, const ForwardKernels* pack, size_t packed_groups = SIZE_MAX) const;
  /** Frees the per-thread read buffers: a layer kept between jobs is never staged again. */
  void drop_read_buffers() { row_buffers_ = {}; }
  /** Bytes the staged tensors take in the buffer. */
  uint64_t held_bytes() const { return held_bytes_; }

 private:
  struct Range {
    uint32_t file;
    uint64_t offset, bytes;
    size_t at;  // in buffer_
  };
  struct Panels {
    std::vector<TensorRef> members;  // copies: a kept layer outlives the job whose refs it was staged from
    std::unique_ptr<PackedWeight> layout;  // borrows buffer_ at `at`
    size_t at;
  };
  void read_packed(const MappedFiles& files, const Panels& panels, size_t first, size_t count, std::vector<uint8_t>& rows);

  /** buffer_'s first 64-byte aligned byte (a small buffer comes from the heap, which aligns to 16). */
  uint8_t* base() { return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buffer_.data()) + 63) & ~uintptr_t(63)); }
  const uint8_t* base() const { return const_cast<StagedWeights*>(this)->base(); }
  LargeVector<uint8_t> buffer_;
  std::vector<Range> ranges_;
  std::vector<Panels> panels_;
  std::vector<std::vector<uint8_t>> row_buffers_;  // one per pool thread
  std::vector<std::vector<TensorRef>> groups_;  // what the last stage() read
  const ForwardKernels* pack_ = nullptr;
  size_t packed_groups_ = SIZE_MAX;
  uint64_t staged_bytes_ = 0;
  uint64_t held_bytes_ = 0;
};

}  // namespace fwd
}  // namespace abl
