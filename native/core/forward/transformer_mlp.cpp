// The feed-forward half of a decoder layer: dense MLPs (gated or plain, chunked over rows) and mixture-of-experts
// layers (router, top-k routed experts, optional shared expert), routed the way transformers routes them: softmax
// routers weight the experts' outputs (Mixtral, Qwen-MoE), Llama 4's sigmoid router scales their inputs.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "forward_math.h"
#include "transformer_engine.h"

namespace abl {
namespace fwd {

void TransformerEngine::mlp(const MlpWeights& w, const float* h, size_t rows, size_t inter, float* out) {
  const size_t chunk = std::min<size_t>(job_.mlp_chunk_tokens, rows);
  const bool gated = w.gate_up->present || w.gate->present;
  const size_t in_cols = gated ? 2 * inter : inter;
  ensure(mlp_in_, chunk * in_cols);
  ensure(mlp_act_, chunk * inter);
  for (size_t r0 = 0; r0 < rows; r0 += chunk) {
    const size_t n = std::min(chunk, rows - r0);
    const float* x = h + r0 * d_;
    float* in = mlp_in_.data();
    if (!gated) {
      linear(x, n, d_, *w.up, *w.up_bias, in, in_cols);
    } else if (w.gate_up->present) {
      linear(x, n, d_, *w.gate_up, TensorRef{}, in, in_cols);
    } else {
      linear_parts(x, n, d_, {w.gate, w.up}, {w.gate_bias, w.up_bias}, in, in_cols);
    }
    float* act = mlp_act_.data();
    const auto apply = activation_kernel(kernels_, spec_.activation);
    pool_.parallel_for(n, 8, [&](unsigned, size_t begin, size_t end) {
      for (size_t r = begin; r < end; ++r) {
        const float* gate = in + r * in_cols;
        const float* up = gate + inter;
        float* a = act + r * inter;
        apply(gate, gated ? up : nullptr, a, inter);
      }
    });
    linear(act, n, inter, *w.down, *w.down_bias, out + r0 * d_, d_);
  }
}

void TransformerEngine::moe(const LayerWeights& w, const float* h, size_t rows, float* out) {
  const size_t experts = spec_.num_experts;
  const size_t top = spec_.experts_per_token;
  const TensorRef none;
  ensure(moe_logits_, rows * experts);
  float* logits = moe_logits_.data();
  linear(h, rows, d_, w.router, none, logits, experts);
  // Routing as transformers does it. Softmax (Mixtral, Qwen-MoE): softmax in fp32, top-k by probability (ties to
  // the lower index), optionally renormalized over the k kept. Sigmoid (Llama 4): top-k by logit, weight
  // sigmoid(logit), applied to the expert's input.
  const bool sigmoid = spec_.router_sigmoid;
  std::vector<uint32_t> chosen(rows * top);
  std::vector<float> weight(rows * top);
  pool_.parallel_for(rows, 16, [&](unsigned, size_t begin, size_t end) {
    std::vector<uint32_t> order(experts);
    for (size_t r = begin; r < end; ++r) {
      float* p = logits + r * experts;
      if (!sigmoid) {
        float max_logit = p[0];
        for (size_t e = 1; e < experts; ++e) max_logit = std::max(max_logit, p[e]);
        float sum = 0.0f;
        for (size_t e = 0; e < experts; ++e) {
          p[e] = expf(p[e] - max_logit);
          sum += p[e];
        }
        for (size_t e = 0; e < experts; ++e) p[e] /= sum;
      }
      for (size_t e = 0; e < experts; ++e) order[e] = static_cast<uint32_t>(e);
      std::partial_sort(order.begin(), order.begin() + top, order.end(),
                        [&](uint32_t a, uint32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      float kept = 0.0f;
      for (size_t k = 0; k < top; ++k) kept += p[order[k]];
      for (size_t k = 0; k < top; ++k) {
        chosen[r * top + k] = order[k];
        const float value = p[order[k]];
        weight[r * top + k] = sigmoid ? 1.0f / (1.0f + expf(-value)) : spec_.norm_topk_prob ? value / kept : value;
      }
    }
  });
  std::fill(out, out + rows * d_, 0.0f);
  // Expert by expert in index order, each adding its weighted output to its rows (transformers' index_add_ order).
  std::vector<uint32_t> members;
  std::vector<float> member_weight;
  for (size_t e = 0; e < experts; ++e) {
    members.clear();
    member_weight.clear();
    for (size_t r = 0; r < rows; ++r) {
      for (size_t k = 0; k < top; ++k) {
        if (chosen[r * top + k] == e) {
          members.push_back(static_cast<uint32_t>(r));
          member_weight.push_back(weight[r * top + k]);
        }
      }
    }
    if (members.empty()) continue;
    const size_t n = members.size();
    ensure(moe_rows_, n * d_);
    ensure(moe_out_, n * d_);
    for (size_t i = 0; i < n; ++i) {
      float* row = &moe_rows_[i * d_];
      std::memcpy(row, h + size_t(members[i]) * d_, d_ * sizeof(float));
      if (sigmoid) {
        for (size_t j = 0; j < d_; ++j) row[j] = row[j] * member_weight[i];
      }
    }
    const ExpertWeights& x = w.experts[e];
    mlp(MlpWeights{&x.gate, &x.up, &x.gate_up, &x.down, &none, &none, &none}, moe_rows_.data(), n, spec_.moe_intermediate_size,
        moe_out_.data());
    for (size_t i = 0; i < n; ++i) {
      float* target = out + size_t(members[i]) * d_;
      const float* source = &moe_out_[i * d_];
      if (sigmoid) {
        for (size_t j = 0; j < d_; ++j) target[j] = target[j] + source[j];
      } else {
        for (size_t j = 0; j < d_; ++j) target[j] = target[j] + source[j] * member_weight[i];
      }
    }
  }
  if (w.shared_down.present) {
    ensure(shared_out_, rows * d_);
    mlp(MlpWeights{&w.shared_gate, &w.shared_up, &none, &w.shared_down, &none, &none, &none}, h, rows,
        spec_.shared_intermediate_size, shared_out_.data());
    std::vector<float> gate(rows, 1.0f);
    if (w.shared_expert_gate.present) {
      linear(h, rows, d_, w.shared_expert_gate, none, gate.data(), 1);
      for (float& g : gate) g = 1.0f / (1.0f + expf(-g));
    }
    for (size_t r = 0; r < rows; ++r) {
      for (size_t j = 0; j < d_; ++j) out[r * d_ + j] = out[r * d_ + j] + gate[r] * shared_out_[r * d_ + j];
    }
  }
}

void TransformerEngine::feed_forward(const LayerWeights& w, const float* h, size_t rows, float* out) {
  if (!w.experts.empty()) {
    moe(w, h, rows, out);
    return;
  }
  mlp(MlpWeights{&w.gate, &w.up, &w.gate_up, &w.down, &w.gate_bias, &w.up_bias, &w.down_bias}, h, rows,
      spec_.intermediate_size, out);
}

}  // namespace fwd
}  // namespace abl
