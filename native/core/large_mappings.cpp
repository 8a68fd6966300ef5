#include "large_mappings.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

#include "native_error.h"

namespace abl {
namespace {

constexpr size_t kHuge = size_t(2) << 20;

size_t rounded_length(size_t bytes) { return (std::max<size_t>(bytes, 1) + kHuge - 1) / kHuge * kHuge; }

/**
 * Mappings given back, for the next buffers of the same rounded length: the pipeline runs one job per batch of
 * prompts and one per scored candidate, each allocating the same shapes again. Given-back pages are MADV_FREE: the
 * kernel takes them back under memory pressure as it does page cache, and until it does, writing into them again
 * costs no fault. A page it took back faults in zeroed, which is as good: every user writes before it reads
 * (std::vector value-initializes; packing writes every byte the micro-kernel reads).
 */
class KeptMappings {
 public:
  static KeptMappings& instance() {
    static KeptMappings* kept = new KeptMappings();  // never destroyed: jobs may still run at exit
    return *kept;
  }
  uint8_t* take(size_t length) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = kept_.size(); i-- > 0;) {
      if (kept_[i].length != length) continue;
      uint8_t* data = kept_[i].data;
      kept_.erase(kept_.begin() + static_cast<std::ptrdiff_t>(i));
      reused_bytes_ += length;
      return data;
    }
    return nullptr;
  }
  void give(uint8_t* data, size_t length) {
#ifdef MADV_FREE
    if (madvise(data, length, MADV_FREE) == 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      kept_.push_back({data, length, ++epoch_});
      // A model has a few shapes per layer; past this many the oldest are no one's shape any more.
      if (kept_.size() > kMaxKept) {
        munmap(kept_.front().data, kept_.front().length);
        kept_.erase(kept_.begin());
      }
      return;
    }
#endif
    munmap(data, length);
  }
  uint64_t epoch() {
    std::lock_guard<std::mutex> lock(mutex_);
    return epoch_;
  }
  uint64_t reused_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return reused_bytes_;
  }
  void trim(uint64_t epoch) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto stale = std::remove_if(kept_.begin(), kept_.end(), [&](const Kept& k) {
      if (k.epoch > epoch) return false;
      munmap(k.data, k.length);
      return true;
    });
    kept_.erase(stale, kept_.end());
  }

 private:
  struct Kept {
    uint8_t* data;
    size_t length;
    uint64_t epoch;  // when it was given back
  };
  static constexpr size_t kMaxKept = 4096;
  std::mutex mutex_;
  std::vector<Kept> kept_;  // oldest first
  uint64_t epoch_ = 0;
  uint64_t reused_bytes_ = 0;
};

}  // namespace

LargeMapping map_large(size_t bytes) {
  const size_t length = rounded_length(bytes);
  LargeMapping mapping;
  if (uint8_t* data = KeptMappings::instance().take(length)) {
    mapping.data = data;
    mapping.reused = true;
    return mapping;
  }
  // Over-map by one huge page and cut the ends off, so the mapping itself is 2 MB aligned and its length alone
  // says what to unmap. On the default THP setting ("madvise") MADV_HUGEPAGE makes it fault once per 2 MB.
  void* base = mmap(nullptr, length + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    throw NativeError(error_code::kIo, "cannot map " + std::to_string(length) + " bytes of buffers: " +
                                           std::strerror(errno));
  }
  const uintptr_t start = reinterpret_cast<uintptr_t>(base);
  const uintptr_t aligned = (start + kHuge - 1) & ~uintptr_t(kHuge - 1);
  if (aligned > start) munmap(base, aligned - start);
  if (start + kHuge > aligned) munmap(reinterpret_cast<void*>(aligned + length), start + kHuge - aligned);
  mapping.data = reinterpret_cast<uint8_t*>(aligned);
#ifdef MADV_HUGEPAGE
  madvise(mapping.data, length, MADV_HUGEPAGE);
#endif
  return mapping;
}

void unmap_large(void* data, size_t bytes) {
  if (data) KeptMappings::instance().give(static_cast<uint8_t*>(data), rounded_length(bytes));
}

uint64_t large_bytes_reused() { return KeptMappings::instance().reused_bytes(); }

uint64_t large_mapping_epoch() { return KeptMappings::instance().epoch(); }

void trim_large_mappings(uint64_t epoch) { KeptMappings::instance().trim(epoch); }

}  // namespace abl
