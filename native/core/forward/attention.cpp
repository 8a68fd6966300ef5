#include "attention.h"

#include <algorithm>
#include <cmath>

#include "dynamic_for.h"
#include "forward_math.h"

namespace abl {
namespace fwd {

void attend(const ForwardKernels& kernels, ThreadPool& pool, const AttentionShape& shape, const float* q, size_t ldq,
            const KvView& kv, const std::vector<RowRange>& ranges, const uint32_t* positions, float* out, size_t ldo,
            size_t max_context) {
  const unsigned group = shape.heads / shape.kv_heads;
  const unsigned d = shape.head_dim;
  std::vector<std::vector<float>> scores(pool.size(), std::vector<float>(max_context));
  dynamic_for(pool, ranges.size() * shape.heads, [&](unsigned worker, size_t task) {
    float* weights = scores[worker].data();
    const RowRange& range = ranges[task / shape.heads];
    const unsigned head = static_cast<unsigned>(task % shape.heads);
    const unsigned kv_head = head / group;
    const size_t base = kv.base[range.prompt];
    for (uint32_t row = range.row_begin; row < range.row_end; ++row) {
      const float* query = q + row * ldq + head * d;
      const size_t pos = positions[row];
      size_t first = shape.window && pos + 1 > shape.window ? pos + 1 - shape.window : 0;
      if (shape.chunk) first = std::max(first, pos - pos % shape.chunk);
      const size_t count = pos + 1 - first;
      kernels.dot_rows(query, kv.k + (base + first) * kv.stride + kv_head * d, kv.stride, count, d, weights);
      for (size_t j = 0; j < count; ++j) weights[j] *= shape.scale;
      if (shape.softcap > 0.0f) kernels.soft_cap(weights, count, shape.softcap);
      float max_score = -INFINITY;
      for (size_t j = 0; j < count; ++j) max_score = std::max(max_score, weights[j]);
      const float sum = kernels.exp_shifted(weights, count, max_score);
      for (size_t j = 0; j < count; ++j) weights[j] = weights[j] / sum;
      float* result = out + row * ldo + head * d;
      std::fill(result, result + d, 0.0f);
      kernels.axpy_rows(weights, kv.v + (base + first) * kv.stride + kv_head * d, kv.stride, count, d, result);
    }
  });
}

}  // namespace fwd
}  // namespace abl
