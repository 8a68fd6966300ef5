// Y = X · Wᵀ with the weight read straight from the checkpoint bytes (F32/F16/BF16), maths in fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "../dtype.h"
#include "../thread_pool.h"
#include "forward_kernels.h"

namespace abl {
namespace fwd {

/**
 * A weight matrix in a checkpoint, seen as [rows = out, cols = in] (nn.Linear's layout). With `transposed` it is
 * stored [in, out] (GPT-2's Conv1D): element (n, k) sits at k * rows + n.
 */
struct PackedWeight;

struct WeightMatrix {
  const uint8_t* data = nullptr;
  Dtype dtype = Dtype::F32;
  size_t rows = 0;
  size_t cols = 0;
  bool transposed = false;
  /** The same matrix already in the recipe's weight panels (pack_weight), or null: the driver packs as it goes. */
  const PackedWeight* packed = nullptr;
};

/**
 * Every weight panel of a matrix, packed once for one recipe: panel (q, b) (columns q·nr.., depth block b) at
 * data + (q · k_blocks + b) · panel_bytes, exactly what the driver would pack for that tile. A resident run that
 * multiplies the same weight many times (every generated token, every MLP chunk, every row tile) then packs it once.
 */
struct PackedWeight {
  PackedWeight() = default;
  PackedWeight(const PackedWeight&) = delete;
  PackedWeight& operator=(const PackedWeight&) = delete;
  ~PackedWeight();
  /**
   * Maps `bytes` of anonymous memory on huge pages for the panels (large_mappings.h), reusing a mapping an earlier
   * job of this process gave back where one has the size (reused() then says so); throws NativeError when the
   * system has none.
   */
  void allocate(size_t bytes);
  /** Uses `bytes` at `data`, which someone else owns (a layer's staged panels: staged_weights.h), for the panels. */
  void borrow(uint8_t* data) { this->data = data; }
  bool reused() const { return reused_; }

  const GemmKernels* recipe = nullptr;
  size_t k_blocks = 0;
  size_t panel_bytes = 0;
  size_t bytes = 0;
  uint8_t* data = nullptr;

 private:
  bool reused_ = false;
  bool owned_ = false;
};

/** Whether packing `w` for this kernel table takes no more bytes than the weight itself (same element width). */
bool packing_fits(const ForwardKernels& kernels, const WeightMatrix& w);
/** The panel layout of `w` for the recipe `kernels` uses for its dtype: recipe, k_blocks, panel_bytes and bytes. */
void plan_panels(const ForwardKernels& kernels, const WeightMatrix& w, PackedWeight& out);
/**
 * Packs one panel, every depth block, into `out` (k_blocks · panel_bytes): weight rows [0, rows) (rows ≤ nr) of a
 * row-major matrix at `weight` with row stride ldw elements, zero past them.
 */
void pack_panel(const PackedWeight& layout, const uint8_t* weight, Dtype dtype, size_t ldw, size_t rows, size_t cols, uint8_t* out);
/** All of w's weight panels for the recipe `kernels` uses for its dtype, packed by every pool thread. */
std::unique_ptr<PackedWeight> pack_weight(const ForwardKernels& kernels, ThreadPool& pool, const WeightMatrix& w);

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
