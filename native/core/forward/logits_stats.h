// Per row of logits: the greedy choice (argmax) and the log-normalizer log Σ exp, which every teacher-forced pass
// needs at each position it reads (lib/directions/forced-scores.ts: greedy matches, log-probabilities, the kept
// log-softmax distributions). JS computed them with Math.exp over the vocabulary: 1.3 s of the 32 s a one-command
// selection took on the bench model (32 000 tokens, 25 candidates), spent on the main thread while the engine
// waited. Here both cores compute them in the worker, with the forward table's polynomial exp (a few ulp) summed
// in fp64: log Z is within about 1e-7 of an fp64 log-sum-exp, far inside the logits' own arithmetic error.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../thread_pool.h"
#include "forward_kernels.h"

namespace abl {
namespace fwd {

/**
 * For each of `rows` rows of `vocab` logits: argmax[r], the first index of the largest value (NaN never wins, as
 * in a `>` scan), and logz[r] = max + log Σ_j exp(logits[j] − max), max = logits[argmax[r]].
 */
void logits_row_stats(const ForwardKernels& kernels, ThreadPool& pool, const float* logits, size_t rows, size_t vocab,
                      uint32_t* argmax, double* logz);

}  // namespace fwd
}  // namespace abl
