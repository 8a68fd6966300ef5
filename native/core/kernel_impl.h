// Kernel bodies, instantiated once per instruction set by kernels_<isa>.cpp. S is a lane from simd.h;
// every loop runs S-wide and finishes with a ScalarSimd tail that performs the same operations, so for
// dModelAxis 0 the result of an element does not depend on which lane or thread handled it.
// Only for inclusion by kernels_*.cpp (unnamed namespace, no standard-library code: see host_device.h).
#pragma once

#include "kernels.h"
#include "projection_math.h"
#include "simd.h"

namespace abl {
namespace {

// Columns per block in pass 1: the block's accumulators (sum and compensation, 16 KiB per basis vector, twice
// that with the norm-preserving sums) stay in L1, and each row is read in 2 KiB (bf16) runs the prefetcher
// follows. 1024 measured fastest of 256..2048 on down_proj-shaped chunks.
constexpr size_t kColumnBlock = 1024;

template <class S, Dtype D>
struct KernelBody {
  using V = typename S::V;
  static constexpr size_t W = S::kWidth;
  static constexpr size_t kSize = D == Dtype::F64 ? 8 : D == Dtype::F32 ? 4 : 2;

  /**
   * Adds rows [0, R) of one column group (L-wide) to its running sums. The accumulators are loaded and stored
   * once per group of rows instead of once per row: pass 1 was bound by that traffic. Each column still sees
   * its rows one after another, in order, so the sums are bitwise those of one row at a time (and a chunked
   * tensor equals the whole one).
   */
  template <class L, size_t R>
  static void accumulate_column_rows(const ColumnAccumulation& job, const uint8_t* element, size_t row_bytes,
                                     size_t column, const double* basis_column) {
    typename L::V w[R];
    for (size_t r = 0; r < R; ++r) w[r] = L::template load_dtype<D>(element + r * row_bytes);
    for (unsigned k = 0; k < job.rank; ++k) {
      double* sum_at = job.projection_sum + k * job.cols + column;
      double* comp_at = job.projection_comp + k * job.cols + column;
      typename L::V sum = L::load(sum_at);
      typename L::V comp = L::load(comp_at);
      const double* basis_k = basis_column + k * job.d_model;
      for (size_t r = 0; r < R; ++r) accumulate_product<L>(sum, comp, L::broadcast(basis_k[r]), w[r]);
      L::store(sum_at, sum);
      L::store(comp_at, comp);
    }
    if (job.norm_sum) {
      typename L::V sum = L::load(job.norm_sum + column);
      typename L::V comp = L::load(job.norm_comp + column);
      for (size_t r = 0; r < R; ++r) accumulate_product<L>(sum, comp, w[r], w[r]);
      L::store(job.norm_sum + column, sum);
      L::store(job.norm_comp + column, comp);
    }
  }

  template <size_t R>
  static void accumulate_block_rows(const ColumnAccumulation& job, size_t i, size_t block, size_t block_end) {
    const size_t row_bytes = job.cols * kSize;
    const uint8_t* row = job.data + i * row_bytes;
    const double* basis_column = job.basis + job.row0 + i;
    size_t j = block;
    for (; j + W <= block_end; j += W) accumulate_column_rows<S, R>(job, row + j * kSize, row_bytes, j, basis_column);
    for (; j < block_end; ++j) accumulate_column_rows<ScalarSimd, R>(job, row + j * kSize, row_bytes, j, basis_column);
  }

  static void accumulate_columns(const ColumnAccumulation& job, size_t begin, size_t end) {
    constexpr size_t kRowGroup = 4;
    for (size_t block = begin; block < end; block += kColumnBlock) {
      const size_t block_end = end - block < kColumnBlock ? end : block + kColumnBlock;
      size_t i = 0;
      for (; i + kRowGroup <= job.rows; i += kRowGroup) accumulate_block_rows<kRowGroup>(job, i, block, block_end);
      for (; i < job.rows; ++i) accumulate_block_rows<1>(job, i, block, block_end);
    }
  }

  template <class L>
  static void rewrite_step(const ColumnRewrite& job, const uint8_t* in, uint8_t* out, size_t column,
                           const double* coefficients) {
    typename L::V value = L::template load_dtype<D>(in);
    for (unsigned k = 0; k < job.rank; ++k) {
      value = L::fma(L::broadcast(coefficients[k]), L::load(job.projection + k * job.cols + column), value);
    }
    if (job.scale) value = value * L::load(job.scale + column);
    L::template store_dtype<D>(out, value);
  }

  static void rewrite_rows(const ColumnRewrite& job, size_t begin, size_t end, double* coefficients) {
    for (size_t i = begin; i < end; ++i) {
      for (unsigned k = 0; k < job.rank; ++k) {
        coefficients[k] = -(job.alpha * job.basis[k * job.d_model + job.row0 + i]);
      }
      const uint8_t* in = job.in + i * job.cols * kSize;
      uint8_t* out = job.out + i * job.cols * kSize;
      size_t j = 0;
      for (; j + W <= job.cols; j += W) rewrite_step<S>(job, in + j * kSize, out + j * kSize, j, coefficients);
      for (; j < job.cols; ++j) rewrite_step<ScalarSimd>(job, in + j * kSize, out + j * kSize, j, coefficients);
    }
  }

  /**
   * One row: v_k = w·b_k and ‖w‖² by compensated dot products (W lanes, then the lanes joined in a
   * fixed order, then the scalar tail), then w' = scale · (w − α Σ_k v_k b_k).
   * Scratch layout: rank × W lane sums, rank × W lane compensations, rank coefficients.
   */
  static void project_row(const RowProjection& job, const uint8_t* in, uint8_t* out, double* scratch) {
    const size_t d = job.d_model;
    double* lane_sums = scratch;
    double* lane_comps = scratch + job.rank * W;
    double* coefficients = scratch + 2 * job.rank * W;
    for (size_t i = 0; i < 2 * job.rank * W; ++i) scratch[i] = 0.0;
    V norm_sum = S::broadcast(0.0);
    V norm_comp = S::broadcast(0.0);
    size_t j = 0;
    for (; j + W <= d; j += W) {
      const V w = S::template load_dtype<D>(in + j * kSize);
      for (unsigned k = 0; k < job.rank; ++k) {
        V sum = S::load(lane_sums + k * W);
        V comp = S::load(lane_comps + k * W);
        accumulate_product<S>(sum, comp, S::load(job.basis + k * d + j), w);
        S::store(lane_sums + k * W, sum);
        S::store(lane_comps + k * W, comp);
      }
      if (job.norm_preserving) accumulate_product<S>(norm_sum, norm_comp, w, w);
    }
    DoubleDouble projection_sq{0.0, 0.0};
    for (unsigned k = 0; k < job.rank; ++k) {
      double sum = lane_sums[k * W];
      double comp = lane_comps[k * W];
      for (size_t lane = 1; lane < W; ++lane) {
        merge_sums<ScalarLane>(sum, comp, lane_sums[k * W + lane], lane_comps[k * W + lane]);
      }
      for (size_t t = j; t < d; ++t) {
        accumulate_product<ScalarLane>(sum, comp, job.basis[k * d + t], load_element(in, t, D));
      }
      const DoubleDouble projection = finish_sum(sum, comp);
      coefficients[k] = -(job.alpha * projection.hi);
      if (job.norm_preserving) projection_sq = dd_add(projection_sq, dd_square(projection));
    }
    double scale = 1.0;
    if (job.norm_preserving) {
      double sum = S::lane(norm_sum, 0);
      double comp = S::lane(norm_comp, 0);
      for (size_t lane = 1; lane < W; ++lane) {
        merge_sums<ScalarLane>(sum, comp, S::lane(norm_sum, lane), S::lane(norm_comp, lane));
      }
      for (size_t t = j; t < d; ++t) {
        const double w = load_element(in, t, D);
        accumulate_product<ScalarLane>(sum, comp, w, w);
      }
      scale = norm_preserving_scale(finish_sum(sum, comp), projection_sq, job.alpha);
    }
    rewrite_row<S>(job, in, out, 0, d - d % W, coefficients, scale);
    rewrite_row<ScalarSimd>(job, in, out, d - d % W, d, coefficients, scale);
  }

  template <class L>
  static void rewrite_row(const RowProjection& job, const uint8_t* in, uint8_t* out, size_t begin, size_t end,
                          const double* coefficients, double scale) {
    constexpr size_t LW = L::kWidth;
    for (size_t j = begin; j < end; j += LW) {
      typename L::V value = L::template load_dtype<D>(in + j * kSize);
      for (unsigned k = 0; k < job.rank; ++k) {
        value = L::fma(L::broadcast(coefficients[k]), L::load(job.basis + k * job.d_model + j), value);
      }
      if (job.norm_preserving) value = value * L::broadcast(scale);
      L::template store_dtype<D>(out + j * kSize, value);
    }
  }

  static void project_rows(const RowProjection& job, size_t begin, size_t end, double* scratch) {
    const size_t row_bytes = job.d_model * kSize;
    for (size_t i = begin; i < end; ++i) project_row(job, job.in + i * row_bytes, job.out + i * row_bytes, scratch);
  }

  static void decode(const uint8_t* in, double* out, size_t count) {
    size_t i = 0;
    for (; i + W <= count; i += W) S::store(out + i, S::template load_dtype<D>(in + i * kSize));
    for (; i < count; ++i) out[i] = load_element(in, i, D);
  }

  static void encode(const double* in, uint8_t* out, size_t count) {
    size_t i = 0;
    for (; i + W <= count; i += W) S::template store_dtype<D>(out + i * kSize, S::load(in + i));
    for (; i < count; ++i) store_element(out, i, D, in[i]);
  }
};

template <class S, class Fn>
void with_dtype(Dtype dtype, Fn&& fn) {
  switch (dtype) {
    case Dtype::F64: fn(KernelBody<S, Dtype::F64>{}); break;
    case Dtype::F32: fn(KernelBody<S, Dtype::F32>{}); break;
    case Dtype::F16: fn(KernelBody<S, Dtype::F16>{}); break;
    case Dtype::BF16: fn(KernelBody<S, Dtype::BF16>{}); break;
  }
}

template <class S>
KernelTable make_kernel_table(const char* name) {
  KernelTable table{};
  table.name = name;
  table.width = static_cast<unsigned>(S::kWidth);
  table.accumulate_columns = [](const ColumnAccumulation& job, size_t begin, size_t end) {
    with_dtype<S>(job.dtype, [&](auto body) { body.accumulate_columns(job, begin, end); });
  };
  table.rewrite_rows = [](const ColumnRewrite& job, size_t begin, size_t end, double* scratch) {
    with_dtype<S>(job.dtype, [&](auto body) { body.rewrite_rows(job, begin, end, scratch); });
  };
  table.project_rows = [](const RowProjection& job, size_t begin, size_t end, double* scratch) {
    with_dtype<S>(job.dtype, [&](auto body) { body.project_rows(job, begin, end, scratch); });
  };
  table.decode = [](const uint8_t* in, double* out, size_t count, Dtype dtype) {
    with_dtype<S>(dtype, [&](auto body) { body.decode(in, out, count); });
  };
  table.encode = [](const double* in, uint8_t* out, size_t count, Dtype dtype) {
    with_dtype<S>(dtype, [&](auto body) { body.encode(in, out, count); });
  };
  return table;
}

}  // namespace
}  // namespace abl
