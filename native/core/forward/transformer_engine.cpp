#include "transformer_engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "forward_math.h"

namespace abl {
namespace fwd {

TransformerEngine::TransformerEngine(const ForwardJob& job, const MappedFiles& files, ThreadPool& pool,
                                     const ForwardKernels& kernels, bool use_kv_cache, size_t max_positions, KeptLayers* kept)
    : job_(job), spec_(job.spec), files_(files), pool_(pool), kernels_(kernels), use_kv_cache_(use_kv_cache), kept_(kept),
      streamed_(job.mode == Mode::Streamed) {
  d_ = spec_.hidden_size;
  q_dim_ = size_t(spec_.num_heads) * spec_.head_dim;
  kv_dim_ = size_t(spec_.num_kv_heads) * spec_.head_dim;
  qkv_cols_ = q_dim_ + 2 * kv_dim_;

  layer_tensors_.resize(job.layers.size());
  dense_tensors_.reserve(job.layers.size());
  for (size_t l = 0; l < job.layers.size(); ++l) {
    const LayerWeights& w = job.layers[l];
    for (const TensorRef* ref :
         {&w.input_norm, &w.input_norm_bias, &w.q, &w.k, &w.v, &w.qkv, &w.q_bias, &w.k_bias, &w.v_bias, &w.qkv_bias,
          &w.q_norm, &w.k_norm, &w.o, &w.o_bias, &w.post_attention_norm, &w.pre_mlp_norm, &w.pre_mlp_norm_bias,
          &w.post_mlp_norm, &w.gate, &w.up, &w.gate_up, &w.down, &w.gate_bias, &w.up_bias, &w.down_bias}) {
      if (ref->present) layer_tensors_[l].push_back(ref);
    }
    for (const TensorRef* ref : {&w.router, &w.shared_gate, &w.shared_up, &w.shared_down, &w.shared_expert_gate}) {
      if (ref->present) layer_tensors_[l].push_back(ref);
    }
    // Staged back to back: q, k and v, and gate and up, each read by one GEMM as a stacked matrix (staged_weights.h).
    std::vector<std::vector<const TensorRef*>> groups;
    const auto stacked_group = [&](std::vector<const TensorRef*> group) {
      if (std::all_of(group.begin(), group.end(), [](const TensorRef* ref) { return ref->present; })) groups.push_back(group);
    };
    stacked_group({&w.q, &w.k, &w.v});
    stacked_group({&w.gate, &w.up});
    stacked_group({&w.shared_gate, &w.shared_up});
    for (const TensorRef* ref : layer_tensors_[l]) {
      if (std::none_of(groups.begin(), groups.end(), [&](const auto& group) { return std::find(group.begin(), group.end(), ref) != group.end(); })) {
        groups.push_back({ref});
      }
    }
    dense_tensors_.push_back(groups);
    for (const ExpertWeights& expert : w.experts) {
      for (const TensorRef* ref : {&expert.gate, &expert.up, &expert.gate_up, &expert.down}) {
        if (ref->present) layer_tensors_[l].push_back(ref);
      }
      stacked_group({&expert.gate, &expert.up});
      for (const TensorRef* ref : {&expert.gate_up, &expert.down}) {
        if (ref->present) groups.push_back({ref});
      }
    }
    streamed_kept_tensors_.push_back(std::move(groups));
  }

  // HF computes the angle as one fp32 product inv_freq · position, takes its cos/sin in fp32, then scales.
  for (const RopeTable& table : job.rope_tables) {
    const size_t half = table.rotary_dim / 2;
    std::vector<float> cos_values(max_positions * half), sin_values(max_positions * half);
    for (size_t pos = 0; pos < max_positions; ++pos) {
      for (size_t i = 0; i < half; ++i) {
        const float angle = table.inv_freq[i] * static_cast<float>(pos);
        cos_values[pos * half + i] = static_cast<float>(std::cos(static_cast<double>(angle))) * table.attention_scaling;
        sin_values[pos * half + i] = static_cast<float>(std::sin(static_cast<double>(angle))) * table.attention_scaling;
      }
    }
    rope_cos_.push_back(std::move(cos_values));
    rope_sin_.push_back(std::move(sin_values));
  }

  use_edit(job.edit);

  pack_weights_ = job.mode == Mode::Resident && job.max_new_tokens > 0;
  if (kept_ && !streamed_) held_.resize(job.layers.size());
  if (use_kv_cache_) {
    size_t rows = 0;
    for (uint32_t length : job.prompt_lengths) {
      cache_base_.push_back(rows);
      rows += length + job.max_new_tokens;
    }
    cache_rows_ = rows;
    cache_slots_ = job.max_new_tokens > 0 ? job.layers.size() : 1;
    kv_cache_.assign(cache_slots_ * 2 * rows * kv_dim_, 0.0f);
  }
}

void TransformerEngine::use_edit(const ForwardEdit& edit) {
  edit_ = &edit;
  basis_offset_.clear();
  basis_rank_.clear();
  if (!edit.ablate) return;
  size_t offset = 0;
  for (uint32_t rank : edit.ablation.ranks) {
    basis_offset_.push_back(offset);
    basis_rank_.push_back(rank);
    offset += size_t(rank) * d_;
  }
}

void TransformerEngine::norm(const float* x, size_t rows, size_t ldx, const TensorRef& weight, const TensorRef& bias,
                             float* y, size_t ldy, size_t dim, size_t groups) {
  const bool layer_norm = spec_.norm_kind == NormKind::LayerNorm;
  const std::vector<float> w = vector(weight, !layer_norm && spec_.norm_add_one);
  const std::vector<float> b = bias.present ? vector(bias) : std::vector<float>();
  const float eps = spec_.norm_eps;
  pool_.parallel_for(rows * groups, 16, [&](unsigned, size_t begin, size_t end) {
    for (size_t v = begin; v < end; ++v) {
      const float* in = x + (v / groups) * ldx + (v % groups) * dim;
      float* out = y + (v / groups) * ldy + (v % groups) * dim;
      if (layer_norm) {
        const double sum = sum_products_f64(in, nullptr, dim);
        const float mean = static_cast<float>(sum / dim);
        const double squares = sum_centered_squares_f64(in, mean, dim);
        const float inv = 1.0f / std::sqrt(static_cast<float>(squares / dim) + eps);
        for (size_t i = 0; i < dim; ++i) {
          const float v = (in[i] - mean) * inv * w[i];
          out[i] = b.empty() ? v : v + b[i];
        }
      } else {
        const double squares = sum_products_f64(in, in, dim);
        const float inv = 1.0f / std::sqrt(static_cast<float>(squares / dim) + eps);
        for (size_t i = 0; i < dim; ++i) out[i] = w[i] * (in[i] * inv);
      }
    }
  });
}

void TransformerEngine::unit_rms_norm(float* x, size_t rows, size_t ldx, size_t dim, size_t groups) {
  const float eps = spec_.norm_eps;
  pool_.parallel_for(rows * groups, 16, [&](unsigned, size_t begin, size_t end) {
    for (size_t v = begin; v < end; ++v) {
      float* values = x + (v / groups) * ldx + (v % groups) * dim;
      const double squares = sum_products_f64(values, values, dim);
      const float inv = 1.0f / std::sqrt(static_cast<float>(squares / dim) + eps);
      for (size_t i = 0; i < dim; ++i) values[i] = values[i] * inv;
    }
  });
}

void TransformerEngine::ablate(float* rows, size_t count, uint32_t stream, double alpha) {
  if (!edit_->ablate || alpha == 0.0) return;
  const size_t b = basis_rank_.size() == 1 ? 0 : stream;
  const size_t k = basis_rank_[b];
  if (k == 0) return;
  const float* basis = edit_->ablation.basis.data() + basis_offset_[b];
  pool_.parallel_for(count, 16, [&](unsigned, size_t begin, size_t end) {
    std::vector<double> coefficient(k);
    for (size_t r = begin; r < end; ++r) {
      float* row = rows + r * d_;
      for (size_t j = 0; j < k; ++j) {
        const float* direction = basis + j * d_;
        coefficient[j] = sum_products_f64(direction, row, d_) * alpha;
      }
      for (size_t i = 0; i < d_; ++i) {
        double delta = 0.0;
        for (size_t j = 0; j < k; ++j) delta += coefficient[j] * basis[j * d_ + i];
        row[i] = static_cast<float>(double(row[i]) - delta);
      }
    }
  });
}

void TransformerEngine::embed(const Batch& batch, float* x) {
  const WeightMatrix table = matrix(job_.embed);
  const size_t size = dtype_size(table.dtype);
  const bool learned_positions = job_.position_embed.present;
  const WeightMatrix positions = learned_positions ? matrix(job_.position_embed) : WeightMatrix{};
  pool_.parallel_for(batch.rows, 16, [&](unsigned, size_t begin, size_t end) {
    std::vector<float> position_row(learned_positions ? d_ : 0);
    for (size_t r = begin; r < end; ++r) {
      float* row = x + r * d_;
      kernels_.convert(table.data + size_t(batch.tokens[r]) * d_ * size, table.dtype, row, d_);
      if (learned_positions) {
        kernels_.convert(positions.data + size_t(batch.positions[r]) * d_ * dtype_size(positions.dtype), positions.dtype,
                         position_row.data(), d_);
        for (size_t i = 0; i < d_; ++i) row[i] += position_row[i];
      }
      if (spec_.embedding_scale != 1.0f) kernels_.scale(spec_.embedding_scale, row, d_);
    }
  });
  if (edit_->ablate) ablate(x, batch.rows, 0, edit_->ablation.embedding_alpha);
}

void TransformerEngine::attention_write(uint32_t l, const Batch& batch, const float* x, float* write) {
  const LayerWeights& w = job_.layers[l];
  const size_t rows = batch.rows;
  const unsigned hd = spec_.head_dim;
  float* qkv = qkv_.data();
  // OLMo-2 has no norm in front of attention: the projections read the stream itself.
  const float* h = x;
  if (w.input_norm.present) {
    norm(x, rows, d_, w.input_norm, w.input_norm_bias, h_.data(), d_, d_);
    h = h_.data();
  }
  if (w.qkv.present) {
    linear(h, rows, d_, w.qkv, w.qkv_bias, qkv, qkv_cols_);
    if (spec_.qkv_per_head) {
      // GPT-NeoX rows are [q_h; k_h; v_h] per head: regroup into all q heads, then all k, then all v.
      pool_.parallel_for(rows, 16, [&](unsigned, size_t begin, size_t end) {
        std::vector<float> row(qkv_cols_);
        for (size_t r = begin; r < end; ++r) {
          float* values = qkv + r * qkv_cols_;
          std::copy(values, values + qkv_cols_, row.begin());
          for (unsigned head = 0; head < spec_.num_heads; ++head) {
            for (unsigned part = 0; part < 3; ++part) {
              std::copy(&row[(size_t(head) * 3 + part) * hd], &row[(size_t(head) * 3 + part + 1) * hd],
                        values + part * q_dim_ + size_t(head) * hd);
            }
          }
        }
      });
    }
  } else {
    linear_parts(h, rows, d_, {&w.q, &w.k, &w.v}, {&w.q_bias, &w.k_bias, &w.v_bias}, qkv, qkv_cols_);
  }
  // q/k norms before RoPE: per head (Qwen 3, Gemma 3), or over the whole projection (OLMo-2).
  const size_t q_norm_dim = spec_.qk_norm_whole ? q_dim_ : hd;
  const size_t k_norm_dim = spec_.qk_norm_whole ? kv_dim_ : hd;
  if (w.q_norm.present) norm(qkv, rows, qkv_cols_, w.q_norm, TensorRef{}, qkv, qkv_cols_, q_norm_dim, q_dim_ / q_norm_dim);
  if (w.k_norm.present) {
    norm(qkv + q_dim_, rows, qkv_cols_, w.k_norm, TensorRef{}, qkv + q_dim_, qkv_cols_, k_norm_dim, kv_dim_ / k_norm_dim);
  }
  if (!job_.rope_tables.empty() && w.use_rope) {
    const RopeTable& table = job_.rope_tables[w.rope_table];
    const size_t half = table.rotary_dim / 2;
    const float* cos_table = rope_cos_[w.rope_table].data();
    const float* sin_table = rope_sin_[w.rope_table].data();
    const bool interleaved = spec_.rope_interleaved;
    pool_.parallel_for(rows, 16, [&](unsigned, size_t begin, size_t end) {
      for (size_t r = begin; r < end; ++r) {
        const size_t pos = batch.positions[r];
        float* row = qkv + r * qkv_cols_;
        for (unsigned head = 0; head < spec_.num_heads + spec_.num_kv_heads; ++head) {
          if (interleaved) {
            apply_rope_interleaved(row + size_t(head) * hd, cos_table + pos * half, sin_table + pos * half, table.rotary_dim);
          } else {
            apply_rope(row + size_t(head) * hd, cos_table + pos * half, sin_table + pos * half, table.rotary_dim);
          }
        }
      }
    });
  }
  // Llama 4, in its order: L2 norm of the q and k heads after RoPE, temperature tuning of q on NoPE layers.
  if (w.qk_l2_norm) unit_rms_norm(qkv, rows, qkv_cols_, hd, spec_.num_heads + spec_.num_kv_heads);
  if (w.temperature_tuning) {
    pool_.parallel_for(rows, 16, [&](unsigned, size_t begin, size_t end) {
      for (size_t r = begin; r < end; ++r) {
        const float t = attention_temperature(batch.positions[r], spec_.temperature_floor_scale, spec_.temperature_scale);
        kernels_.scale(t, qkv + r * qkv_cols_, q_dim_);
      }
    });
  }

  KvView kv;
  if (use_kv_cache_) {
    float* cache_k = this->cache_k(l);
    float* cache_v = this->cache_v(l);
    for (size_t r = 0; r < rows; ++r) {
      const size_t target = cache_base_[batch.prompt_of_row[r]] + batch.positions[r];
      std::memcpy(cache_k + target * kv_dim_, qkv + r * qkv_cols_ + q_dim_, kv_dim_ * sizeof(float));
      std::memcpy(cache_v + target * kv_dim_, qkv + r * qkv_cols_ + q_dim_ + kv_dim_, kv_dim_ * sizeof(float));
    }
    copy_shared_kv(l, batch);
    kv = KvView{cache_k, cache_v, kv_dim_, cache_base_.data()};
  } else {
    kv = KvView{qkv + q_dim_, qkv + q_dim_ + kv_dim_, qkv_cols_, batch.prompt_first_row.data()};
  }
  AttentionShape shape;
  shape.heads = spec_.num_heads;
  shape.kv_heads = spec_.num_kv_heads;
  shape.head_dim = hd;
  shape.scale = spec_.attention_scale > 0.0f ? spec_.attention_scale : 1.0f / std::sqrt(static_cast<float>(hd));
  shape.softcap = spec_.attn_logit_softcap;
  shape.window = w.sliding_window;
  shape.chunk = w.attention_chunk;
  attend(kernels_, pool_, shape, qkv, qkv_cols_, kv, batch.ranges, batch.positions.data(), attn_.data(), q_dim_,
         batch.max_context);

  linear(attn_.data(), rows, q_dim_, w.o, w.o_bias, write, d_);
  if (w.post_attention_norm.present) norm(write, rows, d_, w.post_attention_norm, TensorRef{}, write, d_, d_);
}

void TransformerEngine::layer(uint32_t l, const Batch& batch, float* x) {
  // Decode steps run on the layers the job kept (or took kept) at its prompt pass: their panels serve every step.
  if (kept_ && l < held_.size() && held_[l]) current_ = held_[l].get();
  const LayerWeights& w = job_.layers[l];
  const size_t rows = batch.rows;
  ensure(h_, rows * d_);
  ensure(qkv_, rows * qkv_cols_);
  ensure(attn_, rows * q_dim_);
  ensure(write_, rows * d_);
  float* h = h_.data();
  float* write = write_.data();
  // Both writers of layer l write into residual stream l + 1.
  const uint32_t stream = l + 1;
  const double attention_alpha = edit_->ablate ? edit_->ablation.attention_alpha[l] : 0.0;
  const double mlp_alpha = edit_->ablate ? edit_->ablation.mlp_alpha[l] : 0.0;

  attention_write(l, batch, x, write);
  ablate(write, rows, stream, attention_alpha);

  if (spec_.parallel_residual) {
    // GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x)), both branches reading the same x.
    ensure(parallel_write_, rows * d_);
    std::swap(write_, parallel_write_);
    write = write_.data();
    norm(x, rows, d_, w.pre_mlp_norm, w.pre_mlp_norm_bias, h, d_, d_);
    feed_forward(w, h, rows, write);
    ablate(write, rows, stream, mlp_alpha);
    const float* attn_write = parallel_write_.data();
    for (size_t i = 0; i < rows * d_; ++i) x[i] = write[i] + attn_write[i] + x[i];
    return;
  }
  for (size_t i = 0; i < rows * d_; ++i) x[i] += write[i];
  // OLMo-2 has no norm in front of the MLP either.
  const float* mlp_in = x;
  if (w.pre_mlp_norm.present) {
    norm(x, rows, d_, w.pre_mlp_norm, w.pre_mlp_norm_bias, h, d_, d_);
    mlp_in = h;
  }
  feed_forward(w, mlp_in, rows, write);
  if (w.post_mlp_norm.present) norm(write, rows, d_, w.post_mlp_norm, TensorRef{}, write, d_, d_);
  ablate(write, rows, stream, mlp_alpha);
  for (size_t i = 0; i < rows * d_; ++i) x[i] += write[i];
}

void TransformerEngine::final_norm(const float* x, const std::vector<uint32_t>& rows, float* out) {
  std::vector<float> gathered(rows.size() * d_);
  for (size_t i = 0; i < rows.size(); ++i) std::memcpy(&gathered[i * d_], x + size_t(rows[i]) * d_, d_ * sizeof(float));
  norm(gathered.data(), rows.size(), d_, job_.final_norm, job_.final_norm_bias, out, d_, d_);
}

void TransformerEngine::logits(const float* normed, size_t rows, size_t v_begin, size_t v_end, float* out, size_t ldo) {
  gemm_xwt(kernels_, pool_, normed, rows, d_, gemm_matrix(job_.lm_head), v_begin, v_end, out + v_begin, ldo);
  std::vector<float> bias;
  if (job_.lm_head_bias.present) bias = vector(job_.lm_head_bias);
  const float cap = spec_.final_logit_softcap;
  if (bias.empty() && cap <= 0.0f) return;
  // Rows × vocabulary slices over the pool: a 256 000-token row's soft-cap alone is a few ms on one core.
  const size_t slice = 16384;
  const size_t slices = (v_end - v_begin + slice - 1) / slice;
  pool_.parallel_for(rows * slices, 1, [&](unsigned, size_t begin, size_t end) {
    for (size_t task = begin; task < end; ++task) {
      float* row = out + (task / slices) * ldo;
      const size_t from = v_begin + (task % slices) * slice;
      const size_t to = std::min(v_end, from + slice);
      if (!bias.empty()) for (size_t v = from; v < to; ++v) row[v] += bias[v];
      if (cap > 0.0f) kernels_.soft_cap(row + from, to - from, cap);
    }
  });
}

}  // namespace fwd
}  // namespace abl
