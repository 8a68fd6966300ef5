#include "shared_prefix.h"

#include <algorithm>
#include <cstring>

#include "../native_error.h"

namespace abl {
namespace fwd {
namespace {

/** Rows of one prompt per attention task, as in the plain prompt pass. */
constexpr uint32_t kAttentionRowChunk = 32;

void add_rows(Batch& batch, uint32_t prompt, const int32_t* tokens, uint32_t first_position, uint32_t count) {
  const uint32_t row0 = static_cast<uint32_t>(batch.rows);
  for (uint32_t i = 0; i < count; ++i) {
    batch.tokens.push_back(tokens[i]);
    batch.positions.push_back(first_position + i);
    batch.prompt_of_row.push_back(prompt);
  }
  for (uint32_t i = 0; i < count; i += kAttentionRowChunk) {
    batch.ranges.push_back(RowRange{row0 + i, row0 + std::min(count, i + kAttentionRowChunk), prompt});
  }
  batch.rows += count;
  batch.max_context = std::max<size_t>(batch.max_context, first_position + count);
}

}  // namespace

SharedPrefixPass::SharedPrefixPass(const ForwardJob& job, size_t hidden_size)
    : d_(hidden_size), lengths_(job.prompt_lengths), shared_(job.shared_prefix) {
  size_t offset = 0;
  for (uint32_t length : lengths_) {
    if (length <= shared_) throw_invalid_job("shared_prefix must be shorter than every prompt");
    if (!std::equal(job.tokens.begin(), job.tokens.begin() + shared_, job.tokens.begin() + offset)) {
      throw_invalid_job("shared_prefix tokens differ between prompts");
    }
    offset += length;
  }
  add_rows(prefix_, 0, job.tokens.data(), 0, static_cast<uint32_t>(shared_));
  offset = 0;
  for (uint32_t p = 0; p < lengths_.size(); ++p) {
    add_rows(suffix_, p, job.tokens.data() + offset + shared_, static_cast<uint32_t>(shared_), static_cast<uint32_t>(lengths_[p] - shared_));
    offset += lengths_[p];
  }
  x_prefix_.resize(prefix_.rows * d_);
  x_suffix_.resize(suffix_.rows * d_);
}

void TransformerEngine::share_prefix_kv(uint32_t layer, size_t length) {
  for (float* cache : {cache_k(layer), cache_v(layer)}) {
    const float* source = cache + cache_base_[0] * kv_dim_;
    for (size_t p = 1; p < cache_base_.size(); ++p) std::memcpy(cache + cache_base_[p] * kv_dim_, source, length * kv_dim_ * sizeof(float));
  }
}

void SharedPrefixPass::scatter(float* x) const {
  size_t row = 0;
  size_t suffix_row = 0;
  for (uint32_t length : lengths_) {
    std::memcpy(x + row * d_, x_prefix_.data(), shared_ * d_ * sizeof(float));
    const size_t own = length - shared_;
    std::memcpy(x + (row + shared_) * d_, x_suffix_.data() + suffix_row * d_, own * d_ * sizeof(float));
    row += length;
    suffix_row += own;
  }
}

void SharedPrefixPass::gather(const float* x) {
  std::memcpy(x_prefix_.data(), x, shared_ * d_ * sizeof(float));
  size_t row = 0;
  size_t suffix_row = 0;
  for (uint32_t length : lengths_) {
    const size_t own = length - shared_;
    std::memcpy(x_suffix_.data() + suffix_row * d_, x + (row + shared_) * d_, own * d_ * sizeof(float));
    row += length;
    suffix_row += own;
  }
}

}  // namespace fwd
}  // namespace abl
