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

PrefixSharing::PrefixSharing(const ForwardJob& job, size_t hidden_size) : d_(hidden_size), job_(job) {
  const size_t prompts = job.prompt_lengths.size();
  if (job.prefix_source.size() != prompts || job.prefix_length.size() != prompts) {
    throw_invalid_job("prefixSource and prefixLength need one entry per prompt");
  }
  size_t row = 0;
  for (uint32_t length : job.prompt_lengths) {
    first_row_.push_back(row);
    row += length;
  }
  for (uint32_t p = 0; p < prompts; ++p) {
    const uint32_t shared = job.prefix_length[p];
    const int32_t* tokens = job.tokens.data() + first_row_[p];
    if (shared > 0) {
      const uint32_t source = job.prefix_source[p];
      if (source >= p) throw_invalid_job("a prompt's shared prefix must come from an earlier prompt");
      if (shared >= job.prompt_lengths[p]) throw_invalid_job("a shared prefix must leave its prompt a token of its own");
      if (shared > job.prompt_lengths[source] || !std::equal(tokens, tokens + shared, job.tokens.data() + first_row_[source])) {
        throw_invalid_job("a shared prefix's tokens differ from its source prompt's");
      }
      own_.kv_shares.push_back(KvShare{p, source, shared});
    }
    add_rows(own_, p, tokens + shared, shared, job.prompt_lengths[p] - shared);
  }
  x_own_.resize(own_.rows * d_);
}

void PrefixSharing::scatter(const float* own_rows, float* x) const {
  size_t own_row = 0;
  for (uint32_t p = 0; p < job_.prompt_lengths.size(); ++p) {
    const size_t shared = job_.prefix_length[p];
    const size_t own = job_.prompt_lengths[p] - shared;
    if (shared > 0) std::memcpy(x + first_row_[p] * d_, x + first_row_[job_.prefix_source[p]] * d_, shared * d_ * sizeof(float));
    std::memcpy(x + (first_row_[p] + shared) * d_, own_rows + own_row * d_, own * d_ * sizeof(float));
    own_row += own;
  }
}

void PrefixSharing::gather(const float* x) {
  size_t own_row = 0;
  for (uint32_t p = 0; p < job_.prompt_lengths.size(); ++p) {
    const size_t shared = job_.prefix_length[p];
    const size_t own = job_.prompt_lengths[p] - shared;
    std::memcpy(x_own_.data() + own_row * d_, x + (first_row_[p] + shared) * d_, own * d_ * sizeof(float));
    own_row += own;
  }
}

void TransformerEngine::copy_shared_kv(uint32_t layer, const Batch& batch) {
  for (const KvShare& share : batch.kv_shares) {
    for (float* cache : {cache_k(layer), cache_v(layer)}) {
      std::memcpy(cache + cache_base_[share.prompt] * kv_dim_, cache + cache_base_[share.source] * kv_dim_, share.length * kv_dim_ * sizeof(float));
    }
  }
}

}  // namespace fwd
}  // namespace abl
