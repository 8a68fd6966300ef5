// The engine's weights as its GEMMs see them: a layer's staged panels or stored bytes (staged_weights.h), panels
// packed once for a generation job (gemm.h PackedWeight), or the mapped checkpoint; and the linear layers on them.
#include "transformer_engine.h"

namespace abl {
namespace fwd {

void TransformerEngine::stage_layer(uint32_t layer) {
  if (kept_ && !streamed_) {
    held_[layer] = kept_->layer(layer, dense_tensors_[layer], files_, pool_);
    current_ = held_[layer].get();
    return;
  }
  // Streamed, the job holds the layer it runs (kept, or in its one buffer) and no other.
  in_use_ = kept_ ? kept_->kept(layer, streamed_kept_tensors_[layer], files_, pool_, dense_tensors_[layer].size()) : nullptr;
  if (in_use_) {
    current_ = in_use_.get();
    return;
  }
  // Generation packs each weight once for the job (gemm_matrix), from the copy as stored.
  staged_.stage(files_, dense_tensors_[layer], pack_weights_ ? nullptr : &kernels_, pool_);
  current_ = &staged_;
}

void TransformerEngine::unstage() {
  staged_.clear();
  in_use_.reset();
  current_ = &staged_;
}

const std::vector<const TensorRef*>& TransformerEngine::read_ahead_tensors(uint32_t layer) const {
  // A layer a streamed job finds kept is read no more, its routed experts included.
  static const std::vector<const TensorRef*> none;
  if (kept_ && streamed_ && kept_->is_kept(layer, streamed_kept_tensors_[layer], dense_tensors_[layer].size())) return none;
  return layer_tensors_[layer];
}

WeightMatrix TransformerEngine::gemm_matrix(const TensorRef& ref) {
  const WeightMatrix staged = current_->stacked(files_, {&ref});
  if (staged.packed) return staged;
  WeightMatrix m = matrix(ref);
  if (!pack_weights_ || !packing_fits(kernels_, m)) return m;
  auto found = packed_.find(&ref);
  if (found == packed_.end()) {
    found = packed_.emplace(&ref, pack_weight(kernels_, pool_, m)).first;
    // The packed copy takes the mapped pages' place (same bytes), unless the embedding reads them too (a tied head).
    const bool embedding = ref.file == job_.embed.file && ref.offset == job_.embed.offset;
    if (!embedding) files_.release(ref.file, ref.offset, ref.bytes());
  }
  m.packed = found->second.get();
  return m;
}

uint64_t TransformerEngine::packed_bytes(bool reused) const {
  uint64_t total = 0;
  for (const auto* map : {&packed_, &packed_stacks_}) {
    for (const auto& entry : *map) {
      if (!reused || entry.second->reused()) total += entry.second->bytes;
    }
  }
  return total;
}

const uint8_t* TransformerEngine::bytes(const TensorRef& ref) const {
  const uint8_t* staged = current_->find(ref.file, ref.offset, ref.bytes());
  return staged ? staged : files_.at(ref.file, ref.offset, ref.bytes());
}

WeightMatrix TransformerEngine::matrix(const TensorRef& ref) const {
  WeightMatrix m;
  m.data = bytes(ref);
  m.dtype = ref.dtype;
  m.transposed = ref.transposed;
  m.rows = ref.shape.empty() ? 1 : ref.transposed ? ref.shape[1] : ref.shape[0];
  m.cols = m.rows ? ref.numel() / m.rows : 0;
  return m;
}

std::vector<float> TransformerEngine::vector(const TensorRef& ref, bool add_one) const {
  std::vector<float> values(ref.numel());
  kernels_.convert(bytes(ref), ref.dtype, values.data(), values.size());
  if (add_one) {
    for (float& v : values) v = 1.0f + v;
  }
  return values;
}

void TransformerEngine::linear(const float* x, size_t rows, size_t ldx, const TensorRef& weight, const TensorRef& bias,
                               float* y, size_t ldy) {
  gemm_xwt(kernels_, pool_, x, rows, ldx, gemm_matrix(weight), y, ldy);
  add_bias(bias, rows, y, ldy);
}

void TransformerEngine::add_bias(const TensorRef& bias, size_t rows, float* y, size_t ldy) {
  if (!bias.present) return;
  const std::vector<float> b = vector(bias);
  pool_.parallel_for(rows, 16, [&](unsigned, size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) {
      float* row = y + r * ldy;
      for (size_t j = 0; j < b.size(); ++j) row[j] += b[j];
    }
  });
}

void TransformerEngine::linear_parts(const float* x, size_t rows, size_t ldx, const std::vector<const TensorRef*>& weights,
                                     const std::vector<const TensorRef*>& biases, float* y, size_t ldy) {
  WeightMatrix stacked = current_->stacked(files_, weights);
  if (pack_weights_ && !stacked.packed) {
    // Generation multiplies the stacked matrix once per new token: its panels are packed once, at the prompt pass
    // (where the staged copy lies back to back), and serve every decode step.
    auto found = packed_stacks_.find(weights[0]);
    if (found == packed_stacks_.end() && stacked.data && packing_fits(kernels_, stacked)) {
      found = packed_stacks_.emplace(weights[0], pack_weight(kernels_, pool_, stacked)).first;
    }
    if (found != packed_stacks_.end()) {
      stacked = stacked_shape(weights);
      stacked.data = bytes(*weights[0]);  // not read: the panels serve
      stacked.packed = found->second.get();
    } else {
      stacked = WeightMatrix{};
    }
  }
  if (!stacked.data) {
    for (size_t i = 0, column = 0; i < weights.size(); column += matrix(*weights[i]).rows, ++i) {
      linear(x, rows, ldx, *weights[i], *biases[i], y + column, ldy);
    }
    return;
  }
  gemm_xwt(kernels_, pool_, x, rows, ldx, stacked, y, ldy);
  for (size_t i = 0, column = 0; i < weights.size(); column += matrix(*weights[i]).rows, ++i) {
    add_bias(*biases[i], rows, y + column, ldy);
  }
}

}  // namespace fwd
}  // namespace abl
