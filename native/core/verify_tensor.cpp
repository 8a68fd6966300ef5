#include "verify_tensor.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "verify_chunk_stream.h"
#include "verify_kernels.h"
#include "verify_tolerance.h"
#include "verify_vector_terms.h"

namespace abl {

namespace {

// Columns per share of a thread split (dModelAxis 0): whole cache lines of every dtype, whole vectors.
constexpr size_t kColumnGrain = 64;

struct Tally {
  uint64_t mismatches = 0;
  double max_ulp_error = 0;
  int64_t first_index = -1;
  double first_expected = 0;
  double first_actual = 0;
  double projection_before = 0;
  double projection_after = 0;
  uint64_t non_finite = 0;
  int64_t first_non_finite = -1;
  uint64_t non_finite_original = 0;
  int64_t first_non_finite_original = -1;

  static void keep_first(int64_t& first, int64_t candidate) {
    if (candidate >= 0 && (first < 0 || candidate < first)) first = candidate;
  }

  void not_finite(uint64_t index, bool original) {
    ++non_finite;
    keep_first(first_non_finite, static_cast<int64_t>(index));
    if (original) {
      ++non_finite_original;
      keep_first(first_non_finite_original, static_cast<int64_t>(index));
    }
  }

  void mismatch(uint64_t index, long double reference, double actual) {
    ++mismatches;
    if (first_index < 0 || static_cast<int64_t>(index) < first_index) {
      first_index = static_cast<int64_t>(index);
      first_expected = static_cast<double>(reference);
      first_actual = actual;
    }
  }

  void merge_ratio(double ratio) {
    if (!(ratio <= max_ulp_error)) max_ulp_error = ratio;
  }

  void merge(const Tally& other) {
    mismatches += other.mismatches;
    merge_ratio(other.max_ulp_error);
    if (other.first_index >= 0 && (first_index < 0 || other.first_index < first_index)) {
      first_index = other.first_index;
      first_expected = other.first_expected;
      first_actual = other.first_actual;
    }
    projection_before = max_abs(projection_before, other.projection_before);
    projection_after = max_abs(projection_after, other.projection_after);
    non_finite += other.non_finite;
    keep_first(first_non_finite, other.first_non_finite);
    non_finite_original += other.non_finite_original;
    keep_first(first_non_finite_original, other.first_non_finite_original);
  }

  static double max_abs(double current, double value) {
    // NaN wins, so a NaN projection is reported rather than hidden.
    if (std::isnan(value) || std::isnan(current)) return NAN;
    return std::max(current, std::fabs(value));
  }
};

VerifiedTensor finish(const TensorJob& tensor, const Tally& tally) {
  VerifiedTensor result;
  result.name = tensor.name;
  result.elements = tensor.rows * tensor.cols;
  result.mismatches = tally.mismatches;
  result.max_ulp_error = tally.max_ulp_error;
  result.first_mismatch_index = tally.first_index;
  result.first_mismatch_expected = tally.first_expected;
  result.first_mismatch_actual = tally.first_actual;
  result.projection_before = tally.projection_before;
  result.projection_after = tally.projection_after;
  result.non_finite = tally.non_finite;
  result.first_non_finite = tally.first_non_finite;
  result.non_finite_original = tally.non_finite_original;
  result.first_non_finite_original = tally.first_non_finite_original;
  return result;
}

/** The basis with the exact splittings the kernels multiply by (VerifyBasis), and its largest |entries|. */
struct SplitBasis {
  std::vector<double> hi, lo, hi27, lo27;
  std::vector<double> vector_largest;  // max_i |b_ki| per basis vector
  double largest = 0;

  explicit SplitBasis(const TensorJob& tensor) {
    const size_t size = tensor.basis.size();
    hi.resize(size);
    lo.resize(size);
    hi27.resize(size);
    lo27.resize(size);
    vector_largest.assign(tensor.rank, 0.0);
    const size_t d = tensor.d_model();
    const int shift = verify_dtype_traits(tensor.dtype).split_shift;
    for (size_t i = 0; i < size; ++i) {
      const double b = tensor.basis[i];
      veltkamp_split(b, 27, hi27[i], lo27[i]);
      if (shift) {
        veltkamp_split(b, shift, hi[i], lo[i]);
      } else {
        hi[i] = hi27[i];
        lo[i] = lo27[i];
      }
      vector_largest[i / d] = std::max(vector_largest[i / d], std::fabs(b));
      largest = std::max(largest, std::fabs(b));
    }
  }

  /** Σ_k max_i |b_ki| |c_k| for coefficients c_k `stride` apart. */
  double update_largest(const double* c, size_t stride) const {
    double total = 0;
    for (size_t k = 0; k < vector_largest.size(); ++k) total += vector_largest[k] * std::fabs(c[k * stride]);
    return total;
  }

  VerifyBasis view(const TensorJob& tensor) const {
    return {tensor.basis.data(), hi.data(), lo.data(), hi27.data(), lo27.data(), static_cast<size_t>(tensor.d_model())};
  }
};

VectorFacts facts_of(const TensorJob& tensor, const SplitBasis& basis) {
  VectorFacts facts{};
  facts.length = tensor.d_model();
  facts.rank = tensor.rank;
  facts.alpha = tensor.alpha;
  facts.basis_largest = basis.largest;
  facts.low_part_ratio = verify_dtype_traits(tensor.dtype).low_part_ratio;
  const DtypeGeometry g = dtype_geometry(tensor.dtype);
  facts.largest_finite = std::ldexp(2.0 - std::ldexp(1.0, -g.mantissa_bits), g.max_exponent);
  facts.norm_preserving = tensor.norm_preserving;
  return facts;
}

/**
 * The long double judge, for an element the fp64 screen left open: ref = s(w − α Σ_k b_k v_k) with v_k
 * the double-double of pass A, s the long double scale. The verdict is this judge's.
 *
 * The non-finite rule comes first: an element whose original or modified value is NaN or ±Inf fails, whatever the
 * reference (docs/reliability.md § Non-finite values). The screen never settles such an element (its error or
 * magnitude is not finite), so every one of them reaches this judge.
 */
struct ElementJudge {
  const TensorJob& tensor;
  ToleranceJudge judge;

  explicit ElementJudge(const TensorJob& t) : tensor(t), judge(t.dtype) {}

  /** Element (row, col) at `offset` elements into the chunks; v_k = v_hi[k·stride] + v_lo[k·stride]. */
  void check(const uint8_t* original, const uint8_t* modified, size_t offset, uint64_t index, size_t basis_at,
             const double* v_hi, const double* v_lo, size_t stride, long double scale, Tally& tally) const {
    const double w = load_element(original, offset, tensor.dtype);
    const double actual = load_element(modified, offset, tensor.dtype);
    const bool original_finite = std::isfinite(w);
    if (!original_finite || !std::isfinite(actual)) {
      tally.not_finite(index, !original_finite);
      tally.max_ulp_error = INFINITY;
      tally.mismatch(index, NAN, actual);
      return;
    }
    long double sum = 0, magnitude = 0;
    for (unsigned k = 0; k < tensor.rank; ++k) {
      const long double v = static_cast<long double>(v_hi[k * stride]) + v_lo[k * stride];
      const long double term = tensor.basis[k * tensor.d_model() + basis_at] * v;
      sum += term;
      magnitude += std::fabs(term);
    }
    const long double alpha = tensor.alpha;
    const long double reference = scale * (static_cast<long double>(w) - alpha * sum);
    if (!judge.judge(actual, reference, w, std::fabs(alpha) * magnitude, scale, &tally.max_ulp_error)) {
      tally.mismatch(index, reference, actual);
    }
  }
};

/**
 * [d_model, cols]: every column w becomes s·(w − α B Bᵀw). Pass A sums v = Bᵀw (and ‖w‖², max|w|), pass B
 * (only norm-preserving) sums ‖w'‖² directly, pass C screens every element and sums Bᵀw'. Threads take
 * column ranges. Passes A and B walk the chunks in row order, so the sums are the same for any chunk
 * size; pass C, whose verdicts are per element, walks them backward and starts on a chunk still mapped.
 */
VerifiedTensor verify_columns(const VerifyContext& context, const TensorJob& tensor,
                              const std::function<void(uint64_t)>& on_bytes) {
  const VerifyKernelTable& kernels = best_verify_kernels();
  const size_t cols = tensor.cols, rank = tensor.rank;
  const bool norm_preserving = tensor.norm_preserving;
  const uint64_t row_bytes = cols * dtype_size(tensor.dtype);
  const SplitBasis split(tensor);
  const VerifyBasis basis = split.view(tensor);
  ChunkStream chunks(context, tensor);
  using Files = ChunkStream::Files;
  using Walk = ChunkStream::Walk;

  // Pass A.
  std::vector<double> sum(rank * cols), comp(rank * cols), abs_max(cols);
  std::vector<double> norm_sum(norm_preserving ? cols : 0), norm_comp(norm_preserving ? cols : 0);
  chunks.for_each(Files::original, Walk::forward, [&](size_t row0, size_t rows, const uint8_t* original,
                                                      const uint8_t*) {
    const ColumnSumsJob job{tensor.dtype, original, rows, cols, row0, tensor.rank, basis, sum.data(),
                            comp.data(), norm_preserving ? norm_sum.data() : nullptr,
                            norm_preserving ? norm_comp.data() : nullptr, abs_max.data()};
    context.pool.parallel_for(cols, kColumnGrain, [&](unsigned, size_t begin, size_t end) {
      kernels.column_sums(job, begin, end);
    });
  });
  Tally totals;
  std::vector<double> v_hi(rank * cols), v_lo(rank * cols), update(rank * cols);
  for (size_t i = 0; i < rank * cols; ++i) {
    finish_compensated(sum[i], comp[i], v_hi[i], v_lo[i]);
    update[i] = tensor.alpha * v_hi[i];
    totals.projection_before = Tally::max_abs(totals.projection_before, v_hi[i]);
  }
  sum = {};
  comp = {};

  // Pass B.
  std::vector<double> square_sum(norm_preserving ? cols : 0), square_comp(norm_preserving ? cols : 0);
  if (norm_preserving) {
    std::vector<double> update_hi27(rank * cols), update_lo27(rank * cols), update_lo(rank * cols);
    for (size_t i = 0; i < rank * cols; ++i) {
      const ScaledProjection c = scale_projection(tensor.alpha, v_hi[i], v_lo[i]);
      update_hi27[i] = c.hi27;
      update_lo27[i] = c.lo27;
      update_lo[i] = c.lo;
    }
    chunks.for_each(Files::original, Walk::forward, [&](size_t row0, size_t rows, const uint8_t* original,
                                                      const uint8_t*) {
      const ColumnNormsJob job{tensor.dtype, original, rows, cols, row0, tensor.rank, basis,
                               update.data(), update_hi27.data(), update_lo27.data(), update_lo.data(),
                               square_sum.data(), square_comp.data()};
      context.pool.parallel_for(cols, kColumnGrain, [&](unsigned, size_t begin, size_t end) {
        kernels.column_norms(job, begin, end);
      });
    });
  }

  std::vector<double> scale(cols), vector_error(cols), magnitude_limit(cols), relative(cols), update_error(cols),
      slack(cols), absolute(cols);
  std::vector<long double> scale_exact(cols);
  VectorFacts facts = facts_of(tensor, split);
  for (size_t j = 0; j < cols; ++j) {
    facts.abs_max = abs_max[j];
    facts.update_largest = split.update_largest(update.data() + j, cols);
    facts.projection_largest = 0;
    for (size_t k = 0; k < rank; ++k) {
      facts.projection_largest = std::max(facts.projection_largest, std::fabs(v_hi[k * cols + j]));
    }
    if (norm_preserving) {
      facts.norm_sum = norm_sum[j];
      facts.norm_comp = norm_comp[j];
      facts.square_sum = square_sum[j];
      facts.square_comp = square_comp[j];
    }
    const VectorTerms terms = vector_terms(facts);
    scale[j] = terms.scale;
    vector_error[j] = terms.vector_error;
    magnitude_limit[j] = terms.magnitude_limit;
    relative[j] = terms.relative_error;
    update_error[j] = terms.update_error;
    slack[j] = terms.slack;
    absolute[j] = terms.absolute_error;
    scale_exact[j] = terms.scale_exact;
  }
  if (!norm_preserving) {
    // One vector's coefficients serve all; the kernel reads element 0. The NaN of a non-finite max|w|
    // is per column, in `absolute`.
    VectorFacts plain = facts;
    plain.abs_max = 0;
    const VectorTerms terms = vector_terms(plain);
    relative[0] = terms.relative_error;
    update_error[0] = terms.update_error;
    slack[0] = terms.slack;
  }

  // Pass C.
  const ElementJudge judge(tensor);
  struct Sink {
    const ElementJudge* judge;
    const uint8_t* original;
    const uint8_t* modified;
    size_t row0;
    size_t cols;
    const double* v_hi;
    const double* v_lo;
    const long double* scale_exact;
    Tally* tally;
  };
  auto undecided = [](void* context, size_t row, size_t col) {
    const Sink& s = *static_cast<const Sink*>(context);
    s.judge->check(s.original, s.modified, (row - s.row0) * s.cols + col, static_cast<uint64_t>(row) * s.cols + col,
                   row, s.v_hi + col, s.v_lo + col, s.cols, s.scale_exact[col], *s.tally);
  };
  std::vector<double> after(rank * cols, 0.0);
  std::vector<Tally> tallies(context.pool.size());
  chunks.for_each(Files::both, Walk::backward, [&](size_t row0, size_t rows, const uint8_t* original,
                                                    const uint8_t* modified) {
    context.pool.parallel_for(cols, kColumnGrain, [&](unsigned worker, size_t begin, size_t end) {
      Tally& tally = tallies[worker];
      Sink sink{&judge, original, modified, row0, cols, v_hi.data(), v_lo.data(), scale_exact.data(), &tally};
      double max_ratio = 0;
      const ColumnCheckJob job{tensor.dtype, original, modified, rows, cols, row0, tensor.rank,
                               tensor.basis.data(), static_cast<size_t>(tensor.d_model()), update.data(),
                               ScreenTerms{scale.data(), vector_error.data(), magnitude_limit.data(), relative.data(),
                                           update_error.data(), slack.data(), absolute.data()},
                               norm_preserving, after.data(), &max_ratio, UndecidedSink{undecided, &sink}};
      kernels.column_check(job, begin, end);
      tally.merge_ratio(max_ratio);
    });
    on_bytes(rows * row_bytes);
  });
  for (const Tally& tally : tallies) totals.merge(tally);
  for (double value : after) totals.projection_after = Tally::max_abs(totals.projection_after, value);
  return finish(tensor, totals);
}

/** [rows, d_model]: every row w becomes s·(w − α (w B) Bᵀ). A row is whole in a chunk and one thread's. */
VerifiedTensor verify_rows(const VerifyContext& context, const TensorJob& tensor,
                           const std::function<void(uint64_t)>& on_bytes) {
  const VerifyKernelTable& kernels = best_verify_kernels();
  const size_t d = tensor.cols, rank = tensor.rank;
  const bool norm_preserving = tensor.norm_preserving;
  const uint64_t row_bytes = d * dtype_size(tensor.dtype);
  const SplitBasis split(tensor);
  const VerifyBasis basis = split.view(tensor);
  const ElementJudge judge(tensor);
  std::vector<Tally> tallies(context.pool.size());

  struct Sink {
    const ElementJudge* judge;
    const uint8_t* original;  // the row
    const uint8_t* modified;
    size_t d;
    const double* v_hi;
    const double* v_lo;
    long double scale_exact;
    Tally* tally;
  };
  auto undecided = [](void* context, size_t row, size_t col) {
    const Sink& s = *static_cast<const Sink*>(context);
    s.judge->check(s.original, s.modified, col, static_cast<uint64_t>(row) * s.d + col, col, s.v_hi, s.v_lo, 1,
                   s.scale_exact, *s.tally);
  };

  ChunkStream chunks(context, tensor);
  using Files = ChunkStream::Files;
  using Walk = ChunkStream::Walk;
  chunks.for_each(Files::both, Walk::forward, [&](size_t row0, size_t rows, const uint8_t* original,
                                                   const uint8_t* modified) {
    context.pool.parallel_for(rows, 1, [&](unsigned worker, size_t begin, size_t end) {
      Tally& tally = tallies[worker];
      std::vector<double> scratch(kVerifyScratchPerRank * (rank + 1));
      std::vector<double> sum(rank), comp(rank), v_hi(rank), v_lo(rank), update(rank), after(rank);
      std::vector<double> update_hi27(rank), update_lo27(rank), update_lo(rank);
      VectorFacts facts = facts_of(tensor, split);
      for (size_t r = begin; r < end; ++r) {
        const uint8_t* original_row = original + r * row_bytes;
        const uint8_t* modified_row = modified + r * row_bytes;
        kernels.row_sums(RowSumsJob{tensor.dtype, original_row, tensor.rank, basis, sum.data(), comp.data(),
                                    norm_preserving ? &facts.norm_sum : nullptr, &facts.norm_comp, &facts.abs_max,
                                    scratch.data()});
        facts.projection_largest = 0;
        for (size_t k = 0; k < rank; ++k) {
          finish_compensated(sum[k], comp[k], v_hi[k], v_lo[k]);
          update[k] = tensor.alpha * v_hi[k];
          facts.projection_largest = std::max(facts.projection_largest, std::fabs(v_hi[k]));
          tally.projection_before = Tally::max_abs(tally.projection_before, v_hi[k]);
        }
        facts.update_largest = split.update_largest(update.data(), 1);
        if (norm_preserving) {
          for (size_t k = 0; k < rank; ++k) {
            const ScaledProjection c = scale_projection(tensor.alpha, v_hi[k], v_lo[k]);
            update_hi27[k] = c.hi27;
            update_lo27[k] = c.lo27;
            update_lo[k] = c.lo;
          }
          kernels.row_norms(RowNormsJob{tensor.dtype, original_row, tensor.rank, basis, update.data(),
                                        update_hi27.data(), update_lo27.data(), update_lo.data(), &facts.square_sum,
                                        &facts.square_comp, scratch.data()});
        }
        const VectorTerms terms = vector_terms(facts);
        Sink sink{&judge, original_row, modified_row, d, v_hi.data(), v_lo.data(), terms.scale_exact, &tally};
        double max_ratio = 0;
        kernels.row_check(RowCheckJob{tensor.dtype, original_row, modified_row, static_cast<size_t>(row0 + r),
                                      tensor.rank, tensor.basis.data(), d, update.data(),
                                      ScreenTerms{&terms.scale, &terms.vector_error, &terms.magnitude_limit,
                                                  &terms.relative_error, &terms.update_error, &terms.slack,
                                                  &terms.absolute_error},
                                      norm_preserving, after.data(), &max_ratio, UndecidedSink{undecided, &sink},
                                      scratch.data()});
        tally.merge_ratio(max_ratio);
        for (size_t k = 0; k < rank; ++k) tally.projection_after = Tally::max_abs(tally.projection_after, after[k]);
      }
    });
    on_bytes(rows * row_bytes);
  });
  Tally totals;
  for (const Tally& tally : tallies) totals.merge(tally);
  return finish(tensor, totals);
}

}  // namespace

VerifiedTensor verify_tensor(const VerifyContext& context, const TensorJob& tensor,
                             const std::function<void(uint64_t)>& on_bytes) {
  if (tensor.bytes() == 0) return finish(tensor, Tally{});
  return tensor.d_model_axis == 0 ? verify_columns(context, tensor, on_bytes) : verify_rows(context, tensor, on_bytes);
}

}  // namespace abl
