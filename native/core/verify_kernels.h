// The verifier's vector kernels, one table per instruction set (verify_kernels_scalar.cpp,
// verify_kernels_avx2.cpp, verify_kernels_avx512.cpp), chosen at runtime like the apply kernels' but
// written separately from them (docs/precision.md, "How verify computes the reference"). The caller
// (verify_tensor.cpp) owns I/O, threads, the per-vector finishing in long double and the judge; the
// kernels stream raw little-endian tensor bytes.
//
// Orientation: dModelAxis 0 tensors are [d_model, cols] chunks whose columns are the projected vectors
// (kernels take a column range [begin, end) and walk the chunk's rows); dModelAxis 1 tensors are processed
// one row (one vector) at a time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dtype.h"

namespace abl {

/**
 * The basis, rank × d_model row-major, and two exact splittings of it (plain = hi + lo):
 *  - `hi`/`lo`: hi short enough that hi·w and lo·w are exact for every value w of the tensor's dtype
 *    (Veltkamp split at the dtype's significand width); for F64, where no such split exists, the 27-bit
 *    split of Dekker's product;
 *  - `hi27`/`lo27`: the 26/26-bit split of Dekker's product, for products with doubles.
 */
struct VerifyBasis {
  const double* plain;
  const double* hi;
  const double* lo;
  const double* hi27;
  const double* lo27;
  size_t d_model;
};

/**
 * Per-vector coefficients of the fp64 screen (verify_kernels_impl.h, `screen`), which compares each
 * element with A = ŝ(w − Σ_k b_k ĉ_k):
 *  - narrow dtypes: |A − ref| ≤ vector_error for every element of the vector, and |A| < magnitude_limit
 *    keeps ref clear of the dtype's overflow threshold;
 *  - F64: |A − ref| ≤ relative_error·|A| + update_error·Σ_k|b_k ĉ_k| + absolute_error per element, and the
 *    tolerance's second term is slack·(|w| + Σ_k|b_k ĉ_k|).
 */
struct ScreenTerms {
  const double* scale;  // ŝ, the norm-preserving scale rounded to double (1 without)
  const double* vector_error;
  const double* magnitude_limit;
  const double* relative_error;
  const double* update_error;
  const double* slack;
  const double* absolute_error;
};

/** Called for an element the screen could not settle: tensor row and column. */
struct UndecidedSink {
  void (*element)(void* context, size_t row, size_t col);
  void* context;
};

/** Pass A, dModelAxis 0: v = Bᵀw (compensated), Σ w² (compensated, if norm_sum) and max |w|, per column. */
struct ColumnSumsJob {
  Dtype dtype;
  const uint8_t* chunk;  // rows × cols elements
  size_t rows;
  size_t cols;
  size_t row0;  // tensor row of the chunk's first row
  unsigned rank;
  VerifyBasis basis;
  double* sum;  // rank × cols: (sum, comp) pairs
  double* comp;
  double* norm_sum;  // cols, or null
  double* norm_comp;
  double* abs_max;  // cols
};

/**
 * Pass B, dModelAxis 0, norm-preserving only: Σ (w − Σ_k b_k c_k)², each term in double-double, where
 * c_k = α v_k is a double-double (update_hi + update_lo) and update_hi's Dekker split is given.
 */
struct ColumnNormsJob {
  Dtype dtype;
  const uint8_t* chunk;
  size_t rows;
  size_t cols;
  size_t row0;
  unsigned rank;
  VerifyBasis basis;
  const double* update_hi;  // rank × cols
  const double* update_hi27;
  const double* update_lo27;
  const double* update_lo;
  double* square_sum;  // cols
  double* square_comp;
};

/**
 * Pass C, dModelAxis 0: screens every element of the modified chunk against A = ŝ(w − Σ_k b_k ĉ_k) and
 * accumulates projectionAfter's Bᵀw' (plain fp64; it is only reported).
 */
struct ColumnCheckJob {
  Dtype dtype;
  const uint8_t* original;
  const uint8_t* modified;
  size_t rows;
  size_t cols;
  size_t row0;
  unsigned rank;
  const double* basis;  // rank × d_model
  size_t d_model;
  const double* update;  // rank × cols: ĉ = fl(α v̂)
  ScreenTerms terms;     // arrays of cols; unless scaled, scale is ignored (1) and F64's relative_error,
                         // update_error and slack are read at [0] (the same for every column)
  bool scaled;           // norm-preserving
  double* after;         // rank × cols
  double* max_ratio;     // largest |actual − A| / ulp among the settled elements
  UndecidedSink undecided;
};

/** dModelAxis 1, one row: the sums of ColumnSumsJob for a single vector (rank pairs, one pair, one). */
struct RowSumsJob {
  Dtype dtype;
  const uint8_t* row;
  unsigned rank;
  VerifyBasis basis;
  double* sum;  // rank
  double* comp;
  double* norm_sum;  // 1, or null
  double* norm_comp;
  double* abs_max;  // 1
  double* scratch;  // kVerifyScratchPerRank × (rank + 1) doubles
};

struct RowNormsJob {
  Dtype dtype;
  const uint8_t* row;
  unsigned rank;
  VerifyBasis basis;
  const double* update_hi;  // rank
  const double* update_hi27;
  const double* update_lo27;
  const double* update_lo;
  double* square_sum;  // 1
  double* square_comp;
  double* scratch;
};

struct RowCheckJob {
  Dtype dtype;
  const uint8_t* original;
  const uint8_t* modified;
  size_t row;  // tensor row, for the sink
  unsigned rank;
  const double* basis;
  size_t d_model;
  const double* update;  // rank
  ScreenTerms terms;     // single values
  bool scaled;
  double* after;  // rank
  double* max_ratio;
  UndecidedSink undecided;
  double* scratch;
};

/** Doubles of scratch per basis vector (plus one) that the row kernels need, per calling thread. */
constexpr size_t kVerifyScratchPerRank = 32;

struct VerifyKernelTable {
  const char* name;  // "scalar", "avx2", "avx512"
  void (*column_sums)(const ColumnSumsJob& job, size_t col_begin, size_t col_end);
  void (*column_norms)(const ColumnNormsJob& job, size_t col_begin, size_t col_end);
  void (*column_check)(const ColumnCheckJob& job, size_t col_begin, size_t col_end);
  void (*row_sums)(const RowSumsJob& job);
  void (*row_norms)(const RowNormsJob& job);
  void (*row_check)(const RowCheckJob& job);
};

const VerifyKernelTable& verify_scalar_kernels();
/** Null when the build left the instruction set out. */
const VerifyKernelTable* verify_avx2_kernels();
const VerifyKernelTable* verify_avx512_kernels();

/** The table the one kernel chooser picked (kernel_choice.h; ABLITERATE_KERNELS caps it). */
const VerifyKernelTable& best_verify_kernels();

/**
 * How the basis is split for the exact products of pass A (VerifyBasis), and the bound of the low parts
 * that goes into the error of v (docs/precision.md): hi keeps 53 − split_shift bits, so hi·w is exact for
 * the dtype's significand, and |lo·w| ≤ 2^(split_shift − 53)·|b·w|. F64 uses Dekker's product instead,
 * whose error term is at most 2⁻⁵³ of the product.
 */
struct VerifyDtypeTraits {
  int split_shift;        // Veltkamp constant 2^split_shift + 1 for the `hi`/`lo` split; 0: Dekker (F64)
  double low_part_ratio;  // |low part| ≤ low_part_ratio · |b·w|
};

static inline VerifyDtypeTraits verify_dtype_traits(Dtype dtype) {
  switch (dtype) {
    case Dtype::BF16: return {8, 0x1p-45};
    case Dtype::F16: return {11, 0x1p-42};
    case Dtype::F32: return {24, 0x1p-29};
    case Dtype::F64: return {0, 0x1p-53};
  }
  return {0, 0x1p-53};
}

}  // namespace abl
