#include "thread_pool.h"

#include <algorithm>
#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace abl {
namespace {

/**
 * Spins until ready() or about 50 µs have passed (the caller then blocks, re-checking under the mutex). A forward pass runs hundreds of parallel loops per
 * decode step, with microseconds of serial work between them: sleeping on the condition variable after each cost a
 * futex wake-up per loop, about 23 µs a round trip on a 2-core VM, several percent of a generation run. Spinning
 * first catches the next loop (or the last worker finishing) in well under a microsecond; the bound keeps an idle
 * pool from burning a core.
 */
template <class Ready>
void wait_briefly(const Ready& ready) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + std::chrono::microseconds(50);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return;
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#endif
    }
    if (Clock::now() >= deadline) return;
  }
}

}  // namespace

ThreadPool::ThreadPool(unsigned threads, bool spin) : spin_(spin) {
  size_ = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned worker = 1; worker < size_; ++worker) workers_.emplace_back([this, worker] { worker_loop(worker); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& thread : workers_) thread.join();
}

void ThreadPool::run_share(unsigned worker) {
  if (worker >= shares_) return;
  // Share boundaries in units of grain, spread as evenly as possible.
  const size_t units = (count_ + grain_ - 1) / grain_;
  const size_t begin = std::min(count_, units * worker / shares_ * grain_);
  const size_t end = std::min(count_, units * (worker + 1) / shares_ * grain_);
  if (begin >= end) return;
  try {
    (*body_)(worker, begin, end);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker_loop(unsigned worker) {
  size_t seen = 0;
  for (;;) {
    if (spin_) wait_briefly([&] { return generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_.load(std::memory_order_relaxed) != seen; });
      if (stopping_) return;
      seen = generation_.load(std::memory_order_relaxed);
    }
    run_share(worker);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // The caller may be blocked on done_: notify under the mutex, which it holds from its check to its wait.
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(size_t count, size_t grain,
                              const std::function<void(unsigned, size_t, size_t)>& body) {
  if (count == 0) return;
  grain = std::max<size_t>(1, grain);
  const size_t units = (count + grain - 1) / grain;
  const unsigned shares = static_cast<unsigned>(std::min<size_t>(size_, units));
  if (shares <= 1) {
    body(0, 0, count);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    grain_ = grain;
    shares_ = shares;
    error_ = nullptr;
    pending_.store(size_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_share(0);
  std::exception_ptr error;
  if (spin_) wait_briefly([&] { return pending_.load(std::memory_order_acquire) == 0; });
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    error = error_;
    body_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace abl
