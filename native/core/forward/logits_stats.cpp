#include "logits_stats.h"

#include <cmath>
#include <vector>

#include "dynamic_for.h"
#include "forward_math.h"

namespace abl {
namespace fwd {

void logits_row_stats(const ForwardKernels& kernels, ThreadPool& pool, const float* logits, size_t rows, size_t vocab,
                      uint32_t* argmax, double* logz) {
  if (rows == 0 || vocab == 0) return;
  std::vector<std::vector<float>> scratch(pool.size(), std::vector<float>(vocab));
  dynamic_for(pool, rows, [&](unsigned worker, size_t r) {
    const float* row = logits + r * vocab;
    size_t best = 0;
    for (size_t j = 1; j < vocab; ++j) {
      if (row[j] > row[best]) best = j;
    }
    argmax[r] = static_cast<uint32_t>(best);
    const float max = row[best];
    float* values = scratch[worker].data();
    std::copy(row, row + vocab, values);
    kernels.exp_shifted(values, vocab, max);
    logz[r] = static_cast<double>(max) + std::log(sum_products_f64(values, nullptr, vocab));
  });
}

}  // namespace fwd
}  // namespace abl
