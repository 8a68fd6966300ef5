// dModelAxis 1 kernels of the verifier: one row is one vector, and a call takes one row. SIMD lanes run
// along the row and are joined in lane order, then a VerifyScalarLane tail continues the joined sums.
//
// Only for inclusion by verify_kernels_*.cpp (unnamed namespace, no standard-library code).
#pragma once

#include "verify_arithmetic.h"

namespace abl {
namespace {

template <class L, Dtype D>
struct RowKernels {
  using V = typename L::V;
  using S = VerifyScalarLane;
  using C = DtypeConstants<D>;
  using P = ElementProducts<D>;
  static constexpr size_t W = L::kWidth;
  static constexpr size_t kSize = C::kSize;

  /** A compensated pair per lane (plus one per basis vector for R > 0 in registers, else in scratch). */
  template <class Lane, unsigned R>
  struct LanePairs {
    using LV = typename Lane::V;
    LV sum[R ? R : 1], comp[R ? R : 1];
    double* memory = nullptr;  // R = 0: rank sums then rank comps, Lane::kWidth doubles each
    unsigned rank = R;

    void reset(unsigned rank_, double* scratch) {
      rank = R ? R : rank_;
      if constexpr (R > 0) {
        for (unsigned k = 0; k < R; ++k) sum[k] = comp[k] = Lane::broadcast(0.0);
      } else {
        memory = scratch;
        for (size_t i = 0; i < 2 * rank * Lane::kWidth; ++i) memory[i] = 0.0;
      }
    }
    void add(unsigned k, LV high, LV low) {
      if constexpr (R > 0) {
        VerifyMath<Lane>::accumulate(sum[k], comp[k], high, low);
      } else {
        constexpr size_t LW = Lane::kWidth;
        LV s = Lane::load(memory + k * LW), c = Lane::load(memory + (rank + k) * LW);
        VerifyMath<Lane>::accumulate(s, c, high, low);
        Lane::store(memory + k * LW, s);
        Lane::store(memory + (rank + k) * LW, c);
      }
    }
    /** Lane sums of basis vector k joined in lane order. */
    void join(unsigned k, double& s, double& c) const {
      constexpr size_t LW = Lane::kWidth;
      double sums[LW], comps[LW];
      if constexpr (R > 0) {
        Lane::store(sums, sum[k]);
        Lane::store(comps, comp[k]);
      } else {
        for (size_t lane = 0; lane < LW; ++lane) {
          sums[lane] = memory[k * LW + lane];
          comps[lane] = memory[(rank + k) * LW + lane];
        }
      }
      s = sums[0];
      c = comps[0];
      for (size_t lane = 1; lane < LW; ++lane) {
        double total, error;
        VerifyMath<S>::two_sum(s, sums[lane], total, error);
        s = total;
        c = c + (error + comps[lane]);
      }
    }
  };

  template <class Lane>
  static void row_sums_load(const RowSumsJob& job, size_t j, typename Lane::V& w, typename Lane::V& w_hi,
                            typename Lane::V& w_lo) {
    w = Lane::template load_dtype<D>(job.row + j * kSize);
    P::template split_element<Lane>(w, w_hi, w_lo);
  }

  template <unsigned R>
  static void row_sums(const RowSumsJob& shared_job) {
    const RowSumsJob job = shared_job;
    const unsigned rank = R ? R : job.rank;
    const size_t d = job.basis.d_model;
    const double* const plain = job.basis.plain;
    const double* const hi = job.basis.hi;
    const double* const lo = job.basis.lo;
    const bool with_norm = job.norm_sum != nullptr;
    LanePairs<L, R> projection;
    projection.reset(rank, job.scratch);
    LanePairs<L, 1> norm;
    norm.reset(1, nullptr);
    V largest = L::broadcast(0.0);
    size_t j = 0;
    for (; j + W <= d; j += W) {
      V w, w_hi, w_lo;
      row_sums_load<L>(job, j, w, w_hi, w_lo);
      for (unsigned k = 0; k < rank; ++k) {
        V high, low;
        P::template exact_product<L>(L::load(plain + k * d + j), L::load(hi + k * d + j), L::load(lo + k * d + j),
                                     w, w_hi, w_lo, high, low);
        projection.add(k, high, low);
      }
      largest = L::max(L::abs(w), largest);
      if (with_norm) {
        V high, low;
        P::template exact_square<L>(w, w_hi, w_lo, high, low);
        norm.add(0, high, low);
      }
    }
    // The joined lane sums, continued by the scalar tail.
    double largest_lanes[W];
    L::store(largest_lanes, largest);
    double abs_max = 0.0;
    for (size_t lane = 0; lane < W; ++lane) abs_max = S::max(largest_lanes[lane], abs_max);
    double norm_s, norm_c;
    norm.join(0, norm_s, norm_c);
    for (unsigned k = 0; k < rank; ++k) projection.join(k, job.sum[k], job.comp[k]);
    for (; j < d; ++j) {
      double w, w_hi, w_lo;
      row_sums_load<S>(job, j, w, w_hi, w_lo);
      for (unsigned k = 0; k < rank; ++k) {
        double high, low;
        P::template exact_product<S>(plain[k * d + j], hi[k * d + j], lo[k * d + j], w, w_hi, w_lo, high, low);
        VerifyMath<S>::accumulate(job.sum[k], job.comp[k], high, low);
      }
      abs_max = S::max(S::abs(w), abs_max);
      if (with_norm) {
        double high, low;
        P::template exact_square<S>(w, w_hi, w_lo, high, low);
        VerifyMath<S>::accumulate(norm_s, norm_c, high, low);
      }
    }
    *job.abs_max = abs_max;
    if (with_norm) {
      *job.norm_sum = norm_s;
      *job.norm_comp = norm_c;
    }
  }

  template <class Lane, unsigned R>
  static void row_norms_step(const RowNormsJob& job, unsigned rank, const Coefficients<R>* c, size_t j,
                             typename Lane::V& sum, typename Lane::V& comp) {
    using LV = typename Lane::V;
    const size_t d = job.basis.d_model;
    LV p_hi = Lane::template load_dtype<D>(job.row + j * kSize);
    LV p_lo = p_hi - p_hi;
    for (unsigned k = 0; k < rank; ++k) {
      VerifyMath<Lane>::subtract_product(p_hi, p_lo, Lane::load(job.basis.plain + k * d + j),
                                         Lane::load(job.basis.hi27 + k * d + j), Lane::load(job.basis.lo27 + k * d + j),
                                         Lane::broadcast(c[0][k]), Lane::broadcast(c[1][k]), Lane::broadcast(c[2][k]),
                                         Lane::broadcast(c[3][k]));
    }
    VerifyMath<Lane>::accumulate_square(sum, comp, p_hi, p_lo);
  }

  template <unsigned R>
  static void row_norms(const RowNormsJob& shared_job) {
    const RowNormsJob job = shared_job;
    const unsigned rank = R ? R : job.rank;
    const size_t d = job.basis.d_model;
    Coefficients<R> c[4];
    c[0].gather(job.update_hi, 1);
    c[1].gather(job.update_hi27, 1);
    c[2].gather(job.update_lo27, 1);
    c[3].gather(job.update_lo, 1);
    V sum = L::broadcast(0.0), comp = L::broadcast(0.0);
    size_t j = 0;
    for (; j + W <= d; j += W) row_norms_step<L, R>(job, rank, c, j, sum, comp);
    double sums[W], comps[W];
    L::store(sums, sum);
    L::store(comps, comp);
    double s = sums[0], e = comps[0];
    for (size_t lane = 1; lane < W; ++lane) {
      double total, error;
      VerifyMath<S>::two_sum(s, sums[lane], total, error);
      s = total;
      e = e + (error + comps[lane]);
    }
    for (; j < d; ++j) row_norms_step<S, R>(job, rank, c, j, s, e);
    *job.square_sum = s;
    *job.square_comp = e;
  }

  template <class Lane, unsigned R, bool Scaled>
  static void row_check_step(const RowCheckJob& job, unsigned rank, const Coefficients<R>& update, size_t j,
                             typename Lane::V* after, double* after_memory, const ScreenVector<Lane>& p,
                             typename Lane::V& ratio_max) {
    using LV = typename Lane::V;
    constexpr size_t LW = Lane::kWidth;
    const size_t d = job.d_model;
    const LV w = Lane::template load_dtype<D>(job.original + j * kSize);
    const LV a = Lane::template load_dtype<D>(job.modified + j * kSize);
    LV t = w - w, m = w - w;
    for (unsigned k = 0; k < rank; ++k) {
      const LV b = Lane::load(job.basis + k * d + j);
      const LV term = b * Lane::broadcast(update[k]);
      t = k == 0 ? term : t + term;
      if constexpr (D == Dtype::F64) m = k == 0 ? Lane::abs(term) : m + Lane::abs(term);
      if (after) {
        after[k] = after[k] + b * a;
      } else {
        Lane::store(after_memory + k * LW, Lane::load(after_memory + k * LW) + b * a);
      }
    }
    const auto settled = screen<Lane, D, Scaled>(w, a, t, m, p, ratio_max);
    if (__builtin_expect(!Lane::all(settled), 0)) {
      for (unsigned lanes = Lane::failing_lanes(settled), lane = 0; lanes; lanes >>= 1, ++lane) {
        if (lanes & 1u) job.undecided.element(job.undecided.context, job.row, j + lane);
      }
    }
  }

  template <unsigned R, bool Scaled>
  static void row_check(const RowCheckJob& shared_job) {
    const RowCheckJob job = shared_job;
    const unsigned rank = R ? R : job.rank;
    const size_t d = job.d_model;
    Coefficients<R> update;
    update.gather(job.update, 1);
    V after[R ? R : 1];
    double* after_memory = job.scratch;  // R = 0: rank × W
    if constexpr (R > 0) {
      for (unsigned k = 0; k < R; ++k) after[k] = L::broadcast(0.0);
    } else {
      for (size_t i = 0; i < rank * W; ++i) after_memory[i] = 0.0;
    }
    const ScreenVector<L> p = screen_vector<L>(job.terms);
    V ratio_max = L::broadcast(0.0);
    size_t j = 0;
    for (; j + W <= d; j += W) {
      row_check_step<L, R, Scaled>(job, rank, update, j, R ? after : nullptr, after_memory, p, ratio_max);
    }
    for (unsigned k = 0; k < rank; ++k) {
      double lanes[W];
      if constexpr (R > 0) {
        L::store(lanes, after[k]);
      } else {
        for (size_t lane = 0; lane < W; ++lane) lanes[lane] = after_memory[k * W + lane];
      }
      double total = 0.0;
      for (size_t lane = 0; lane < W; ++lane) total += lanes[lane];
      job.after[k] = total;
    }
    S::V scalar_ratio_max = 0.0;
    const ScreenVector<S> scalar_p = screen_vector<S>(job.terms);
    for (; j < d; ++j) {
      row_check_step<S, 0, Scaled>(job, rank, as_memory(update, job.update), j, nullptr, job.after, scalar_p,
                                   scalar_ratio_max);
    }
    *job.max_ratio = fold_ratio<L, D>(*job.max_ratio, scalar_ratio_max, ratio_max);
  }

  /** A row's screen coefficients (single values) as lanes. */
  template <class Lane>
  static ScreenVector<Lane> screen_vector(const ScreenTerms& terms) {
    ScreenVector<Lane> p;
    p.scale = Lane::broadcast(*terms.scale);
    p.vector_error = Lane::broadcast(*terms.vector_error);
    p.magnitude_limit = Lane::broadcast(*terms.magnitude_limit);
    p.relative = Lane::broadcast(*terms.relative_error);
    p.update = Lane::broadcast(*terms.update_error);
    p.slack = Lane::broadcast(*terms.slack);
    p.absolute = Lane::broadcast(*terms.absolute_error);
    return p;
  }

  template <unsigned R>
  static Coefficients<0> as_memory(const Coefficients<R>&, const double* source) {
    Coefficients<0> c;
    c.gather(source, 1);
    return c;
  }
};

}  // namespace
}  // namespace abl
