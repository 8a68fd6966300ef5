#include "verify_tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "verify_tolerance.h"

namespace abl {

namespace {

// Work unit of the comparison: this many elements of one vector at a time, decoded into plain arrays.
// Pass A also sums each column's run of kBlock rows in one long double register before joining the
// column's compensated sum; that plain sum errs by at most kBlock·2⁻⁶⁴ of its terms, far below fp64.
constexpr size_t kBlock = 64;
// Columns decoded together in dModelAxis 0 (a multiple of the thread split's grain).
constexpr size_t kTile = 32;

struct NeumaierSum {
  long double sum = 0;
  long double comp = 0;
  void add(long double x) {
    const long double total = sum + x;
    if (std::fabs(sum) >= std::fabs(x)) {
      comp += (sum - total) + x;
    } else {
      comp += (x - total) + sum;
    }
    sum = total;
  }
  long double value() const { return std::isfinite(sum) ? sum + comp : sum; }
};

/** Elements `count` of a dtype, `stride` elements apart, as doubles (plain conversions, not dtype.h's SIMD). */
void decode_strided(const uint8_t* data, size_t first, size_t stride, size_t count, Dtype dtype, double* out) {
  switch (dtype) {
    case Dtype::F64:
      for (size_t i = 0; i < count; ++i) std::memcpy(&out[i], data + (first + i * stride) * 8, 8);
      break;
    case Dtype::F32:
      for (size_t i = 0; i < count; ++i) {
        float value;
        std::memcpy(&value, data + (first + i * stride) * 4, 4);
        out[i] = value;
      }
      break;
    case Dtype::BF16:
      for (size_t i = 0; i < count; ++i) {
        const uint8_t* p = data + (first + i * stride) * 2;
        const uint32_t bits = static_cast<uint32_t>(p[0] | (p[1] << 8)) << 16;
        float value;
        std::memcpy(&value, &bits, 4);
        out[i] = value;
      }
      break;
    case Dtype::F16:
      for (size_t i = 0; i < count; ++i) out[i] = load_element(data, first + i * stride, Dtype::F16);
      break;
  }
}

struct Tally {
  uint64_t mismatches = 0;
  double max_ulp_error = 0;
  int64_t first_index = -1;
  double first_expected = 0;
  double first_actual = 0;
  long double projection_before = 0;
  long double projection_after = 0;

  void mismatch(uint64_t index, long double reference, double actual) {
    ++mismatches;
    if (first_index < 0 || static_cast<int64_t>(index) < first_index) {
      first_index = static_cast<int64_t>(index);
      first_expected = static_cast<double>(reference);
      first_actual = actual;
    }
  }

  void merge(const Tally& other) {
    mismatches += other.mismatches;
    if (!(other.max_ulp_error <= max_ulp_error)) max_ulp_error = other.max_ulp_error;
    if (other.first_index >= 0 && (first_index < 0 || other.first_index < first_index)) {
      first_index = other.first_index;
      first_expected = other.first_expected;
      first_actual = other.first_actual;
    }
    projection_before = max_abs(projection_before, other.projection_before);
    projection_after = max_abs(projection_after, other.projection_after);
  }

  static long double max_abs(long double current, long double value) {
    // NaN wins, so a NaN projection is reported rather than hidden.
    if (std::isnan(value) || std::isnan(current)) return NAN;
    return std::max(current, std::fabs(value));
  }
};

/** ‖w‖/‖w'‖ from the two directly summed squared norms; a vanished projection keeps scale 0. */
long double scale_from_norms(long double norm_sq, long double projected_sq) {
  if (std::isnan(norm_sq) || std::isnan(projected_sq)) return NAN;
  if (!(norm_sq > 0) || !(projected_sq > 0)) return 0;
  return std::sqrt(norm_sq / projected_sq);
}

/**
 * Compares a run of `count` elements of one vector (a column piece for dModelAxis 0, a row piece for 1).
 * Basis entry k of element i is basis[k * basis_stride + i]; v_k of the vector is projection[k] (and
 * projection_exact[k] in long double); the vector's scale is scale / scale_exact.
 */
struct VectorRun {
  const double* w;
  const double* actual;
  size_t count;
  uint64_t first_index;  // row-major index of element 0
  uint64_t index_step;
  const double* basis;
  size_t basis_stride;
  const double* projection;
  const long double* projection_exact;
  double scale;
  long double scale_exact;
};

class RunChecker {
 public:
  RunChecker(const TensorJob& tensor) : tensor_(tensor), judge_(tensor.dtype), screen_(tensor.dtype) {}

  void check(const VectorRun& run, Tally& tally) {
    const unsigned rank = tensor_.rank;
    const double alpha = tensor_.alpha;
    double update[kBlock], magnitude[kBlock], decided[kBlock], error[kBlock], ulp[kBlock];
    for (size_t start = 0; start < run.count; start += kBlock) {
      const size_t count = std::min(kBlock, run.count - start);
      for (unsigned k = 0; k < rank; ++k) {
        const double v = run.projection[k];
        const double* b = run.basis + k * run.basis_stride + start;
        if (k == 0) {
          for (size_t i = 0; i < count; ++i) {
            update[i] = b[i] * v;
            magnitude[i] = std::fabs(update[i]);
          }
        } else {
          for (size_t i = 0; i < count; ++i) {
            const double term = b[i] * v;
            update[i] += term;
            magnitude[i] += std::fabs(term);
          }
        }
      }
      for (size_t i = 0; i < count; ++i) {
        update[i] *= alpha;
        magnitude[i] *= std::fabs(alpha);
      }
      screen_.screen(count, run.w + start, run.actual + start, update, magnitude, run.scale, rank, decided, error, ulp);
      for (size_t i = 0; i < count; ++i) {
        if (decided[i] == 0.0) {
          judge_exactly(run, start + i, tally);
        } else if (error[i] > tally.max_ulp_error * ulp[i]) {
          tally.max_ulp_error = error[i] / ulp[i];
        }
      }
    }
  }

 private:
  /** The long double reference, for what the screen left undecided. */
  void judge_exactly(const VectorRun& run, size_t i, Tally& tally) const {
    long double sum = 0, magnitude = 0;
    for (unsigned k = 0; k < tensor_.rank; ++k) {
      const long double term = run.basis[k * run.basis_stride + i] * run.projection_exact[k];
      sum += term;
      magnitude += std::fabs(term);
    }
    const long double alpha = tensor_.alpha;
    const long double reference = run.scale_exact * (static_cast<long double>(run.w[i]) - alpha * sum);
    if (!judge_.judge(run.actual[i], reference, run.w[i], std::fabs(alpha) * magnitude, run.scale_exact,
                      &tally.max_ulp_error)) {
      tally.mismatch(run.first_index + i * run.index_step, reference, run.actual[i]);
    }
  }

  const TensorJob& tensor_;
  ToleranceJudge judge_;
  ToleranceScreen screen_;
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
  result.projection_before = static_cast<double>(tally.projection_before);
  result.projection_after = static_cast<double>(tally.projection_after);
  return result;
}

/**
 * [d_model, cols]: every column w becomes s·(w − α B Bᵀw). Pass A sums v = Bᵀw (and ‖w‖²), pass B (only
 * norm-preserving) sums ‖w'‖² directly, pass C compares. Threads own column ranges; rows go in blocks.
 */
VerifiedTensor verify_columns(const VerifyContext& context, const TensorJob& tensor,
                              const std::function<void(uint64_t)>& on_bytes) {
  const size_t d = tensor.rows, cols = tensor.cols, rank = tensor.rank;
  const uint64_t row_bytes = cols * dtype_size(tensor.dtype);
  const uint64_t chunk_rows = std::max<uint64_t>(1, context.chunk_bytes / row_bytes);
  FileView original, modified;
  const double* basis = tensor.basis.data();
  const long double alpha = tensor.alpha;
  // Visits every (block of rows, column) of the tensor: body(worker, row, count, column, w, actual).
  auto sweep = [&](bool with_modified, const auto& body) {
    for (uint64_t row0 = 0; row0 < d; row0 += chunk_rows) {
      const uint64_t rows = std::min<uint64_t>(chunk_rows, d - row0);
      original.load(context.original, tensor.offset + row0 * row_bytes, rows * row_bytes);
      if (with_modified) modified.load(context.modified, tensor.offset + row0 * row_bytes, rows * row_bytes);
      context.pool.parallel_for(cols, kTile, [&](unsigned worker, size_t begin, size_t end) {
        // A tile of kTile columns × kBlock rows is decoded row by row (contiguous reads) and transposed,
        // so each column's run is contiguous.
        std::vector<double> w(kTile * kBlock), actual(kTile * kBlock);
        double row_values[kTile];
        for (size_t block = 0; block < rows; block += kBlock) {
          const size_t count = std::min<size_t>(kBlock, rows - block);
          for (size_t tile = begin; tile < end; tile += kTile) {
            const size_t width = std::min(kTile, end - tile);
            for (size_t i = 0; i < count; ++i) {
              decode_strided(original.data(), (block + i) * cols + tile, 1, width, tensor.dtype, row_values);
              for (size_t t = 0; t < width; ++t) w[t * kBlock + i] = row_values[t];
              if (with_modified) {
                decode_strided(modified.data(), (block + i) * cols + tile, 1, width, tensor.dtype, row_values);
                for (size_t t = 0; t < width; ++t) actual[t * kBlock + i] = row_values[t];
              }
            }
            for (size_t t = 0; t < width; ++t) {
              body(worker, row0 + block, count, tile + t, w.data() + t * kBlock, actual.data() + t * kBlock);
            }
          }
        }
      });
      if (with_modified) on_bytes(rows * row_bytes);
    }
  };

  std::vector<NeumaierSum> projection_sums(rank * cols), norm_sums(tensor.norm_preserving ? cols : 0);
  sweep(false, [&](unsigned, size_t row, size_t count, size_t j, const double* w, const double*) {
    for (size_t k = 0; k < rank; ++k) {
      const double* b = basis + k * d + row;
      long double sum = 0;
      for (size_t i = 0; i < count; ++i) sum += b[i] * static_cast<long double>(w[i]);
      projection_sums[k * cols + j].add(sum);
    }
    if (tensor.norm_preserving) {
      long double sum = 0;
      for (size_t i = 0; i < count; ++i) sum += static_cast<long double>(w[i]) * w[i];
      norm_sums[j].add(sum);
    }
  });
  // Column-major copies, so a column's v_k sit together.
  std::vector<long double> projection_exact(rank * cols);
  std::vector<double> projection(rank * cols);
  Tally totals;
  for (size_t k = 0; k < rank; ++k) {
    for (size_t j = 0; j < cols; ++j) {
      projection_exact[j * rank + k] = projection_sums[k * cols + j].value();
      projection[j * rank + k] = static_cast<double>(projection_exact[j * rank + k]);
      totals.projection_before = Tally::max_abs(totals.projection_before, projection_exact[j * rank + k]);
    }
  }
  projection_sums = {};

  std::vector<long double> scale_exact(cols, 1.0L);
  if (tensor.norm_preserving) {
    std::vector<NeumaierSum> projected_sums(cols);
    sweep(false, [&](unsigned, size_t row, size_t count, size_t j, const double* w, const double*) {
      long double sum = 0;
      for (size_t i = 0; i < count; ++i) {
        long double update = 0;
        for (size_t k = 0; k < rank; ++k) update += basis[k * d + row + i] * projection_exact[j * rank + k];
        const long double projected = w[i] - alpha * update;
        sum += projected * projected;
      }
      projected_sums[j].add(sum);
    });
    for (size_t j = 0; j < cols; ++j) scale_exact[j] = scale_from_norms(norm_sums[j].value(), projected_sums[j].value());
  }

  RunChecker checker(tensor);
  std::vector<long double> after(rank * cols, 0.0L);
  std::vector<Tally> tallies(context.pool.size());
  sweep(true, [&](unsigned worker, size_t row, size_t count, size_t j, const double* w, const double* actual) {
    const VectorRun run{w, actual, count, row * cols + j, cols, basis + row, d,
                        projection.data() + j * rank, projection_exact.data() + j * rank,
                        static_cast<double>(scale_exact[j]), scale_exact[j]};
    checker.check(run, tallies[worker]);
    for (size_t k = 0; k < rank; ++k) {
      const double* b = basis + k * d + row;
      long double sum = 0;
      for (size_t i = 0; i < count; ++i) sum += b[i] * static_cast<long double>(actual[i]);
      after[k * cols + j] += sum;
    }
  });
  for (const Tally& tally : tallies) totals.merge(tally);
  for (long double value : after) totals.projection_after = Tally::max_abs(totals.projection_after, value);
  return finish(tensor, totals);
}

/** [rows, d_model]: every row w becomes s·(w − α (w B) Bᵀ). One pass; a row is whole in a chunk. */
VerifiedTensor verify_rows(const VerifyContext& context, const TensorJob& tensor,
                           const std::function<void(uint64_t)>& on_bytes) {
  const size_t d = tensor.cols, rank = tensor.rank;
  const uint64_t row_bytes = d * dtype_size(tensor.dtype);
  const uint64_t chunk_rows = std::max<uint64_t>(1, context.chunk_bytes / row_bytes);
  FileView original, modified;
  const long double alpha = tensor.alpha;
  const double* basis = tensor.basis.data();
  RunChecker checker(tensor);
  std::vector<Tally> tallies(context.pool.size());
  for (uint64_t row0 = 0; row0 < tensor.rows; row0 += chunk_rows) {
    const uint64_t rows = std::min<uint64_t>(chunk_rows, tensor.rows - row0);
    original.load(context.original, tensor.offset + row0 * row_bytes, rows * row_bytes);
    modified.load(context.modified, tensor.offset + row0 * row_bytes, rows * row_bytes);
    context.pool.parallel_for(rows, 1, [&](unsigned worker, size_t begin, size_t end) {
      Tally& tally = tallies[worker];
      std::vector<double> w(d), actual(d), projection(rank);
      std::vector<long double> projection_exact(rank);
      for (size_t r = begin; r < end; ++r) {
        decode_strided(original.data(), r * d, 1, d, tensor.dtype, w.data());
        decode_strided(modified.data(), r * d, 1, d, tensor.dtype, actual.data());
        for (size_t k = 0; k < rank; ++k) {
          NeumaierSum sum, after;
          for (size_t i = 0; i < d; i += kBlock) {
            long double block_sum = 0, block_after = 0;
            for (size_t t = i; t < std::min(d, i + kBlock); ++t) {
              block_sum += basis[k * d + t] * static_cast<long double>(w[t]);
              block_after += basis[k * d + t] * static_cast<long double>(actual[t]);
            }
            sum.add(block_sum);
            after.add(block_after);
          }
          projection_exact[k] = sum.value();
          projection[k] = static_cast<double>(projection_exact[k]);
          tally.projection_before = Tally::max_abs(tally.projection_before, projection_exact[k]);
          tally.projection_after = Tally::max_abs(tally.projection_after, after.value());
        }
        long double scale_exact = 1.0L;
        if (tensor.norm_preserving) {
          NeumaierSum norm_sum, projected_sum;
          for (size_t i = 0; i < d; ++i) {
            long double update = 0;
            for (size_t k = 0; k < rank; ++k) update += projection_exact[k] * basis[k * d + i];
            const long double projected = w[i] - alpha * update;
            norm_sum.add(static_cast<long double>(w[i]) * w[i]);
            projected_sum.add(projected * projected);
          }
          scale_exact = scale_from_norms(norm_sum.value(), projected_sum.value());
        }
        const VectorRun run{w.data(), actual.data(), d, (row0 + r) * d, 1, basis, d,
                            projection.data(), projection_exact.data(), static_cast<double>(scale_exact), scale_exact};
        checker.check(run, tally);
      }
    });
    on_bytes(rows * row_bytes);
  }
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
