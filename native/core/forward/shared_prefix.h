// The prompt pass with shared prefixes: a prompt that starts with tokens an earlier prompt of the job starts with
// too (a chat template's system turn and role header, common to every prompt; one prompt under several
// continuations, as the behaviour scorer's rows are) takes those positions' keys and values from that prompt's,
// through the KV cache, and only its own remaining tokens go through the stack. Each row's arithmetic is the one of
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

class PrefixSharing {
 public:
  /**
   * Throws E_INVALID_JOB unless each prompt p with prefix_length[p] > 0 takes them from an earlier prompt that has
   * as many tokens, the same ones, and keeps at least one token of its own.
   */
  PrefixSharing(const ForwardJob& job, size_t hidden_size);

  /** The rows that run: every prompt's positions from its shared length on; kv_shares copies the rest. */
  const Batch& own() const { return own_; }
  /** The job's own edit's rows that run ([own().rows, d]); each edit of a wave has a buffer of its own this size. */
  float* own_rows() { return x_own_.data(); }
  /**
   * Writes the stream of the concatenated prompts into x: each prompt's own rows (out of `own`, own_rows() or a
   * wave edit's), then its shared rows from its source's rows of x (prompt order, so a source's rows are complete
   * before they are copied).
   */
  void scatter(const float* own, float* x) const;
  void scatter(float* x) const { scatter(x_own_.data(), x); }
  /** The inverse of scatter: every prompt's own rows out of x (a resumed pass). */
  void gather(const float* x);

 private:
  size_t d_;
  const ForwardJob& job_;
  /** Per prompt, the row of x holding its position 0. */
  std::vector<size_t> first_row_;
  Batch own_;
  std::vector<float> x_own_;
};

}  // namespace fwd
}  // namespace abl
