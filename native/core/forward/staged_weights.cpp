#include "staged_weights.h"

#include <algorithm>

#include "dynamic_for.h"

namespace abl {
namespace fwd {
namespace {

/** Bytes per read of stored bytes: large enough that the syscall is noise, small enough to share between threads. */
constexpr uint64_t kSliceBytes = uint64_t(2) << 20;
/** Stored bytes read per packing task: in L2 while they are packed (at least one panel's rows). */
constexpr uint64_t kPackReadBytes = uint64_t(256) << 10;

size_t rows_of(const TensorRef& ref) { return ref.shape.empty() ? 1 : ref.shape[0]; }
size_t cols_of(const TensorRef& ref) { return rows_of(ref) ? ref.numel() / rows_of(ref) : 0; }

/** Matrices of one dtype and depth, stored row-major: what can be read as one stacked matrix. */
bool stackable(const std::vector<const TensorRef*>& group) {
  for (const TensorRef* ref : group) {
    if (ref->shape.size() != 2 || ref->transposed || ref->dtype != group[0]->dtype || cols_of(*ref) != cols_of(*group[0])) return false;
  }
  return true;
}

std::vector<const TensorRef*> pointers(const std::vector<TensorRef>& refs) {
  std::vector<const TensorRef*> out;
  for (const TensorRef& ref : refs) out.push_back(&ref);
  return out;
}

bool same_tensors(const std::vector<TensorRef>& a, const std::vector<const TensorRef*>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!same_tensor(a[i], *b[i])) return false;
  }
  return true;
}

}  // namespace

bool same_tensor(const TensorRef& a, const TensorRef& b) {
  return a.present == b.present && a.transposed == b.transposed && a.file == b.file && a.offset == b.offset && a.dtype == b.dtype &&
         a.shape == b.shape;
}

bool StagedWeights::staged_from(const std::vector<std::vector<const TensorRef*>>& groups, const ForwardKernels* pack, size_t packed_groups) const {
  if (pack != pack_ || groups.size() != groups_.size() || std::min(packed_groups, groups.size()) != std::min(packed_groups_, groups_.size())) return false;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (!same_tensors(groups_[g], groups[g])) return false;
  }
  return true;
}

WeightMatrix stacked_shape(const std::vector<const TensorRef*>& group) {
  WeightMatrix m;
  m.dtype = group[0]->dtype;
  m.cols = cols_of(*group[0]);
  for (const TensorRef* ref : group) m.rows += rows_of(*ref);
  return m;
}

void StagedWeights::clear() {
  ranges_.clear();
  panels_.clear();
  groups_.clear();
  held_bytes_ = 0;
}

uint64_t StagedWeights::plan(const std::vector<std::vector<const TensorRef*>>& groups, const ForwardKernels* pack, size_t packed_groups) {
  clear();
  pack_ = pack;
  packed_groups_ = packed_groups;
  size_t end = 0;
  for (const std::vector<const TensorRef*>& group : groups) {
    const bool packable = groups_.size() < packed_groups;
    groups_.emplace_back();
    for (const TensorRef* ref : group) groups_.back().push_back(*ref);
    // A group starts on a cache line: panels must (gemm.h), and the kernels load stored bytes unaligned, so no
    // result depends on where they lie.
    end = (end + 63) / 64 * 64;
    if (pack && packable && stackable(group) && packing_fits(*pack, stacked_shape(group))) {
      Panels panels{groups_.back(), std::make_unique<PackedWeight>(), end};
      plan_panels(*pack, stacked_shape(group), *panels.layout);
      end += panels.layout->bytes;
      panels_.push_back(std::move(panels));
      continue;
    }
    for (const TensorRef* ref : group) {
      ranges_.push_back(Range{ref->file, ref->offset, ref->bytes(), end});
      end += ref->bytes();
    }
  }
  held_bytes_ = end;
  return held_bytes_;
}

void StagedWeights::stage(const MappedFiles& files, const std::vector<std::vector<const TensorRef*>>& groups,
                          const ForwardKernels* pack, ThreadPool& pool, size_t packed_groups) {
  const uint64_t end = plan(groups, pack, packed_groups);
  for (const std::vector<const TensorRef*>& group : groups) {
    for (const TensorRef* ref : group) staged_bytes_ += ref->bytes();
  }
  if (buffer_.size() < end + 64) {
    buffer_ = LargeVector<uint8_t>();  // the old storage goes first, so the new one may reuse its pages
    buffer_.resize(end + 64);
  }

  // Tasks: slices of stored bytes, and runs of whole panels whose rows fill about kPackReadBytes.
  struct Task {
    const Range* range;
    const Panels* panels;
    uint64_t begin, count;  // bytes of the range, or panels
  };
  std::vector<Task> tasks;
  size_t row_buffer_bytes = 0;
  for (const Range& range : ranges_) {
    for (uint64_t begin = 0; begin < range.bytes; begin += kSliceBytes) {
      tasks.push_back(Task{&range, nullptr, begin, std::min(kSliceBytes, range.bytes - begin)});
    }
  }
  for (Panels& panels : panels_) {
    panels.layout->borrow(base() + panels.at);
    const WeightMatrix m = stacked_shape(pointers(panels.members));
    const size_t nr = panels.layout->recipe->nr;
    const size_t panel_count = (m.rows + nr - 1) / nr;
    const size_t panel_read = nr * m.cols * dtype_size(m.dtype);
    const size_t per_task = std::max<size_t>(1, kPackReadBytes / panel_read);
    row_buffer_bytes = std::max(row_buffer_bytes, per_task * panel_read);
    for (size_t first = 0; first < panel_count; first += per_task) {
      tasks.push_back(Task{nullptr, &panels, first, std::min(per_task, panel_count - first)});
    }
  }
  if (row_buffers_.size() < pool.size()) row_buffers_.resize(pool.size());
  for (unsigned i = 0; i < pool.size(); ++i) {
    if (row_buffers_[i].size() < row_buffer_bytes) row_buffers_[i].resize(row_buffer_bytes);
  }
  dynamic_for(pool, tasks.size(), [&](unsigned worker, size_t i) {
    const Task& task = tasks[i];
    if (task.panels) {
      read_packed(files, *task.panels, task.begin, task.count, row_buffers_[worker]);
    } else {
      files.read(task.range->file, task.range->offset + task.begin, task.count, base() + task.range->at + task.begin);
    }
  });
}

void StagedWeights::read_packed(const MappedFiles& files, const Panels& panels, size_t first, size_t count,
                                std::vector<uint8_t>& rows) {
  const PackedWeight& layout = *panels.layout;
  const WeightMatrix m = stacked_shape(pointers(panels.members));
  const size_t nr = layout.recipe->nr;
  const size_t row_bytes = m.cols * dtype_size(m.dtype);
  const size_t row_begin = first * nr;
  const size_t row_end = std::min(m.rows, (first + count) * nr);
  // The stacked rows [row_begin, row_end), from whichever members hold them.
  size_t member_begin = 0;
  for (const TensorRef& ref : panels.members) {
    const size_t member_end = member_begin + rows_of(ref);
    const size_t a = std::max(row_begin, member_begin), b = std::min(row_end, member_end);
    if (a < b) files.read(ref.file, ref.offset + (a - member_begin) * row_bytes, (b - a) * row_bytes, rows.data() + (a - row_begin) * row_bytes);
    member_begin = member_end;
  }
  for (size_t q = first; q < first + count; ++q) {
    pack_panel(layout, rows.data() + (q * nr - row_begin) * row_bytes, m.dtype, m.cols, std::min(nr, m.rows - q * nr), m.cols,
               layout.data + q * layout.k_blocks * layout.panel_bytes);
  }
}

const uint8_t* StagedWeights::find(uint32_t file, uint64_t offset, uint64_t bytes) const {
  for (const Range& range : ranges_) {
    if (range.file == file && range.offset == offset && range.bytes == bytes) return base() + range.at;
  }
  return nullptr;
}

WeightMatrix StagedWeights::stacked(const MappedFiles& files, const std::vector<const TensorRef*>& tensors) const {
  for (const Panels& panels : panels_) {
    if (!same_tensors(panels.members, tensors)) continue;
    WeightMatrix m = stacked_shape(tensors);
    m.data = files.at(tensors[0]->file, tensors[0]->offset, tensors[0]->bytes());
    m.packed = panels.layout.get();
    return m;
  }
  if (tensors.empty() || !stackable(tensors)) return WeightMatrix{};
  WeightMatrix m = stacked_shape(tensors);
  const uint8_t* next = nullptr;
  for (const TensorRef* ref : tensors) {
    const uint8_t* data = find(ref->file, ref->offset, ref->bytes());
    if (!data || (next && data != next)) return WeightMatrix{};
    if (!next) m.data = data;
    next = data + ref->bytes();
  }
  return m;
}

}  // namespace fwd
}  // namespace abl
