// Y = X · Wᵀ with the weight read straight from the checkpoint bytes (F32/F16/BF16), maths in fp32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../dtype.h"
#include "../thread_pool.h"
#include "forward_kernels.h"

namespace abl {
namespace fwd {

/**
 * A weight matrix in a checkpoint, seen as [rows = out, cols = in] (nn.Linear's layout). With `transposed` it is
 * stored [in, out] (GPT-2's Conv1D): element (n, k) sits at k * rows + n.
 */
struct WeightMatrix {
  const uint8_t* data = nullptr;
  Dtype dtype = Dtype::F32;
  size_t rows = 0;
  size_t cols = 0;
  bool transposed = false;
};

/**
 * Y[m][n - n_begin] = Σ_k X[m][k] · W[n][k] for m < M and n_begin ≤ n < n_end (K = W.cols).
 * X has row stride ldx, Y row stride ldy. Deterministic: the split over threads does not depend on timing.
 */
void gemm_xwt(const ForwardKernels& kernels, ThreadPool& pool, const float* x, size_t m, size_t ldx,
              const WeightMatrix& w, size_t n_begin, size_t n_end, float* y, size_t ldy);

inline void gemm_xwt(const ForwardKernels& kernels, ThreadPool& pool, const float* x, size_t m, size_t ldx,
                     const WeightMatrix& w, float* y, size_t ldy) {
  gemm_xwt(kernels, pool, x, m, ldx, w, 0, w.rows, y, ldy);
}

}  // namespace fwd
}  // namespace abl
