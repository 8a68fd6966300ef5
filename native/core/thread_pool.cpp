#include "thread_pool.h"

#include <algorithm>

namespace abl {

ThreadPool::ThreadPool(unsigned threads) {
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
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    run_share(worker);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
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
    pending_ = size_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  run_share(0);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    error = error_;
    body_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace abl
