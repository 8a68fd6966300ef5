// The verifier's kernel table for one instruction set, instantiated by verify_kernels_<isa>.cpp: dtype
// and rank dispatch around the column (verify_kernels_columns.h) and row (verify_kernels_rows.h) kernels.
// Ranks 1–4 are unrolled with their coefficients in registers; any other rank takes the general path.
//
// Only for inclusion by verify_kernels_*.cpp (unnamed namespace, no standard-library code).
#pragma once

#include "verify_kernels_columns.h"
#include "verify_kernels_rows.h"

namespace abl {
namespace {

template <unsigned N>
struct RankTag {
  static constexpr unsigned value = N;
};

template <class Fn>
void with_rank(unsigned rank, Fn&& fn) {
  switch (rank) {
    case 1: fn(RankTag<1>{}); break;
    case 2: fn(RankTag<2>{}); break;
    case 3: fn(RankTag<3>{}); break;
    case 4: fn(RankTag<4>{}); break;
    default: fn(RankTag<0>{}); break;
  }
}

template <class L, Dtype D>
struct VerifyBody {
  using Columns = ColumnKernels<L, D>;
  using Rows = RowKernels<L, D>;

  static void column_sums(const ColumnSumsJob& job, size_t begin, size_t end) {
    with_rank(job.rank, [&](auto r) { Columns::template column_sums<decltype(r)::value>(job, begin, end); });
  }
  static void column_norms(const ColumnNormsJob& job, size_t begin, size_t end) {
    with_rank(job.rank, [&](auto r) { Columns::template column_norms<decltype(r)::value>(job, begin, end); });
  }
  static void column_check(const ColumnCheckJob& job, size_t begin, size_t end) {
    with_rank(job.rank, [&](auto r) {
      if (job.scaled) {
        Columns::template column_check<decltype(r)::value, true>(job, begin, end);
      } else {
        Columns::template column_check<decltype(r)::value, false>(job, begin, end);
      }
    });
  }
  static void row_sums(const RowSumsJob& job) {
    with_rank(job.rank, [&](auto r) { Rows::template row_sums<decltype(r)::value>(job); });
  }
  static void row_norms(const RowNormsJob& job) {
    with_rank(job.rank, [&](auto r) { Rows::template row_norms<decltype(r)::value>(job); });
  }
  static void row_check(const RowCheckJob& job) {
    with_rank(job.rank, [&](auto r) {
      if (job.scaled) {
        Rows::template row_check<decltype(r)::value, true>(job);
      } else {
        Rows::template row_check<decltype(r)::value, false>(job);
      }
    });
  }
};

template <class L, class Fn>
void with_verify_dtype(Dtype dtype, Fn&& fn) {
  switch (dtype) {
    case Dtype::F64: fn(VerifyBody<L, Dtype::F64>{}); break;
    case Dtype::F32: fn(VerifyBody<L, Dtype::F32>{}); break;
    case Dtype::F16: fn(VerifyBody<L, Dtype::F16>{}); break;
    case Dtype::BF16: fn(VerifyBody<L, Dtype::BF16>{}); break;
  }
}

template <class L>
VerifyKernelTable make_verify_kernel_table(const char* name) {
  VerifyKernelTable table{};
  table.name = name;
  table.column_sums = [](const ColumnSumsJob& job, size_t begin, size_t end) {
    with_verify_dtype<L>(job.dtype, [&](auto body) { body.column_sums(job, begin, end); });
  };
  table.column_norms = [](const ColumnNormsJob& job, size_t begin, size_t end) {
    with_verify_dtype<L>(job.dtype, [&](auto body) { body.column_norms(job, begin, end); });
  };
  table.column_check = [](const ColumnCheckJob& job, size_t begin, size_t end) {
    with_verify_dtype<L>(job.dtype, [&](auto body) { body.column_check(job, begin, end); });
  };
  table.row_sums = [](const RowSumsJob& job) {
    with_verify_dtype<L>(job.dtype, [&](auto body) { body.row_sums(job); });
  };
  table.row_norms = [](const RowNormsJob& job) {
    with_verify_dtype<L>(job.dtype, [&](auto body) { body.row_norms(job); });
  };
  table.row_check = [](const RowCheckJob& job) {
    with_verify_dtype<L>(job.dtype, [&](auto body) { body.row_check(job); });
  };
  return table;
}

}  // namespace
}  // namespace abl
