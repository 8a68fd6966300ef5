// Work sharing for the forward engine: every pool thread takes the next unclaimed index from a shared counter.
// The native ThreadPool splits loops into fixed ranges (right for the exactness-first projection kernels); here a
// descheduled thread on a busy machine would then hold up its whole range. Each index's arithmetic does not depend
// on which thread runs it, so results stay deterministic.
#pragma once

#include <atomic>
#include <cstddef>

#include "../thread_pool.h"

namespace abl {
namespace fwd {

/** Calls body(worker, index) once for every index in [0, count). */
template <class Body>
void dynamic_for(ThreadPool& pool, size_t count, const Body& body) {
  if (count == 0) return;
  std::atomic<size_t> next{0};
  const size_t workers = count < pool.size() ? count : pool.size();
  pool.parallel_for(workers, 1, [&](unsigned worker, size_t, size_t) {
    for (size_t index = next++; index < count; index = next++) body(worker, index);
  });
}

}  // namespace fwd
}  // namespace abl
