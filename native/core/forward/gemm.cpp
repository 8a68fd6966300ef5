// Blocked GEMM driver (BLIS-style loops around the per-ISA micro-kernel).
//
// Tiles of (kMc rows of X × kNc weight rows) are handed out dynamically; each runs the full depth in blocks of kKc:
// it packs its block of X into micro-panels of kGemmMr rows (in L2), then one kGemmNr-wide weight panel at a time
// (converting F16/BF16 to fp32 on the way; the panel stays in L1) and sweeps its rows.
// With very few rows (token-by-token generation) packing would cost more than it saves: each weight row is
// converted once and dotted with every row of X instead.
#include "gemm.h"

#include "dynamic_for.h"

#include <algorithm>
#include <memory>
#include <vector>

namespace abl {
namespace fwd {
namespace {

constexpr size_t kKc = 256;
constexpr size_t kMc = 144;
constexpr size_t kNc = 128;
constexpr size_t kFewRows = 3;

struct AlignedFloats {
  explicit AlignedFloats(size_t n) : storage(new float[n + 8]) {
    const uintptr_t address = reinterpret_cast<uintptr_t>(storage.get());
    data = reinterpret_cast<float*>((address + 31) & ~uintptr_t(31));
  }
  std::unique_ptr<float[]> storage;
  float* data;
};

/** Packs rows [row0, row0 + rows) × columns [k0, k0 + kc) of X into micro-panels of kGemmMr rows (zero padded). */
void pack_activation_block(const float* x, size_t ldx, size_t row0, size_t rows, size_t k0, size_t kc, float* packed) {
  for (size_t block = 0; block * kGemmMr < rows; ++block) {
    float* out = packed + block * kGemmMr * kc;
    const size_t first = row0 + block * kGemmMr;
    const size_t count = std::min(kGemmMr, rows - block * kGemmMr);
    for (size_t k = 0; k < kc; ++k) {
      for (size_t i = 0; i < kGemmMr; ++i) out[k * kGemmMr + i] = i < count ? x[(first + i) * ldx + k0 + k] : 0.0f;
    }
  }
}

/** Few rows, weight stored [in, out]: each stored row k is converted once per column block and axpy'd into Y. */
void few_rows_transposed(const ForwardKernels& kernels, ThreadPool& pool, const float* x, size_t m, size_t ldx,
                         const WeightMatrix& w, size_t n_begin, size_t n_end, float* y, size_t ldy) {
  constexpr size_t kBlock = 256;
  const size_t size = dtype_size(w.dtype);
  const size_t count = n_end - n_begin;
  std::vector<std::vector<float>> rows(pool.size(), std::vector<float>(kBlock));
  dynamic_for(pool, (count + kBlock - 1) / kBlock, [&](unsigned worker, size_t block) {
    const size_t j0 = block * kBlock;
    const size_t width = std::min(kBlock, count - j0);
    float* row = rows[worker].data();
    for (size_t i = 0; i < m; ++i) std::fill(y + i * ldy + j0, y + i * ldy + j0 + width, 0.0f);
    for (size_t k = 0; k < w.cols; ++k) {
      kernels.convert(w.data + (k * w.rows + n_begin + j0) * size, w.dtype, row, width);
      for (size_t i = 0; i < m; ++i) kernels.axpy(x[i * ldx + k], row, y + i * ldy + j0, width);
    }
  });
}

void few_rows(const ForwardKernels& kernels, ThreadPool& pool, const float* x, size_t m, size_t ldx,
              const WeightMatrix& w, size_t n_begin, size_t n_end, float* y, size_t ldy) {
  if (w.transposed) {
    few_rows_transposed(kernels, pool, x, m, ldx, w, n_begin, n_end, y, ldy);
    return;
  }
  const size_t k = w.cols;
  const size_t size = dtype_size(w.dtype);
  std::vector<std::vector<float>> rows(pool.size(), std::vector<float>(k));
  const size_t count = n_end - n_begin;
  dynamic_for(pool, (count + 15) / 16, [&](unsigned worker, size_t block) {
    float* row = rows[worker].data();
    for (size_t n = block * 16; n < std::min(count, block * 16 + 16); ++n) {
      kernels.convert(w.data + (n_begin + n) * k * size, w.dtype, row, k);
      for (size_t i = 0; i < m; ++i) y[i * ldy + n] = kernels.dot(row, x + i * ldx, k);
    }
  });
}

}  // namespace

void gemm_xwt(const ForwardKernels& kernels, ThreadPool& pool, const float* x, size_t m, size_t ldx,
              const WeightMatrix& w, size_t n_begin, size_t n_end, float* y, size_t ldy) {
  if (m == 0 || n_end <= n_begin) return;
  const size_t k = w.cols;
  if (k == 0) {
    for (size_t i = 0; i < m; ++i) std::fill(y + i * ldy, y + i * ldy + (n_end - n_begin), 0.0f);
    return;
  }
  if (m <= kFewRows) {
    few_rows(kernels, pool, x, m, ldx, w, n_begin, n_end, y, ldy);
    return;
  }
  const size_t n = n_end - n_begin;
  const size_t m_blocks = (m + kMc - 1) / kMc;
  const size_t n_blocks = (n + kNc - 1) / kNc;
  // Per worker: one packed block of X (kMc × kKc) and one weight panel (kKc × kGemmNr).
  std::vector<AlignedFloats> packed_x;
  std::vector<AlignedFloats> panels;
  packed_x.reserve(pool.size());
  panels.reserve(pool.size());
  for (unsigned i = 0; i < pool.size(); ++i) {
    packed_x.emplace_back(kMc * kKc);
    panels.emplace_back(kKc * kGemmNr);
  }
  const size_t ldw = w.transposed ? w.rows : w.cols;
  const auto pack = w.transposed ? kernels.pack_transposed_panel : kernels.pack_weight_panel;
  // One loop over all tiles, each running the whole depth itself: a single synchronization per GEMM, which matters
  // on a busy machine where every wait for a descheduled thread costs a scheduler slice.
  dynamic_for(pool, m_blocks * n_blocks, [&](unsigned worker, size_t task) {
    float* a = packed_x[worker].data;
    float* panel = panels[worker].data;
    const size_t row_begin = (task % m_blocks) * kMc;
    const size_t rows = std::min(kMc, m - row_begin);
    const size_t col_begin = (task / m_blocks) * kNc;
    const size_t col_end = std::min(n, col_begin + kNc);
    for (size_t k0 = 0; k0 < k; k0 += kKc) {
      const size_t kc = std::min(kKc, k - k0);
      pack_activation_block(x, ldx, row_begin, rows, k0, kc, a);
      for (size_t j = col_begin; j < col_end; j += kGemmNr) {
        const size_t nr = std::min(kGemmNr, col_end - j);
        pack(w.data, w.dtype, ldw, n_begin + j, nr, k0, kc, panel);
        for (size_t i = 0; i < rows; i += kGemmMr) {
          kernels.micro_kernel(kc, a + (i / kGemmMr) * kGemmMr * kc, panel, y + (row_begin + i) * ldy + j, ldy,
                               std::min(kGemmMr, rows - i), nr, k0 > 0);
        }
      }
    }
  });
}

}  // namespace fwd
}  // namespace abl
