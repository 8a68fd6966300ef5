// The CPU projection backend: SIMD kernels (kernels.h) over a thread pool. Pass 1 splits columns across
// threads and pass 2 splits rows, so no two threads ever add into the same accumulator and the result
// does not depend on the thread count.
#include <algorithm>
#include <vector>

#include "kernels.h"
#include "projection_backend.h"
#include "projection_math.h"
#include "thread_pool.h"

namespace abl {

namespace {

class CpuBackend final : public ProjectionBackend {
 public:
  explicit CpuBackend(unsigned threads) : pool_(threads), kernels_(best_kernels()) {
    scratch_.resize(pool_.size());
  }

  const char* name() const override { return "cpu"; }

  void begin_tensor(const TensorJob& tensor) override {
    tensor_ = &tensor;
    const size_t rank = tensor.rank;
    for (auto& scratch : scratch_) scratch.assign(rank * kScratchPerRank, 0.0);
    if (tensor.d_model_axis != 0) return;
    const size_t cols = tensor.cols;
    projection_sum_.assign(rank * cols, 0.0);
    projection_comp_.assign(rank * cols, 0.0);
    projection_.assign(rank * cols, 0.0);
    if (tensor.norm_preserving) {
      norm_sum_.assign(cols, 0.0);
      norm_comp_.assign(cols, 0.0);
      scale_.assign(cols, 0.0);
    } else {
      norm_sum_.clear();
      norm_comp_.clear();
      scale_.clear();
    }
  }

  void accumulate_columns(const uint8_t* chunk, size_t rows, size_t row0) override {
    const TensorJob& tensor = *tensor_;
    ColumnAccumulation job{};
    job.dtype = tensor.dtype;
    job.data = chunk;
    job.rows = rows;
    job.cols = tensor.cols;
    job.row0 = row0;
    job.basis = tensor.basis.data();
    job.d_model = tensor.rows;
    job.rank = tensor.rank;
    job.projection_sum = projection_sum_.data();
    job.projection_comp = projection_comp_.data();
    job.norm_sum = tensor.norm_preserving ? norm_sum_.data() : nullptr;
    job.norm_comp = tensor.norm_preserving ? norm_comp_.data() : nullptr;
    pool_.parallel_for(tensor.cols, kColumnGrain, [&](unsigned, size_t begin, size_t end) {
      kernels_.accumulate_columns(job, begin, end);
    });
  }

  void finish_accumulation() override {
    const TensorJob& tensor = *tensor_;
    const size_t cols = tensor.cols;
    const unsigned rank = tensor.rank;
    pool_.parallel_for(cols, kColumnGrain, [&](unsigned, size_t begin, size_t end) {
      for (size_t j = begin; j < end; ++j) {
        DoubleDouble projection_sq{0.0, 0.0};
        for (unsigned k = 0; k < rank; ++k) {
          const DoubleDouble v = finish_sum(projection_sum_[k * cols + j], projection_comp_[k * cols + j]);
          projection_[k * cols + j] = v.hi;
          projection_sq = dd_add(projection_sq, dd_square(v));
        }
        if (tensor.norm_preserving) {
          scale_[j] = norm_preserving_scale(finish_sum(norm_sum_[j], norm_comp_[j]), projection_sq, tensor.alpha);
        }
      }
    });
  }

  void rewrite_rows(const uint8_t* in, uint8_t* out, size_t rows, size_t row0) override {
    const TensorJob& tensor = *tensor_;
    ColumnRewrite job{};
    job.dtype = tensor.dtype;
    job.in = in;
    job.out = out;
    job.cols = tensor.cols;
    job.row0 = row0;
    job.basis = tensor.basis.data();
    job.d_model = tensor.rows;
    job.rank = tensor.rank;
    job.alpha = tensor.alpha;
    job.projection = projection_.data();
    job.scale = tensor.norm_preserving ? scale_.data() : nullptr;
    pool_.parallel_for(rows, 1, [&](unsigned worker, size_t begin, size_t end) {
      kernels_.rewrite_rows(job, begin, end, scratch_[worker].data());
    });
  }

  void project_rows(const uint8_t* in, uint8_t* out, size_t rows) override {
    const TensorJob& tensor = *tensor_;
    RowProjection job{};
    job.dtype = tensor.dtype;
    job.in = in;
    job.out = out;
    job.d_model = tensor.cols;
    job.basis = tensor.basis.data();
    job.rank = tensor.rank;
    job.alpha = tensor.alpha;
    job.norm_preserving = tensor.norm_preserving;
    pool_.parallel_for(rows, 1, [&](unsigned worker, size_t begin, size_t end) {
      kernels_.project_rows(job, begin, end, scratch_[worker].data());
    });
  }

 private:
  // Column ranges handed to threads are multiples of this, so each thread's share is whole SIMD vectors
  // (and whole cache lines of accumulators).
  static constexpr size_t kColumnGrain = 64;

  ThreadPool pool_;
  const KernelTable& kernels_;
  const TensorJob* tensor_ = nullptr;
  std::vector<std::vector<double>> scratch_;
  std::vector<double> projection_sum_, projection_comp_, projection_;
  std::vector<double> norm_sum_, norm_comp_, scale_;
};

}  // namespace

std::unique_ptr<ProjectionBackend> make_cpu_backend(unsigned threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace abl
