// dModelAxis 0 kernels of the verifier: a chunk is rows × cols, every column is a vector, and a call
// takes a column range [begin, end). A column's sums run down the rows in order; every loop runs L-wide
// and finishes with a VerifyScalarLane tail that performs the same operations, so a column's results do not
// depend on lane, thread or chunk size.
//
// Only for inclusion by verify_kernels_*.cpp (unnamed namespace, no standard-library code).
#pragma once

#include "verify_arithmetic.h"

namespace abl {
namespace {

// Columns of a chunk walked together, row by row: long runs of each row keep the prefetchers streaming.
constexpr size_t kColumnTile = 8192;

template <class L, Dtype D>
struct ColumnKernels {
  using V = typename L::V;
  using S = VerifyScalarLane;
  using C = DtypeConstants<D>;
  using P = ElementProducts<D>;
  static constexpr size_t W = L::kWidth;
  static constexpr size_t kSize = C::kSize;

  // Rows go kRowBlock at a time: a column's accumulators are loaded and stored once per block, and the
  // block's rows stream side by side.
  static constexpr size_t kRowBlock = 4;

  template <unsigned R, size_t B>
  struct SumsBlock {
    Coefficients<R> plain[B], hi[B], lo[B];
    const uint8_t* rows[B];
  };

  template <class Lane, unsigned R, size_t B>
  static void column_sums_step(unsigned rank, size_t cols, const SumsBlock<R, B>& block, size_t j, double* sum,
                               double* comp, double* abs_max, double* norm_sum, double* norm_comp) {
    using LV = typename Lane::V;
    using M = VerifyMath<Lane>;
    LV w[B], w_hi[B], w_lo[B];
    LV largest = Lane::load(abs_max + j);
    for (size_t r = 0; r < B; ++r) {
      w[r] = Lane::template load_dtype<D>(block.rows[r] + j * kSize);
      P::template split_element<Lane>(w[r], w_hi[r], w_lo[r]);
      largest = Lane::max(Lane::abs(w[r]), largest);
    }
    Lane::store(abs_max + j, largest);
    for (unsigned k = 0; k < rank; ++k) {
      LV s = Lane::load(sum + k * cols + j), c = Lane::load(comp + k * cols + j);
      for (size_t r = 0; r < B; ++r) {
        LV high, low;
        P::template exact_product<Lane>(Lane::broadcast(block.plain[r][k]), Lane::broadcast(block.hi[r][k]),
                                        Lane::broadcast(block.lo[r][k]), w[r], w_hi[r], w_lo[r], high, low);
        M::accumulate(s, c, high, low);
      }
      Lane::store(sum + k * cols + j, s);
      Lane::store(comp + k * cols + j, c);
    }
    if (norm_sum) {
      LV s = Lane::load(norm_sum + j), c = Lane::load(norm_comp + j);
      for (size_t r = 0; r < B; ++r) {
        LV high, low;
        P::template exact_square<Lane>(w[r], w_hi[r], w_lo[r], high, low);
        M::accumulate(s, c, high, low);
      }
      Lane::store(norm_sum + j, s);
      Lane::store(norm_comp + j, c);
    }
  }

  template <unsigned R, size_t B>
  static void column_sums_block(const ColumnSumsJob& job, unsigned rank, size_t i, size_t tile, size_t tile_end) {
    const size_t cols = job.cols, d = job.basis.d_model;
    SumsBlock<R, B> block;
    for (size_t r = 0; r < B; ++r) {
      const size_t at = job.row0 + i + r;
      block.plain[r].gather(job.basis.plain + at, d);
      block.hi[r].gather(job.basis.hi + at, d);
      block.lo[r].gather(job.basis.lo + at, d);
      block.rows[r] = job.chunk + (i + r) * cols * kSize;
    }
    size_t j = tile;
    for (; j + W <= tile_end; j += W) {
      column_sums_step<L, R, B>(rank, cols, block, j, job.sum, job.comp, job.abs_max, job.norm_sum, job.norm_comp);
    }
    for (; j < tile_end; ++j) {
      column_sums_step<S, R, B>(rank, cols, block, j, job.sum, job.comp, job.abs_max, job.norm_sum, job.norm_comp);
    }
  }

  template <unsigned R>
  static void column_sums(const ColumnSumsJob& shared_job, size_t begin, size_t end) {
    const ColumnSumsJob job = shared_job;  // a local copy stays in registers; the vector stores may alias memory
    const unsigned rank = R ? R : job.rank;
    for (size_t tile = begin; tile < end; tile += kColumnTile) {
      const size_t tile_end = end - tile < kColumnTile ? end : tile + kColumnTile;
      size_t i = 0;
      for (; i + kRowBlock <= job.rows; i += kRowBlock) column_sums_block<R, kRowBlock>(job, rank, i, tile, tile_end);
      for (; i < job.rows; ++i) column_sums_block<R, 1>(job, rank, i, tile, tile_end);
    }
  }

  template <unsigned R, size_t B>
  struct NormsBlock {
    Coefficients<R> plain[B], hi27[B], lo27[B];
    const uint8_t* rows[B];
  };

  template <class Lane, unsigned R, size_t B>
  static void column_norms_step(const ColumnNormsJob& job, unsigned rank, const NormsBlock<R, B>& block, size_t j) {
    using LV = typename Lane::V;
    using M = VerifyMath<Lane>;
    const size_t cols = job.cols;
    LV s = Lane::load(job.square_sum + j), c = Lane::load(job.square_comp + j);
    for (size_t r = 0; r < B; ++r) {
      LV p_hi = Lane::template load_dtype<D>(block.rows[r] + j * kSize);
      LV p_lo = p_hi - p_hi;
      for (unsigned k = 0; k < rank; ++k) {
        const size_t c_at = k * cols + j;
        M::subtract_product(p_hi, p_lo, Lane::broadcast(block.plain[r][k]), Lane::broadcast(block.hi27[r][k]),
                            Lane::broadcast(block.lo27[r][k]), Lane::load(job.update_hi + c_at),
                            Lane::load(job.update_hi27 + c_at), Lane::load(job.update_lo27 + c_at),
                            Lane::load(job.update_lo + c_at));
      }
      M::accumulate_square(s, c, p_hi, p_lo);
    }
    Lane::store(job.square_sum + j, s);
    Lane::store(job.square_comp + j, c);
  }

  template <unsigned R, size_t B>
  static void column_norms_block(const ColumnNormsJob& job, unsigned rank, size_t i, size_t tile, size_t tile_end) {
    const size_t d = job.basis.d_model;
    NormsBlock<R, B> block;
    for (size_t r = 0; r < B; ++r) {
      const size_t at = job.row0 + i + r;
      block.plain[r].gather(job.basis.plain + at, d);
      block.hi27[r].gather(job.basis.hi27 + at, d);
      block.lo27[r].gather(job.basis.lo27 + at, d);
      block.rows[r] = job.chunk + (i + r) * job.cols * kSize;
    }
    size_t j = tile;
    for (; j + W <= tile_end; j += W) column_norms_step<L, R, B>(job, rank, block, j);
    for (; j < tile_end; ++j) column_norms_step<S, R, B>(job, rank, block, j);
  }

  template <unsigned R>
  static void column_norms(const ColumnNormsJob& shared_job, size_t begin, size_t end) {
    const ColumnNormsJob job = shared_job;
    const unsigned rank = R ? R : job.rank;
    for (size_t tile = begin; tile < end; tile += kColumnTile) {
      const size_t tile_end = end - tile < kColumnTile ? end : tile + kColumnTile;
      size_t i = 0;
      for (; i + kRowBlock <= job.rows; i += kRowBlock) column_norms_block<R, kRowBlock>(job, rank, i, tile, tile_end);
      for (; i < job.rows; ++i) column_norms_block<R, 1>(job, rank, i, tile, tile_end);
    }
  }

  /** F64's screen coefficients that are the same for every column unless norm-preserving. */
  struct SharedTerms {
    double relative, update, slack;
  };

  template <unsigned R, size_t B>
  struct CheckBlock {
    Coefficients<R> basis[B];
    size_t first_row;  // chunk row of the block's first row
  };

  /** One row of a block: t (and m), Bᵀw' into `after`, and the screen. */
  template <class Lane, unsigned R, bool Scaled>
  static typename Lane::M column_check_element(const ColumnCheckJob& job, unsigned rank, const Coefficients<R>& b,
                                               size_t row, size_t j, const typename Lane::V* c,
                                               typename Lane::V* after, bool accumulate_after,
                                               const ScreenVector<Lane>& p, typename Lane::V& ratio_max) {
    using LV = typename Lane::V;
    const size_t cols = job.cols;
    const size_t offset = (row * cols + j) * kSize;
    const LV w = Lane::template load_dtype<D>(job.original + offset);
    const LV a = Lane::template load_dtype<D>(job.modified + offset);
    LV t = w - w, m = w - w;
    for (unsigned k = 0; k < rank; ++k) {
      const LV b_k = Lane::broadcast(b[k]);
      const LV term = b_k * (R ? c[k] : Lane::load(job.update + k * cols + j));
      t = k == 0 ? term : t + term;
      if constexpr (D == Dtype::F64) m = k == 0 ? Lane::abs(term) : m + Lane::abs(term);
      if (accumulate_after) {
        if constexpr (R > 0) {
          after[k] = after[k] + b_k * a;
        } else {
          Lane::store(job.after + k * cols + j, Lane::load(job.after + k * cols + j) + b_k * a);
        }
      }
    }
    return screen<Lane, D, Scaled>(w, a, t, m, p, ratio_max);
  }

  template <class Lane, unsigned R, size_t B, bool Scaled>
  static void column_check_step(const ColumnCheckJob& job, unsigned rank, const CheckBlock<R, B>& block,
                                const SharedTerms& shared, size_t j, typename Lane::V& ratio_max) {
    using LV = typename Lane::V;
    const size_t cols = job.cols;
    const ScreenTerms& terms = job.terms;
    ScreenVector<Lane> p;
    p.scale = Scaled ? Lane::load(terms.scale + j) : Lane::broadcast(1.0);
    if constexpr (D == Dtype::F64) {
      p.relative = Scaled ? Lane::load(terms.relative_error + j) : Lane::broadcast(shared.relative);
      p.update = Scaled ? Lane::load(terms.update_error + j) : Lane::broadcast(shared.update);
      p.slack = Scaled ? Lane::load(terms.slack + j) : Lane::broadcast(shared.slack);
      p.absolute = Lane::load(terms.absolute_error + j);
    } else {
      (void)shared;
      p.vector_error = Lane::load(terms.vector_error + j);
      p.magnitude_limit = Lane::load(terms.magnitude_limit + j);
    }
    LV c[R ? R : 1], after[R ? R : 1];
    if constexpr (R > 0) {
      for (unsigned k = 0; k < R; ++k) {
        c[k] = Lane::load(job.update + k * cols + j);
        after[k] = Lane::load(job.after + k * cols + j);
      }
    }
    // The block's verdicts are joined and looked at once; an open element is found by screening again.
    typename Lane::M settled = column_check_element<Lane, R, Scaled>(job, rank, block.basis[0], block.first_row, j,
                                                                     c, after, true, p, ratio_max);
    for (size_t r = 1; r < B; ++r) {
      settled = Lane::both(settled, column_check_element<Lane, R, Scaled>(job, rank, block.basis[r],
                                                                          block.first_row + r, j, c, after, true,
                                                                          p, ratio_max));
    }
    if constexpr (R > 0) {
      for (unsigned k = 0; k < R; ++k) Lane::store(job.after + k * cols + j, after[k]);
    }
    if (__builtin_expect(!Lane::all(settled), 0)) {
      for (size_t r = 0; r < B; ++r) {
        const typename Lane::M row_settled = column_check_element<Lane, R, Scaled>(
            job, rank, block.basis[r], block.first_row + r, j, c, after, false, p, ratio_max);
        for (unsigned lanes = Lane::failing_lanes(row_settled), lane = 0; lanes; lanes >>= 1, ++lane) {
          if (lanes & 1u) job.undecided.element(job.undecided.context, job.row0 + block.first_row + r, j + lane);
        }
      }
    }
  }

  template <unsigned R, size_t B, bool Scaled>
  static void column_check_block(const ColumnCheckJob& job, unsigned rank, const SharedTerms& shared, size_t i,
                                 size_t tile, size_t tile_end, V& ratio_max, double& scalar_ratio_max) {
    CheckBlock<R, B> block;
    for (size_t r = 0; r < B; ++r) block.basis[r].gather(job.basis + job.row0 + i + r, job.d_model);
    block.first_row = i;
    size_t j = tile;
    for (; j + W <= tile_end; j += W) column_check_step<L, R, B, Scaled>(job, rank, block, shared, j, ratio_max);
    for (; j < tile_end; ++j) column_check_step<S, R, B, Scaled>(job, rank, block, shared, j, scalar_ratio_max);
  }

  template <unsigned R, bool Scaled>
  static void column_check(const ColumnCheckJob& shared_job, size_t begin, size_t end) {
    const ColumnCheckJob job = shared_job;
    const unsigned rank = R ? R : job.rank;
    SharedTerms shared{0, 0, 0};
    if constexpr (D == Dtype::F64) {
      shared = {job.terms.relative_error[0], job.terms.update_error[0], job.terms.slack[0]};
    }
    V ratio_max = L::broadcast(0.0);
    S::V scalar_ratio_max = 0.0;
    for (size_t tile = begin; tile < end; tile += kColumnTile) {
      const size_t tile_end = end - tile < kColumnTile ? end : tile + kColumnTile;
      size_t i = 0;
      for (; i + kRowBlock <= job.rows; i += kRowBlock) {
        column_check_block<R, kRowBlock, Scaled>(job, rank, shared, i, tile, tile_end, ratio_max, scalar_ratio_max);
      }
      for (; i < job.rows; ++i) {
        column_check_block<R, 1, Scaled>(job, rank, shared, i, tile, tile_end, ratio_max, scalar_ratio_max);
      }
    }
    *job.max_ratio = fold_ratio<L, D>(*job.max_ratio, scalar_ratio_max, ratio_max);
  }
};

}  // namespace
}  // namespace abl
