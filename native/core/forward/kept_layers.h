// Layers' staged weights (staged_weights.h) kept between the jobs of a process, for jobs that ask (ForwardJob::
// keep_layers): the pipeline's scoring runs one resident job per candidate, per search trial and per row set, on the
// same model in the same arithmetic, and each read and packed every layer again: on the bench model (0.43B, bf16)
// about 85 ms of a 100 ms one-row pass, 5 s of the one command's 39 s selection. A kept layer serves the next job
// as it is: its panels are those the job would pack, so the numbers are the same bit for bit. A generation job's
// decode steps run on them too, instead of packing every weight again for the job (the head alone is packed).
//
// Memory stays inside the budget: the job says how many bytes the kept layers may take (lib/engine/memory-budget.ts
// keptLayersBudget: for a resident run about every layer's stored bytes, which its estimate holds; for a streamed
// one part of what the budget leaves beside its one layer and activations, so a model larger than its budget reads
// only the layers past that again each pass and each new token). Panels pad rows to the recipe's panel width and
// depth to its depth block (gemm.h), so they can take more than the stored bytes (a hidden size of 896 against a
// 256-deep block: an eighth more). A layer past the limit runs from a buffer of its own that is not kept (resident)
// or from the job's one staging buffer (streamed); a job that allows less than is kept frees the last layers until
// the rest fit. The process holds one model's layers in one arithmetic at
// most: a job that does not keep, or keeps for other files or another kernel table, frees them before it allocates
// anything, and release_kept_layers() frees them on request (the pipeline, before surgery).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../thread_pool.h"
#include "forward_job.h"
#include "forward_kernels.h"
#include "mapped_files.h"
#include "staged_weights.h"

namespace abl {
namespace fwd {

/** One job's use of the process's kept layers. */
class KeptLayers {
 public:
  /**
   * With `keep_bytes` 0, frees every kept layer. Else frees them unless they were kept for these files (the same
   * mappings: a file replaced or rewritten since is mapped anew, mapped_files.h) and this kernel table, frees the
   * last ones until all take at most `keep_bytes`, and keeps the layers it stages while all kept ones fit that.
   */
  KeptLayers(const MappedFiles& files, const ForwardKernels* pack, uint64_t keep_bytes);
  KeptLayers(const KeptLayers&) = delete;
  KeptLayers& operator=(const KeptLayers&) = delete;

  /**
   * Layer `layer`'s weights staged from `groups`: the kept ones where an earlier job staged exactly these groups,
   * else read now (all pool threads) and kept for the jobs after this one if they fit. A resident job's way: it
   * holds every layer, kept or not.
   */
  std::shared_ptr<const StagedWeights> layer(uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups,
                                             const MappedFiles& files, ThreadPool& pool);
  /**
   * The kept layer, as layer() finds or keeps it, its first `packed_groups` groups packed (StagedWeights::stage);
   * nullptr where it is not kept and would not fit, read nothing (a streamed job then stages it in its one buffer).
   */
  std::shared_ptr<const StagedWeights> kept(uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups,
                                            const MappedFiles& files, ThreadPool& pool, size_t packed_groups = SIZE_MAX);
  /** Whether an earlier job kept layer `layer` as kept() stages it (a streamed job then reads none of it ahead). */
  bool is_kept(uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups, size_t packed_groups = SIZE_MAX) const;
  /** Bytes of layers this job found kept (none of them read), and bytes it read into new kept layers. */
  uint64_t found_bytes() const { return found_bytes_; }
  uint64_t read_bytes() const { return read_bytes_; }

 private:
  /** Stages the groups into a layer of its own (it is never staged again) and counts the bytes read. */
  void read_into(StagedWeights& staged, const std::vector<std::vector<const TensorRef*>>& groups, const MappedFiles& files,
                 ThreadPool& pool, size_t packed_groups);

  std::vector<std::shared_ptr<const FileMapping>> mappings_;
  const ForwardKernels* pack_;
  uint64_t keep_bytes_;
  uint64_t found_bytes_ = 0;
  uint64_t read_bytes_ = 0;
};

/**
 * Frees every kept layer, and unmaps the huge-page mappings given back so far (large_mappings.h), theirs among
 * them: a process leaving its forward passes gets the memory back at once, not when a next job ends.
 */
void release_kept_layers();
/** Bytes the kept layers take now. */
uint64_t kept_layer_bytes();

}  // namespace fwd
}  // namespace abl
