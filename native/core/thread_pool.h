// A fixed set of worker threads that run one parallel loop at a time. The caller's thread takes part,
// so a pool of n threads starts n - 1 workers. Work is split into contiguous ranges whose bounds depend
// only on the loop size and the pool size, never on timing.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace abl {

class ThreadPool {
 public:
  /**
   * threads == 0 means std::thread::hardware_concurrency(). `spin` lets idle threads poll for the next loop for up
   * to 50 µs before sleeping (thread_pool.cpp): for the forward engine's hundreds of short loops per step, not for
   * the surgery, whose few long loops leave the cores to the kernel's page-cache writeback in between.
   */
  explicit ThreadPool(unsigned threads, bool spin = false);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return size_; }

  /**
   * Calls body(worker, begin, end) over [0, count) split into at most size() ranges whose bounds are
   * multiples of `grain` (except the last). Blocks until all ranges are done; rethrows the first
   * exception a range threw.
   */
  void parallel_for(size_t count, size_t grain,
                    const std::function<void(unsigned worker, size_t begin, size_t end)>& body);

 private:
  void worker_loop(unsigned worker);
  void run_share(unsigned worker);

  unsigned size_;
  bool spin_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  // Atomic so a thread can spin on them briefly before blocking (thread_pool.cpp, wait_briefly); written under
  // mutex_ all the same, so a thread that blocks cannot miss a change.
  std::atomic<size_t> generation_{0};
  std::atomic<unsigned> pending_{0};
  bool stopping_ = false;
  // The loop being run.
  const std::function<void(unsigned, size_t, size_t)>* body_ = nullptr;
  size_t count_ = 0;
  size_t grain_ = 1;
  unsigned shares_ = 0;
  std::exception_ptr error_;
};

}  // namespace abl
