// Causal multi-head attention with grouped KV heads, an optional sliding window or chunk and soft-capping, over keys and
// values held row by row (the current batch's projections, or a KV cache). Each prompt sees only its own keys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../thread_pool.h"
#include "forward_kernels.h"

namespace abl {
namespace fwd {

/** Rows of one prompt: [row_begin, row_end) of the batch. */
struct RowRange {
  uint32_t row_begin;
  uint32_t row_end;
  uint32_t prompt;
};

struct KvView {
  const float* k = nullptr;
  const float* v = nullptr;
  /** Floats between consecutive rows of k (and of v). */
  size_t stride = 0;
  /** Per prompt: the row holding its position 0. */
  const size_t* base = nullptr;
};

struct AttentionShape {
  unsigned heads = 0;
  unsigned kv_heads = 0;
  unsigned head_dim = 0;
  float scale = 1.0f;
  float softcap = 0.0f;
  /** 0: full causal attention; w: a query at position i sees keys i - w + 1 .. i. */
  unsigned window = 0;
  /** 0: no chunks; c: a query at position i sees only keys of its chunk, c · ⌊i / c⌋ .. i (Llama 4). */
  unsigned chunk = 0;
};

/**
 * out[row][h * head_dim ...] = Σ_j softmax_j(scale · q·k_j) v_j over the keys of the row's prompt at positions
 * max(0, pos - window + 1, chunk start) .. pos, for every row in `ranges` and every head.
 */
void attend(const ForwardKernels& kernels, ThreadPool& pool, const AttentionShape& shape, const float* q, size_t ldq,
            const KvView& kv, const std::vector<RowRange>& ranges, const uint32_t* positions, float* out, size_t ldo,
            size_t max_context);

}  // namespace fwd
}  // namespace abl
