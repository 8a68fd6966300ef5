// Large anonymous buffers on transparent huge pages, kept between jobs for reuse: the forward engine's, its results'
// hidden and logits arrays (handed to JS without a copy; the pages come back when JS drops them), and the shard
// jobs' chunk buffers (file_io.h).
//
// On the project's VMs a fresh 4 KB page costs about 10 µs to fault in (800 MB: 2.1–2.3 s on one thread), a fresh
// 2 MB page about 35 µs, and a page of a mapping the process used before nothing. The engine's big buffers (packed
// weight panels, packed X, activation scratch, the KV cache) were std::vectors on 4 KB pages, faulted in anew by
// every job: 31 000 faults per capture of the bench model, 50 000 per generation. On huge pages they also take far
// fewer TLB entries, which the GEMM's streaming of packed X needs. Alternated on the bench model: a capture ran
// 3.01–3.22 → 2.66–2.85 s (faults 31 000 → 11 300), a generation 3.60–5.02 → 3.23–3.53 s. glibc has its own THP
// switch for malloc (GLIBC_TUNABLES=glibc.malloc.hugetlb=1: 2.90–3.00 s), which a library cannot set for its host
// process, hence this allocator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace abl {

/** A mapping from map_large: 2 MB aligned, the bytes asked for rounded up to 2 MB. */
struct LargeMapping {
  uint8_t* data = nullptr;
  /** Whether the pages come from a mapping an earlier buffer gave back (already faulted in, contents stale). */
  bool reused = false;
};

/** Maps at least `bytes` (throws NativeError when the system has no memory), reusing a given-back mapping of the size. */
LargeMapping map_large(size_t bytes);
/** Gives the mapping of map_large(bytes) at `data` back for reuse (MADV_FREE: the kernel may take its pages under
 * memory pressure) or unmaps it. */
void unmap_large(void* data, size_t bytes);

/** Bytes of mappings map_large handed out again so far in this process (they cost no faults). */
uint64_t large_bytes_reused();

/** A count that rises with every mapping given back; a job reads it when it starts. */
uint64_t large_mapping_epoch();
/**
 * Unmaps the kept mappings given back before `epoch` and not taken since: called when a job ends with the epoch it
 * started at, so the process keeps at most what that job gave back, the shapes the next job most likely has.
 */
void trim_large_mappings(uint64_t epoch);

/** Declared first in a job, so that it ends last: the process then keeps the mappings this job gave back, and none older. */
class KeepThisJobsMappings {
 public:
  KeepThisJobsMappings() : epoch_(large_mapping_epoch()) {}
  KeepThisJobsMappings(const KeepThisJobsMappings&) = delete;
  KeepThisJobsMappings& operator=(const KeepThisJobsMappings&) = delete;
  ~KeepThisJobsMappings() { trim_large_mappings(epoch_); }

 private:
  uint64_t epoch_;
};

/**
 * Below this, buffers use the ordinary heap: rounding up to 2 MB pages would waste most of them. At 4 MB the engine's
 * activation buffers of a few hundred rows (1–4 MB) came from the heap, whose pages glibc hands back and faults in
 * anew every job: 1 740 faults per scoring pass of the bench model (8 prompts, 16 logits rows each), 208 at 1 MB,
 * alternated 2–4 % faster. Rounding up to whole huge pages wastes under 2 MB a buffer.
 */
constexpr size_t kLargeBufferBytes = size_t(1) << 20;

/** std::allocator, except that allocations of kLargeBufferBytes or more come from map_large. */
template <class T>
struct LargeAllocator {
  using value_type = T;
  LargeAllocator() = default;
  template <class U>
  LargeAllocator(const LargeAllocator<U>&) {}
  T* allocate(size_t n) {
    if (n * sizeof(T) < kLargeBufferBytes) return static_cast<T*>(::operator new(n * sizeof(T)));
    return reinterpret_cast<T*>(map_large(n * sizeof(T)).data);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kLargeBufferBytes) {
      ::operator delete(p);
      return;
    }
    unmap_large(p, n * sizeof(T));
  }
  template <class U>
  bool operator==(const LargeAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const LargeAllocator<U>&) const { return false; }
};

/** A vector whose storage, when large, lies on huge pages and is reused across jobs. */
template <class T>
using LargeVector = std::vector<T, LargeAllocator<T>>;

}  // namespace abl
