#include "kept_layers.h"

#include <algorithm>
#include <mutex>

#include "../large_mappings.h"

namespace abl {
namespace fwd {
namespace {

/** The process's kept layers: one model's, in one kernel table, indexed by layer. */
class KeptStore {
 public:
  static KeptStore& instance() {
    static KeptStore* store = new KeptStore();  // never destroyed: jobs may still run at exit
    return *store;
  }

  /**
   * Frees the layers unless `limit` > 0 and they were kept for `mappings` and `pack`; with `limit` > 0 they are now,
   * and the last layers go until all take at most `limit` bytes (a job may leave less room than the one that kept
   * them: a streamed job keeps only what its budget leaves beside its pass). Says whether any layer went.
   */
  bool claim(const std::vector<std::shared_ptr<const FileMapping>>& mappings, const ForwardKernels* pack, uint64_t limit) {
    std::vector<std::shared_ptr<const StagedWeights>> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (limit > 0 && mappings == mappings_ && pack == pack_) {
        for (size_t l = layers_.size(); l-- > 0 && bytes_ > limit;) {
          if (!layers_[l]) continue;
          bytes_ -= layers_[l]->held_bytes();
          dropped.push_back(std::move(layers_[l]));
        }
        return !dropped.empty();
      }
      const bool keep = limit > 0;
      dropped.swap(layers_);
      bytes_ = 0;
      mappings_ = keep ? mappings : std::vector<std::shared_ptr<const FileMapping>>{};
      pack_ = keep ? pack : nullptr;
    }
    // Freed outside the lock; a job still running on one of them holds its own reference.
    return std::any_of(dropped.begin(), dropped.end(), [](const auto& layer) { return layer != nullptr; });
  }

  std::shared_ptr<const StagedWeights> find(const std::vector<std::shared_ptr<const FileMapping>>& mappings, const ForwardKernels* pack,
                                            uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups, size_t packed_groups) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (mappings != mappings_ || pack != pack_ || layer >= layers_.size() || !layers_[layer]) return nullptr;
    return layers_[layer]->staged_from(groups, pack, packed_groups) ? layers_[layer] : nullptr;
  }

  /**
   * Whether layer `layer` taking `bytes` would be kept: the store is still this job's (another job may have claimed
   * it since) and every kept layer then takes at most `limit` bytes.
   */
  bool fits(const std::vector<std::shared_ptr<const FileMapping>>& mappings, const ForwardKernels* pack, uint32_t layer,
            uint64_t bytes, uint64_t limit) {
    std::lock_guard<std::mutex> lock(mutex_);
    return fits_locked(mappings, pack, layer, bytes, limit);
  }

  /** Keeps `staged` as layer `layer` where it fits (fits()); says whether it did. */
  bool put(const std::vector<std::shared_ptr<const FileMapping>>& mappings, const ForwardKernels* pack, uint32_t layer,
           std::shared_ptr<const StagedWeights> staged, uint64_t limit) {
    std::shared_ptr<const StagedWeights> replaced;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!fits_locked(mappings, pack, layer, staged->held_bytes(), limit)) return false;
    if (layers_.size() <= layer) layers_.resize(layer + 1);
    bytes_ -= layers_[layer] ? layers_[layer]->held_bytes() : 0;
    replaced = std::move(layers_[layer]);
    layers_[layer] = std::move(staged);
    bytes_ += layers_[layer]->held_bytes();
    return true;
  }

  void clear() { claim({}, nullptr, 0); }

  uint64_t bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
  }

 private:
  bool fits_locked(const std::vector<std::shared_ptr<const FileMapping>>& mappings, const ForwardKernels* pack, uint32_t layer,
                   uint64_t bytes, uint64_t limit) const {
    if (mappings != mappings_ || pack != pack_) return false;
    const uint64_t replaced = layer < layers_.size() && layers_[layer] ? layers_[layer]->held_bytes() : 0;
    return bytes_ - replaced + bytes <= limit;
  }

  std::mutex mutex_;
  std::vector<std::shared_ptr<const FileMapping>> mappings_;
  const ForwardKernels* pack_ = nullptr;
  std::vector<std::shared_ptr<const StagedWeights>> layers_;
  uint64_t bytes_ = 0;  // the layers' held bytes
};

}  // namespace

KeptLayers::KeptLayers(const MappedFiles& files, const ForwardKernels* pack, uint64_t keep_bytes) : pack_(pack), keep_bytes_(keep_bytes) {
  for (uint32_t file = 0; file < files.count(); ++file) mappings_.push_back(files.mapping(file));
  // Freed layers' buffers are given back for reuse (large_mappings.h), but no later buffer has a kept layer's
  // size: unmapped now, they leave the process at once, not when this job ends (a streamed job that trims the
  // kept layers counts on that room). The earlier job's given-back buffers go too, and this job faults its own
  // in anew: about 35 µs per 2 MB page, only when kept layers go.
  if (KeptStore::instance().claim(mappings_, pack_, keep_bytes_)) trim_large_mappings(large_mapping_epoch());
}

bool KeptLayers::is_kept(uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups, size_t packed_groups) const {
  return KeptStore::instance().find(mappings_, pack_, layer, groups, packed_groups) != nullptr;
}

std::shared_ptr<const StagedWeights> KeptLayers::kept(uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups,
                                                      const MappedFiles& files, ThreadPool& pool, size_t packed_groups) {
  KeptStore& store = KeptStore::instance();
  if (std::shared_ptr<const StagedWeights> found = store.find(mappings_, pack_, layer, groups, packed_groups)) {
    found_bytes_ += found->staged_bytes();
    return found;
  }
  if (keep_bytes_ == 0) return nullptr;
  auto staged = std::make_shared<StagedWeights>();
  if (!store.fits(mappings_, pack_, layer, staged->plan(groups, pack_, packed_groups), keep_bytes_)) return nullptr;
  read_into(*staged, groups, files, pool, packed_groups);
  // Kept unless another job claimed the store meanwhile: read already, it serves this job's use either way.
  store.put(mappings_, pack_, layer, staged, keep_bytes_);
  return staged;
}

std::shared_ptr<const StagedWeights> KeptLayers::layer(uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups,
                                                       const MappedFiles& files, ThreadPool& pool) {
  if (std::shared_ptr<const StagedWeights> found = kept(layer, groups, files, pool)) return found;
  auto staged = std::make_shared<StagedWeights>();
  read_into(*staged, groups, files, pool, SIZE_MAX);
  return staged;
}

void KeptLayers::read_into(StagedWeights& staged, const std::vector<std::vector<const TensorRef*>>& groups, const MappedFiles& files,
                           ThreadPool& pool, size_t packed_groups) {
  staged.stage(files, groups, pack_, pool, packed_groups);
  staged.drop_read_buffers();
  read_bytes_ += staged.staged_bytes();
}

void release_kept_layers() {
  KeptStore::instance().clear();
  trim_large_mappings(large_mapping_epoch());
}

uint64_t kept_layer_bytes() { return KeptStore::instance().bytes(); }

}  // namespace fwd
}  // namespace abl
