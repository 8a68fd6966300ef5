// Rate-limits progress callbacks to one every 50 ms (plus the final one), so a fast shard does not
// flood the JavaScript event loop. Safe to advance from several threads (apply copies and projects at
// the same time); the callback is called under the lock, so reports never go backwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

#include "shard_job.h"

namespace abl {

class ProgressThrottle {
 public:
  ProgressThrottle(const ProgressCallback& callback, uint64_t total) : callback_(callback), total_(total) {}

  void advance(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ += bytes;
    if (!callback_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ >= std::chrono::milliseconds(50)) {
      last_ = now;
      callback_(done_, total_);
    }
  }

  void finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (callback_) callback_(done_, total_);
  }

 private:
  std::mutex mutex_;
  const ProgressCallback& callback_;
  uint64_t total_;
  uint64_t done_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace abl
