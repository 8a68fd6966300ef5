// Checks a ForwardJob before any maths runs: every tensor the engine will read has the shape the maths assumes
// and lies inside its file, and every index (token, row, layer, table) is in range. TypeScript checks the same
// things with friendlier messages; this is what keeps the native side memory-safe whatever it is given.
#include "forward_validate.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "../native_error.h"

namespace abl {
namespace fwd {
namespace {

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

void expect_shape(const TensorRef& ref, const std::vector<uint64_t>& shape, const std::string& what, const MappedFiles& files) {
  if (!ref.present) throw_invalid_job(what + " is missing");
  std::vector<uint64_t> stored = shape;
  if (ref.transposed) {
    if (shape.size() != 2) throw_invalid_job(what + " cannot be stored transposed");
    std::swap(stored[0], stored[1]);
  }
  if (ref.shape != stored) {
    throw_invalid_job(what + " has shape " + shape_text(ref.shape) + ", expected " + shape_text(stored),
                      ref.file < files.count() ? files.path(ref.file) : "");
  }
  files.at(ref.file, ref.offset, ref.bytes());
}

void expect_optional(const TensorRef& ref, const std::vector<uint64_t>& shape, const std::string& what, const MappedFiles& files) {
  if (ref.present) expect_shape(ref, shape, what, files);
}

/** The hooks of one edit: bases, strengths and the addition fit the model and are finite. `what` prefixes messages. */
void validate_edit(const ForwardEdit& edit, const ModelSpec& s, const std::string& what) {
  const uint64_t d = s.hidden_size;
  if (edit.ablate) {
    const Ablation& a = edit.ablation;
    if (a.ranks.size() != 1 && a.ranks.size() != uint64_t(s.num_layers) + 1) {
      throw_invalid_job(what + "ablation needs one basis or one per residual stream (num_layers + 1)");
    }
    uint64_t rows = 0;
    for (uint32_t rank : a.ranks) {
      if (rank > d) throw_invalid_job(what + "an ablation basis has more rows than hidden_size");
      rows += rank;
    }
    if (a.basis.size() != rows * d) throw_invalid_job(what + "ablation bases do not hold Σ ranks × hidden_size values");
    for (float v : a.basis) {
      if (!std::isfinite(v)) throw_invalid_job(what + "ablation basis holds NaN or Inf");
    }
    if (a.attention_alpha.size() != s.num_layers || a.mlp_alpha.size() != s.num_layers) {
      throw_invalid_job(what + "ablation strengths are not one per layer for attention and for the MLP");
    }
    bool finite = std::isfinite(a.embedding_alpha);
    for (double alpha : a.attention_alpha) finite = finite && std::isfinite(alpha);
    for (double alpha : a.mlp_alpha) finite = finite && std::isfinite(alpha);
    if (!finite) throw_invalid_job(what + "an ablation strength is NaN or Inf");
  }
  if (edit.add) {
    if (edit.addition.vector.size() != d) throw_invalid_job(what + "addition vector is not hidden_size long");
    if (edit.addition.point > s.num_layers) throw_invalid_job(what + "addition point is past the last layer");
    for (float v : edit.addition.vector) {
      if (!std::isfinite(v)) throw_invalid_job(what + "addition vector holds NaN or Inf");
    }
  }
}

}  // namespace

void validate_forward_job(const ForwardJob& job, const MappedFiles& files) {
  const ModelSpec& s = job.spec;
  if (s.hidden_size == 0 || s.num_layers == 0 || s.num_heads == 0 || s.num_kv_heads == 0 || s.head_dim == 0 ||
      s.vocab_size == 0) {
    throw_invalid_job("model spec has a zero dimension");
  }
  if (s.num_heads % s.num_kv_heads != 0) throw_invalid_job("num_heads is not a multiple of num_kv_heads");
  if (s.qkv_per_head && s.num_heads != s.num_kv_heads) throw_invalid_job("per-head fused qkv needs as many KV heads as heads");
  if (job.layers.size() != s.num_layers) throw_invalid_job("layer count differs from num_layers");
  const uint64_t d = s.hidden_size;
  const uint64_t q_dim = uint64_t(s.num_heads) * s.head_dim;
  const uint64_t kv_dim = uint64_t(s.num_kv_heads) * s.head_dim;
  const uint64_t inter = s.intermediate_size;

  expect_shape(job.embed, {s.vocab_size, d}, "embedding", files);
  if (job.position_embed.present) {
    if (job.position_embed.shape.size() != 2 || job.position_embed.shape[1] != d) {
      throw_invalid_job("position embedding must be [positions, hidden_size]");
    }
    files.at(job.position_embed.file, job.position_embed.offset, job.position_embed.bytes());
  }
  expect_shape(job.final_norm, {d}, "final norm", files);
  expect_optional(job.final_norm_bias, {d}, "final norm bias", files);
  const bool need_head = !job.logits_rows.empty() || job.max_new_tokens > 0;
  if (need_head) expect_shape(job.lm_head, {s.vocab_size, d}, "lm_head", files);
  expect_optional(job.lm_head_bias, {s.vocab_size}, "lm_head bias", files);

  for (const RopeTable& table : job.rope_tables) {
    if (table.rotary_dim % 2 != 0 || table.rotary_dim > s.head_dim || table.inv_freq.size() != table.rotary_dim / 2) {
      throw_invalid_job("a RoPE table does not fit head_dim");
    }
  }

  for (uint32_t l = 0; l < s.num_layers; ++l) {
    const LayerWeights& w = job.layers[l];
    const std::string at = "layer " + std::to_string(l) + " ";
    expect_optional(w.input_norm, {d}, at + "input norm", files);
    expect_optional(w.input_norm_bias, {d}, at + "input norm bias", files);
    if (w.qkv.present) {
      expect_shape(w.qkv, {q_dim + 2 * kv_dim, d}, at + "fused qkv", files);
      expect_optional(w.qkv_bias, {q_dim + 2 * kv_dim}, at + "fused qkv bias", files);
    } else {
      expect_shape(w.q, {q_dim, d}, at + "q_proj", files);
      expect_shape(w.k, {kv_dim, d}, at + "k_proj", files);
      expect_shape(w.v, {kv_dim, d}, at + "v_proj", files);
      expect_optional(w.q_bias, {q_dim}, at + "q_proj bias", files);
      expect_optional(w.k_bias, {kv_dim}, at + "k_proj bias", files);
      expect_optional(w.v_bias, {kv_dim}, at + "v_proj bias", files);
    }
    expect_optional(w.q_norm, {s.qk_norm_whole ? q_dim : s.head_dim}, at + "q_norm", files);
    expect_optional(w.k_norm, {s.qk_norm_whole ? kv_dim : s.head_dim}, at + "k_norm", files);
    expect_shape(w.o, {d, q_dim}, at + "o_proj", files);
    expect_optional(w.o_bias, {d}, at + "o_proj bias", files);
    expect_optional(w.post_attention_norm, {d}, at + "post-attention norm", files);
    expect_optional(w.pre_mlp_norm, {d}, at + "pre-MLP norm", files);
    if (s.parallel_residual && !w.pre_mlp_norm.present) throw_invalid_job(at + "needs a pre-MLP norm (parallel residual)");
    expect_optional(w.pre_mlp_norm_bias, {d}, at + "pre-MLP norm bias", files);
    expect_optional(w.post_mlp_norm, {d}, at + "post-MLP norm", files);
    if (!job.rope_tables.empty() && w.rope_table >= job.rope_tables.size()) throw_invalid_job(at + "names a missing RoPE table");
    if (w.temperature_tuning && !(s.temperature_floor_scale > 0.0f && std::isfinite(s.temperature_scale))) {
      throw_invalid_job(at + "uses attention temperature tuning without a positive floor scale");
    }
    if (!w.experts.empty()) {
      const uint64_t moe = s.moe_intermediate_size;
      if (w.experts.size() != s.num_experts || s.experts_per_token == 0 || s.experts_per_token > s.num_experts) {
        throw_invalid_job(at + "has " + std::to_string(w.experts.size()) + " experts, the spec says " + std::to_string(s.num_experts));
      }
      expect_shape(w.router, {s.num_experts, d}, at + "router", files);
      for (size_t e = 0; e < w.experts.size(); ++e) {
        const ExpertWeights& x = w.experts[e];
        const std::string ex = at + "expert " + std::to_string(e) + " ";
        if (x.gate_up.present) {
          expect_shape(x.gate_up, {2 * moe, d}, ex + "gate_up", files);
        } else {
          expect_shape(x.gate, {moe, d}, ex + "gate", files);
          expect_shape(x.up, {moe, d}, ex + "up", files);
        }
        expect_shape(x.down, {d, moe}, ex + "down", files);
      }
      if (w.shared_down.present) {
        const uint64_t shared = s.shared_intermediate_size;
        expect_shape(w.shared_gate, {shared, d}, at + "shared expert gate_proj", files);
        expect_shape(w.shared_up, {shared, d}, at + "shared expert up_proj", files);
        expect_shape(w.shared_down, {d, shared}, at + "shared expert down_proj", files);
        expect_optional(w.shared_expert_gate, {1, d}, at + "shared_expert_gate", files);
      }
      continue;
    }
    if (s.gated_mlp) {
      if (w.gate_up.present) {
        expect_shape(w.gate_up, {2 * inter, d}, at + "fused gate_up", files);
      } else {
        expect_shape(w.gate, {inter, d}, at + "gate_proj", files);
        expect_shape(w.up, {inter, d}, at + "up_proj", files);
        expect_optional(w.gate_bias, {inter}, at + "gate_proj bias", files);
      }
    } else {
      expect_shape(w.up, {inter, d}, at + "MLP input projection", files);
    }
    expect_optional(w.up_bias, {inter}, at + "up_proj bias", files);
    expect_shape(w.down, {d, inter}, at + "down_proj", files);
    expect_optional(w.down_bias, {d}, at + "down_proj bias", files);
  }

  if (job.prompt_lengths.empty()) throw_invalid_job("no prompts");
  uint64_t total = 0;
  uint64_t longest = 0;
  for (uint32_t length : job.prompt_lengths) {
    if (length == 0) throw_invalid_job("a prompt has no tokens");
    total += length;
    longest = std::max<uint64_t>(longest, length);
  }
  if (total != job.tokens.size()) throw_invalid_job("prompt lengths do not add up to the token count");
  for (int32_t token : job.tokens) {
    if (token < 0 || static_cast<uint64_t>(token) >= s.vocab_size) {
      throw_invalid_job("token id " + std::to_string(token) + " is outside the vocabulary (" + std::to_string(s.vocab_size) + ")");
    }
  }
  if (job.position_embed.present && longest + job.max_new_tokens > job.position_embed.shape[0]) {
    throw_invalid_job("a prompt is longer than the learned position embedding");
  }
  for (uint32_t row : job.capture_rows) {
    if (row >= total) throw_invalid_job("a capture row is outside the prompts");
  }
  for (uint32_t row : job.logits_rows) {
    if (row >= total) throw_invalid_job("a logits row is outside the prompts");
  }
  if (job.pick_rows.size() != job.pick_tokens.size()) throw_invalid_job("picked logits need one token per row");
  for (size_t i = 0; i < job.pick_rows.size(); ++i) {
    if (job.pick_rows[i] >= job.logits_rows.size()) throw_invalid_job("a picked logit's row is not a logits row");
    if (job.pick_tokens[i] < 0 || static_cast<uint64_t>(job.pick_tokens[i]) >= s.vocab_size) {
      throw_invalid_job("a picked logit's token id " + std::to_string(job.pick_tokens[i]) + " is outside the vocabulary");
    }
  }
  for (uint32_t row : job.whole_rows) {
    if (row >= job.logits_rows.size()) throw_invalid_job("a whole logits row is not a logits row");
  }
  validate_edit(job.edit, s, "");
  if (!job.wave.empty()) {
    if (job.max_new_tokens > 0 || !job.capture_rows.empty() || job.start_layer > 0) {
      throw_invalid_job("a wave of edits runs prompt passes only: no generation, capture or resume");
    }
    for (size_t e = 0; e < job.wave.size(); ++e) validate_edit(job.wave[e], s, "wave edit " + std::to_string(e) + ": ");
  }
  if (job.mlp_chunk_tokens == 0) throw_invalid_job("mlp_chunk_tokens must be positive");
}

}  // namespace fwd
}  // namespace abl
