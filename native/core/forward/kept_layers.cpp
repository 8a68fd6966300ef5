#include "kept_layers.h"

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

  /** Frees the layers unless `keep` and they were kept for `mappings` and `pack`; with `keep`, they are now. */
  void claim(const std::vector<std::shared_ptr<const FileMapping>>& mappings, const ForwardKernels* pack, bool keep) {
    std::vector<std::shared_ptr<const StagedWeights>> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (keep && mappings == mappings_ && pack == pack_) return;
      dropped.swap(layers_);
      bytes_ = 0;
      mappings_ = keep ? mappings : std::vector<std::shared_ptr<const FileMapping>>{};
      pack_ = keep ? pack : nullptr;
    }
    // Freed outside the lock; a job still running on one of them holds its own reference.
  }

  std::shared_ptr<const StagedWeights> find(const std::vector<std::shared_ptr<const FileMapping>>& mappings, const ForwardKernels* pack,
                                            uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (mappings != mappings_ || pack != pack_ || layer >= layers_.size() || !layers_[layer]) return nullptr;
    return layers_[layer]->staged_from(groups, pack) ? layers_[layer] : nullptr;
  }

  /**
   * Keeps `staged` as layer `layer` if the store is still this job's (another job may have claimed it since) and
   * every kept layer then takes at most `limit` bytes.
   */
  void put(const std::vector<std::shared_ptr<const FileMapping>>& mappings, const ForwardKernels* pack, uint32_t layer,
           std::shared_ptr<const StagedWeights> staged, uint64_t limit) {
    std::shared_ptr<const StagedWeights> replaced;
    std::lock_guard<std::mutex> lock(mutex_);
    if (mappings != mappings_ || pack != pack_) return;
    if (layers_.size() <= layer) layers_.resize(layer + 1);
    const uint64_t without = bytes_ - (layers_[layer] ? layers_[layer]->held_bytes() : 0);
    if (without + staged->held_bytes() > limit) return;
    replaced = std::move(layers_[layer]);
    layers_[layer] = std::move(staged);
    bytes_ = without + layers_[layer]->held_bytes();
  }

  void clear() { claim({}, nullptr, false); }

  uint64_t bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::shared_ptr<const FileMapping>> mappings_;
  const ForwardKernels* pack_ = nullptr;
  std::vector<std::shared_ptr<const StagedWeights>> layers_;
  uint64_t bytes_ = 0;  // the layers' held bytes
};

}  // namespace

KeptLayers::KeptLayers(const MappedFiles& files, const ForwardKernels* pack, uint64_t keep_bytes) : pack_(pack), keep_bytes_(keep_bytes) {
  for (uint32_t file = 0; file < files.count(); ++file) mappings_.push_back(files.mapping(file));
  KeptStore::instance().claim(mappings_, pack_, keep_bytes_ > 0);
}

std::shared_ptr<const StagedWeights> KeptLayers::layer(uint32_t layer, const std::vector<std::vector<const TensorRef*>>& groups,
                                                       const MappedFiles& files, ThreadPool& pool) {
  if (std::shared_ptr<const StagedWeights> kept = KeptStore::instance().find(mappings_, pack_, layer, groups)) {
    found_bytes_ += kept->staged_bytes();
    return kept;
  }
  auto staged = std::make_shared<StagedWeights>();
  staged->stage(files, groups, pack_, pool);
  staged->drop_read_buffers();
  read_bytes_ += staged->staged_bytes();
  if (keep_bytes_ > 0) KeptStore::instance().put(mappings_, pack_, layer, staged, keep_bytes_);
  return staged;
}

void release_kept_layers() {
  KeptStore::instance().clear();
  trim_large_mappings(large_mapping_epoch());
}

uint64_t kept_layer_bytes() { return KeptStore::instance().bytes(); }

}  // namespace fwd
}  // namespace abl
