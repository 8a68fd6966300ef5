// The prompt pass with a shared token prefix computed once: every prompt of a job that starts with the same
// `shared_prefix` tokens (a chat template's system turn and role header, say) gets that prefix's keys and values
// from one run of it, and only its own remaining tokens go through the stack. Each row's arithmetic is the one of
// the whole-batch pass (the GEMMs compute every row alike whatever the batch, attention reads the same keys), so
// the residual stream, logits and generated tokens are those of the plain pass up to fp32 reassociation where a
// batch has too few rows for the blocked GEMM (test/unit/perf-shared-prefix.test.ts).
#pragma once

#include <cstddef>
#include <vector>

#include "forward_job.h"
#include "transformer_engine.h"

namespace abl {
namespace fwd {

class SharedPrefixPass {
 public:
  /** Throws E_INVALID_JOB unless every prompt starts with the same job.shared_prefix tokens and has one more. */
  SharedPrefixPass(const ForwardJob& job, size_t hidden_size);

  const Batch& prefix() const { return prefix_; }
  const Batch& suffix() const { return suffix_; }
  float* prefix_rows() { return x_prefix_.data(); }
  float* suffix_rows() { return x_suffix_.data(); }
  /** Writes the prefix rows (into every prompt) and the suffix rows into x, the stream of the concatenated prompts. */
  void scatter(float* x) const;
  /** The inverse of scatter: the prefix rows from prompt 0's, the suffix rows from every prompt's own (a resumed pass). */
  void gather(const float* x);

 private:
  size_t d_;
  std::vector<uint32_t> lengths_;
  size_t shared_;
  Batch prefix_, suffix_;
  std::vector<float> x_prefix_, x_suffix_;
};

}  // namespace fwd
}  // namespace abl
