// Blocked GEMM driver (BLIS-style loops around the per-ISA micro-kernel), one driver for every recipe
// (forward_kernels.h: fp32 6×16 AVX2, fp32 and bf16 AVX-512, scalar).
//
// X is packed once per call into micro-panels of `mr` rows (in the recipe's element type: fp32, or bf16 pairs),
// all threads together. Tiles of (mc rows of X × kNc weight rows) are then handed out dynamically; each runs the
// full depth in blocks of kc (about 16 KB of weight panel, so it stays in L1): one nr-wide weight panel at a time
// is packed (converting F16/BF16/F32 on the way) and swept by every micro-panel of the tile's rows (in L2).
// With very few rows (token-by-token generation of one prompt) packing would cost more than it saves: each weight
// row is converted once and dotted with every row of X instead. A resident run packs each weight once for the whole
// job (pack_weight; transformer_engine.cpp): the tiles then read its panels, and few rows take the blocked path too.
#include "gemm.h"

#include "dynamic_for.h"
#include "../large_mappings.h"

#include <algorithm>
#include <memory>
#include <vector>

namespace abl {
namespace fwd {
namespace {

/** Bytes of packed X one tile sweeps per depth block: it stays in L2 while every weight panel of the tile passes. */
constexpr size_t kRowBlockBytes = 384 * 1024;
constexpr size_t kNc = 128;
constexpr size_t kFewRows = 3;
constexpr size_t kPanelBytes = 16384;

struct AlignedBytes {
  void resize(size_t n) {
    if (n <= size) return;
    storage = LargeVector<uint8_t>();  // the old storage goes first, so the new one may reuse its pages
    storage.resize(n + 64);
    const uintptr_t address = reinterpret_cast<uintptr_t>(storage.data());
    data = reinterpret_cast<uint8_t*>((address + 63) & ~uintptr_t(63));
    size = n;
  }
  LargeVector<uint8_t> storage;  // packed X is as large as X: on huge pages it takes few TLB entries
  uint8_t* data = nullptr;
  size_t size = 0;
};

/**
 * Scratch of the calling thread, kept between calls: the packed X (as large as X itself, in fp32) and one weight
 * panel per worker. Allocating them per call would fault the same pages in again for every projection.
 */
struct GemmScratch {
  AlignedBytes packed_x;
  std::vector<AlignedBytes> panels;
};

GemmScratch& scratch() {
  thread_local GemmScratch instance;
  return instance;
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

/**
 * The checkpoint bytes pack() reads for one weight panel, as `segments` runs of `segment_lines` cache lines
 * `stride` bytes apart: weight rows [n0, n0 + cols) at depths [k0, k0 + kc), or for a transposed weight depth rows
 * of `cols` elements.
 * A panel's rows lie K elements apart, so the hardware prefetcher does not follow them; fetched on demand, a cold
 * panel's 256 lines stalled pack_b (11 % of a capture's time, the micro-kernels 70 %). The sweep of the panel
 * before it prefetches them (18 KB: into L1, beside the 16 KB panel in use) a few lines per micro-kernel call:
 * pack_b 11.5 → 9.5 % of the capture profile, the capture 1–2 % faster. The prompt pass now reads most weights as
 * panels packed once per layer (staged_weights.h); this serves the rest (fp32 compute on 16-bit weights, the head).
 */
struct WeightPanelSource {
  const uint8_t* first = nullptr;
  size_t stride = 0, segments = 0, segment_lines = 0;

  WeightPanelSource() = default;
  WeightPanelSource(const WeightMatrix& w, size_t ldw, size_t n0, size_t cols, size_t k0, size_t kc) {
    const size_t size = dtype_size(w.dtype);
    stride = ldw * size;
    first = w.data + (w.transposed ? k0 * ldw + n0 : n0 * ldw + k0) * size;
    segments = w.transposed ? kc : cols;
    // One line more than the run covers, for a run that does not start on a line.
    segment_lines = ((w.transposed ? cols : kc) * size + 63) / 64 + 1;
  }
  size_t lines() const { return segments * segment_lines; }
  void prefetch(size_t begin, size_t end) const {
    for (size_t line = begin; line < std::min(end, lines()); ++line) {
      __builtin_prefetch(first + (line / segment_lines) * stride + (line % segment_lines) * 64, 0, 3);
    }
  }
};

/** Depth block: a weight panel of about kPanelBytes, a whole number of k-groups. */
size_t depth_block(const GemmKernels& g) {
  return std::max(g.k_group, kPanelBytes / (g.nr * g.element_bytes) / g.k_group * g.k_group);
}

}  // namespace

PackedWeight::~PackedWeight() {
  if (owned_) unmap_large(data, bytes);
}

void PackedWeight::allocate(size_t size) {
  // The panels are as large as the weights (the whole model in a resident generation run) and written once by
  // pack_weight, on huge pages (large_mappings.h) that an earlier job of the same shapes may have left faulted in.
  const LargeMapping mapping = map_large(size);
  reused_ = mapping.reused;
  owned_ = true;
  data = mapping.data;
  bytes = size;
}

bool packing_fits(const ForwardKernels& kernels, const WeightMatrix& w) {
  return gemm_for(kernels, w.dtype).element_bytes <= dtype_size(w.dtype);
}

void plan_panels(const ForwardKernels& kernels, const WeightMatrix& w, PackedWeight& out) {
  const GemmKernels& g = gemm_for(kernels, w.dtype);
  const size_t kc_max = depth_block(g);
  out.recipe = &g;
  out.k_blocks = (w.cols + kc_max - 1) / kc_max;
  out.panel_bytes = kc_max * g.nr * g.element_bytes;
  out.bytes = (w.rows + g.nr - 1) / g.nr * out.k_blocks * out.panel_bytes;
}

void pack_panel(const PackedWeight& layout, const uint8_t* weight, Dtype dtype, size_t ldw, size_t rows, size_t cols, uint8_t* out) {
  const GemmKernels& g = *layout.recipe;
  const size_t kc_max = depth_block(g);
  for (size_t b = 0; b < layout.k_blocks; ++b) {
    const size_t k0 = b * kc_max;
    g.pack_b(weight, dtype, ldw, 0, rows, k0, std::min(kc_max, cols - k0), out + b * layout.panel_bytes);
  }
}

std::unique_ptr<PackedWeight> pack_weight(const ForwardKernels& kernels, ThreadPool& pool, const WeightMatrix& w) {
  const GemmKernels& g = gemm_for(kernels, w.dtype);
  auto packed = std::make_unique<PackedWeight>();
  const size_t k = w.cols;
  const size_t kc_max = depth_block(g);
  plan_panels(kernels, w, *packed);
  const size_t panels = (w.rows + g.nr - 1) / g.nr;
  packed->allocate(packed->bytes);
  const size_t ldw = w.transposed ? w.rows : w.cols;
  const auto pack = w.transposed ? g.pack_b_transposed : g.pack_b;
  dynamic_for(pool, panels, [&](unsigned, size_t q) {
    for (size_t b = 0; b < packed->k_blocks; ++b) {
      const size_t k0 = b * kc_max;
      pack(w.data, w.dtype, ldw, q * g.nr, std::min(g.nr, w.rows - q * g.nr), k0, std::min(kc_max, k - k0),
           packed->data + (q * packed->k_blocks + b) * packed->panel_bytes);
    }
  });
  return packed;
}

void gemm_xwt(const ForwardKernels& kernels, ThreadPool& pool, const float* x, size_t m, size_t ldx,
              const WeightMatrix& w, size_t n_begin, size_t n_end, float* y, size_t ldy) {
  if (m == 0 || n_end <= n_begin) return;
  const size_t k = w.cols;
  if (k == 0) {
    for (size_t i = 0; i < m; ++i) std::fill(y + i * ldy, y + i * ldy + (n_end - n_begin), 0.0f);
    return;
  }
  const GemmKernels& g = gemm_for(kernels, w.dtype);
  // Panels packed beforehand serve any tile that starts on a panel boundary; with them even a few rows take the
  // blocked path (nothing left to convert per call).
  const PackedWeight* packed = w.packed && w.packed->recipe == &g && n_begin % g.nr == 0 ? w.packed : nullptr;
  // A recipe on 16-bit elements (bf16) rounds X to them as it packs; the dot-product path would multiply unrounded
  // fp32 rows, so a capture's one-row head and a generation's packed head gave logits 3e-2 apart. Its rows take the
  // blocked path too, which sums exactly as the packed panels do.
  const bool rounds_x = g.element_bytes < sizeof(float);
  if (m <= kFewRows && !packed && !rounds_x) {
    few_rows(kernels, pool, x, m, ldx, w, n_begin, n_end, y, ldy);
    return;
  }
  const size_t mr = g.mr, nr = g.nr, group = g.k_group;
  const size_t kc_max = depth_block(g);
  const size_t k_blocks = (k + kc_max - 1) / kc_max;
  const size_t panel_bytes = kc_max * mr * g.element_bytes;  // one packed micro-panel of X for one depth block
  const size_t x_panels = (m + mr - 1) / mr;
  GemmScratch& s = scratch();
  s.packed_x.resize(x_panels * k_blocks * panel_bytes);
  if (s.panels.size() < pool.size()) s.panels.resize(pool.size());
  for (unsigned i = 0; i < pool.size(); ++i) s.panels[i].resize(kc_max * nr * g.element_bytes);
  uint8_t* packed_x = s.packed_x.data;
  // Micro-panel p, depth block b at packed_x + (b * x_panels + p) * panel_bytes: depth-block major, so the
  // micro-panels one sweep reads (every row of the tile at one depth block) are one sequential stream. Row-major
  // (p * k_blocks + b) put them k_blocks panels apart, a fresh page every few KB for the prefetcher; measured
  // 15–25 % slower on the MLP's down projection (K = 4 × hidden) in a single-thread model of this loop.
  dynamic_for(pool, (x_panels + 7) / 8, [&](unsigned, size_t chunk) {
    for (size_t p = chunk * 8; p < std::min(x_panels, chunk * 8 + 8); ++p) {
      for (size_t b = 0; b < k_blocks; ++b) {
        const size_t k0 = b * kc_max;
        g.pack_a(x, ldx, p * mr, std::min(mr, m - p * mr), k0, std::min(kc_max, k - k0), packed_x + (b * x_panels + p) * panel_bytes);
      }
    }
  });

  const size_t n = n_end - n_begin;
  // Rows per tile: as many as fill kRowBlockBytes, since every tile packs its weight panels anew; fewer when that
  // would leave a thread without a tile.
  const size_t n_blocks = (n + kNc - 1) / kNc;
  size_t mc = std::max(mr, kRowBlockBytes / (kc_max * g.element_bytes) / mr * mr);
  while (mc > mr && ((m + mc - 1) / mc) * n_blocks < 2 * size_t(pool.size())) mc = std::max(mr, (mc / 2) / mr * mr);
  const size_t m_blocks = (m + mc - 1) / mc;
  const size_t ldw = w.transposed ? w.rows : w.cols;
  const auto pack = w.transposed ? g.pack_b_transposed : g.pack_b;
  // One loop over all tiles, each running the whole depth itself: a single synchronization per GEMM after the
  // packing of X, which matters on a busy machine where every wait for a descheduled thread costs a slice.
  dynamic_for(pool, m_blocks * n_blocks, [&](unsigned worker, size_t task) {
    uint8_t* scratch_panel = s.panels[worker].data;
    const uint8_t* panel = scratch_panel;
    const size_t row_begin = (task % m_blocks) * mc;
    const size_t rows = std::min(mc, m - row_begin);
    const size_t col_begin = (task / m_blocks) * kNc;
    const size_t col_end = std::min(n, col_begin + kNc);
    const auto source = [&](size_t b, size_t j) {
      const size_t k0 = b * kc_max;
      return WeightPanelSource(w, ldw, n_begin + j, std::min(nr, col_end - j), k0, std::min(kc_max, k - k0));
    };
    const auto sweep = [&](size_t b, size_t j) {
      const size_t k0 = b * kc_max;
      const size_t kc = std::min(kc_max, k - k0);
      const size_t groups = (kc + group - 1) / group;
      const size_t cols = std::min(nr, col_end - j);
      WeightPanelSource next;  // the panel the next sweep packs (the depth-major order below), if this task has one
      if (packed) {
        panel = packed->data + ((n_begin + j) / nr * k_blocks + b) * packed->panel_bytes;
      } else {
        pack(w.data, w.dtype, ldw, n_begin + j, cols, k0, kc, scratch_panel);
        if (j + nr < col_end) next = source(b, j + nr);
        else if (b + 1 < k_blocks) next = source(b + 1, col_begin);
      }
      const size_t calls = (rows + mr - 1) / mr;
      const size_t lines_per_call = (next.lines() + calls - 1) / calls;
      for (size_t i = 0, call = 0; i < rows; i += mr, ++call) {
        const size_t p = (row_begin + i) / mr;
        next.prefetch(call * lines_per_call, (call + 1) * lines_per_call);
        g.micro_kernel(groups, packed_x + (b * x_panels + p) * panel_bytes, panel, y + (row_begin + i) * ldy + j, ldy,
                       std::min(mr, rows - i), cols, b > 0);
      }
    };
    if (packed && rows * k * g.element_bytes <= kRowBlockBytes) {
      // Packed panels and a tile whose X fits L2 at every depth (decode steps): each weight panel's depth blocks
      // in turn, which is the packed copy's memory order, so the weights stream sequentially (the hardware
      // prefetcher follows one stream; depth-major order jumps k_blocks panels at a time) and the C tile stays in L1.
      for (size_t j = col_begin; j < col_end; j += nr) {
        for (size_t b = 0; b < k_blocks; ++b) sweep(b, j);
      }
    } else {
      for (size_t b = 0; b < k_blocks; ++b) {
        for (size_t j = col_begin; j < col_end; j += nr) sweep(b, j);
      }
    }
  });
}

}  // namespace fwd
}  // namespace abl
