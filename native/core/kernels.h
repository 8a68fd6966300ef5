// The CPU projection kernels, one table per instruction set (kernels_scalar.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp), chosen at runtime. Kernels see raw little-endian chunks of a tensor; the caller
// owns I/O, memory and threads. See docs/precision.md for the arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dtype.h"

namespace abl {

/** dModelAxis 0, pass 1: v += Bᵀ W_chunk (and ‖column‖²) for the chunk's rows, columns [begin, end). */
struct ColumnAccumulation {
  Dtype dtype;
  const uint8_t* data;  // the chunk: rows × cols elements
  size_t rows;
  size_t cols;
  size_t row0;  // tensor row of the chunk's first row
  const double* basis;  // rank × d_model, row-major
  size_t d_model;
  unsigned rank;
  double* projection_sum;  // rank × cols compensated sums (sum, compensation)
  double* projection_comp;
  double* norm_sum;  // cols; null unless norm-preserving
  double* norm_comp;
};

/** dModelAxis 0, pass 2: w' = scale ⊙ (w − α Σ_k B[k,row] v_k) for rows [begin, end) of a chunk. */
struct ColumnRewrite {
  Dtype dtype;
  const uint8_t* in;
  uint8_t* out;
  size_t cols;
  size_t row0;
  const double* basis;
  size_t d_model;
  unsigned rank;
  double alpha;
  const double* projection;  // rank × cols: v = Bᵀw, rounded to double
  const double* scale;       // cols, or null (not norm-preserving)
};

/** dModelAxis 1: every row w of a chunk becomes scale · (w − α Σ_k (w·b_k) b_k). */
struct RowProjection {
  Dtype dtype;
  const uint8_t* in;
  uint8_t* out;
  size_t d_model;
  const double* basis;
  unsigned rank;
  double alpha;
  bool norm_preserving;
};

/** Doubles of scratch per basis vector that rewrite_rows/project_rows need, per calling thread. */
constexpr size_t kScratchPerRank = 48;

struct KernelTable {
  const char* name;  // "scalar", "avx2", "avx512"
  unsigned width;    // doubles per vector
  void (*accumulate_columns)(const ColumnAccumulation& job, size_t col_begin, size_t col_end);
  void (*rewrite_rows)(const ColumnRewrite& job, size_t row_begin, size_t row_end, double* scratch);
  void (*project_rows)(const RowProjection& job, size_t row_begin, size_t row_end, double* scratch);
  void (*decode)(const uint8_t* in, double* out, size_t count, Dtype dtype);
  void (*encode)(const double* in, uint8_t* out, size_t count, Dtype dtype);
};

const KernelTable& scalar_kernels();
/** Null when the build left the instruction set out (the ABLITERATE_SIMD build option, non-x86). */
const KernelTable* avx2_kernels();
const KernelTable* avx512_kernels();

/** The table the one kernel chooser picked (kernel_choice.h; ABLITERATE_KERNELS caps it). */
const KernelTable& best_kernels();

}  // namespace abl
