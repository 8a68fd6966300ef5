// One decoder stack, advanced a batch of rows at a time. A batch is either all prompt tokens (rows of several
// prompts, each with its own causal mask) or one new token per prompt during generation; both go through the same
// layer code. Keys and values come from the batch itself (prompt pass without generation) or from a per-layer
// KV cache (generation), so the layer code never needs to know which.
#pragma once

#include <memory>
#include <unordered_map>

#include <cstdint>
#include <vector>

#include "../thread_pool.h"
#include "attention.h"
#include "forward_job.h"
#include "forward_kernels.h"
#include "gemm.h"
#include "../large_mappings.h"
#include "kept_layers.h"
#include "mapped_files.h"
#include "staged_weights.h"

namespace abl {
namespace fwd {

/** Prompt `prompt` takes the keys and values of its first `length` positions from prompt `source` (shared_prefix.h). */
struct KvShare {
  uint32_t prompt;
  uint32_t source;
  uint32_t length;
};

struct Batch {
  size_t rows = 0;
  std::vector<int32_t> tokens;
  /** Position of each row inside its prompt. */
  std::vector<uint32_t> positions;
  std::vector<uint32_t> prompt_of_row;
  /** Rows grouped by prompt (and split into chunks for load balance). */
  std::vector<RowRange> ranges;
  /** Per prompt: the batch row of its position 0 (prompt pass only). */
  std::vector<size_t> prompt_first_row;
  size_t max_context = 0;
  /** Copied in the KV cache after each layer writes the batch's own keys and values, in order (sources first). */
  std::vector<KvShare> kv_shares;
};

class TransformerEngine {
 public:
  /** `kept`: where the prompt pass takes its layers from when the job keeps them (null: its one staging buffer). */
  TransformerEngine(const ForwardJob& job, const MappedFiles& files, ThreadPool& pool, const ForwardKernels& kernels,
                    bool use_kv_cache, size_t max_positions, KeptLayers* kept = nullptr);

  /**
   * The edit whose ablation embed() and layer() apply from now on: the job's own at construction, or one of its
   * wave (kept by reference: it must outlive its use).
   */
  void use_edit(const ForwardEdit& edit);
  /** x[rows, d] = embedding of the batch's tokens (scaled, plus learned positions), ablated if asked (stream 0). */
  void embed(const Batch& batch, float* x);
  /** Runs decoder layer `layer` on x[rows, d] in place. */
  void layer(uint32_t layer, const Batch& batch, float* x);
  /** out[i] = final_norm(x[rows[i]]) · lm_headᵀ for vocab entries [v_begin, v_end); out row stride ldo. */
  void final_norm(const float* x, const std::vector<uint32_t>& rows, float* out);
  void logits(const float* normed, size_t rows, size_t v_begin, size_t v_end, float* out, size_t ldo);

  const std::vector<const TensorRef*>& layer_tensors(uint32_t layer) const { return layer_tensors_[layer]; }
  /** What a streamed job reads ahead of layer `layer`: its tensors, none where it found the layer kept. */
  const std::vector<const TensorRef*>& read_ahead_tensors(uint32_t layer) const;
  /**
   * Reads layer `layer`'s dense weights out of the checkpoint for its prompt pass (staged_weights.h), or takes
   * them as an earlier job kept them (kept_layers.h).
   */
  void stage_layer(uint32_t layer);
  /** Reads weights from the mapping again (generation's decode steps), or from the layers the job keeps. */
  void unstage();
  /** Bytes of layer weights read out of the checkpoint (kept layers found by this job read none). */
  uint64_t staged_bytes() const { return staged_.staged_bytes() + (kept_ ? kept_->read_bytes() : 0); }
  /** Bytes of the weight panels packed so far (gemm.h PackedWeight); `reused`: those in given-back mappings. */
  uint64_t packed_bytes(bool reused) const;

 private:
  /** The tensor's bytes: its staged copy, or else the mapping. */
  const uint8_t* bytes(const TensorRef& ref) const;
  WeightMatrix matrix(const TensorRef& ref) const;
  /**
   * matrix(ref) for a GEMM: with its staged panels (staged_weights.h), or with its panels packed once per job where
   * the job reuses every weight (generation).
   */
  WeightMatrix gemm_matrix(const TensorRef& ref);
  std::vector<float> vector(const TensorRef& ref, bool add_one = false) const;
  void linear(const float* x, size_t rows, size_t ldx, const TensorRef& weight, const TensorRef& bias, float* y, size_t ldy);
  /**
   * y[:, columns of part i] = x · weights[i]ᵀ + biases[i], the parts side by side in y: one GEMM over the stacked
   * matrix where the parts were staged as one (X is then packed once, and the tiles of all parts share one loop;
   * generation packs the stack's panels once for the job), else one linear() per part. The same sums either way:
   * each output element's arithmetic does not depend on the columns beside it.
   */
  void linear_parts(const float* x, size_t rows, size_t ldx, const std::vector<const TensorRef*>& weights,
                    const std::vector<const TensorRef*>& biases, float* y, size_t ldy);
  /** y[r][j] += bias[j] for the bias's columns. */
  void add_bias(const TensorRef& bias, size_t rows, float* y, size_t ldy);
  /**
   * Normalizes `groups` vectors of `dim` per row (vector g of row r at r * ldx + g * dim), e.g. every head of a row
   * for Qwen 3's q_norm. One parallel loop for all of them.
   */
  void norm(const float* x, size_t rows, size_t ldx, const TensorRef& weight, const TensorRef& bias, float* y, size_t ldy,
            size_t dim, size_t groups = 1);
  /** RMS norm without a weight (Llama 4's L2Norm), `groups` vectors of `dim` per row, in place. */
  void unit_rms_norm(float* x, size_t rows, size_t ldx, size_t dim, size_t groups);
  /** Writes into residual stream `stream`: rows ← rows − α B_s (B_sᵀ rows); nothing at all when α is 0. */
  void ablate(float* rows, size_t count, uint32_t stream, double alpha);
  /** KV cache: the batch's kv_shares of `layer` (shared_prefix.cpp). */
  void copy_shared_kv(uint32_t layer, const Batch& batch);
  /** The attention half of layer l: write[rows, d] = o_proj(attention(x)) (post-norm included). */
  void attention_write(uint32_t l, const Batch& batch, const float* x, float* write);
  /** One MLP's weights: gated (gate/up or fused gate_up) or plain (up only), with optional biases. */
  struct MlpWeights {
    const TensorRef* gate;
    const TensorRef* up;
    const TensorRef* gate_up;
    const TensorRef* down;
    const TensorRef* gate_bias;
    const TensorRef* up_bias;
    const TensorRef* down_bias;
  };
  /** out[rows, d] = MLP(h) with `inter` hidden units, in chunks of mlp_chunk_tokens rows. */
  void mlp(const MlpWeights& w, const float* h, size_t rows, size_t inter, float* out);
  /** Routed experts (plus the shared expert) of a sparse layer. */
  void moe(const LayerWeights& w, const float* h, size_t rows, float* out);
  void feed_forward(const LayerWeights& w, const float* h, size_t rows, float* out);
  void ensure(LargeVector<float>& buffer, size_t size) { if (buffer.size() < size) buffer.resize(size); }

  const ForwardJob& job_;
  const ModelSpec& spec_;
  const MappedFiles& files_;
  ThreadPool& pool_;
  const ForwardKernels& kernels_;
  size_t d_, q_dim_, kv_dim_, qkv_cols_;
  bool use_kv_cache_;
  std::vector<std::vector<const TensorRef*>> layer_tensors_;
  // Per layer, all but the routed experts: what stage_layer reads.
  std::vector<std::vector<std::vector<const TensorRef*>>> dense_tensors_;
  // Per layer, what a streamed job keeps: the dense groups, then the routed experts, every one of them, as stored
  // (their GEMMs read the bytes as from the mapping). A pass that streams reads a layer's experts from the mapping,
  // those its tokens choose; a layer kept for later passes and decode steps is read once, and they would choose
  // most of them between them.
  std::vector<std::vector<std::vector<const TensorRef*>>> streamed_kept_tensors_;
  StagedWeights staged_;
  KeptLayers* kept_;
  // The layer being run: staged_, or a kept layer. With kept_, a resident job holds every layer it staged or took
  // kept (so that a job freeing the kept layers while this one runs leaves them intact), and decode steps run on
  // them; a streamed one holds the kept layer it runs (in_use_), and stages the others in staged_ one at a time.
  bool streamed_;
  const StagedWeights* current_ = &staged_;
  std::vector<std::shared_ptr<const StagedWeights>> held_;
  std::shared_ptr<const StagedWeights> in_use_;
  // The edit in use, and its ablation bases: basis b (one shared, or one per stream) is basis_rank_[b] rows from
  // basis_offset_[b].
  const ForwardEdit* edit_ = nullptr;
  std::vector<size_t> basis_offset_;
  std::vector<uint32_t> basis_rank_;
  // Per RoPE table, cos and sin of every position: [max_positions][rotary_dim / 2].
  std::vector<std::vector<float>> rope_cos_, rope_sin_;
  // KV cache: per layer keys then values, each [Σ (prompt length + new tokens), kv_dim]; cache_base_[p] is prompt
  // p's position 0. One buffer for all layers: per layer it is often under kLargeBufferBytes, so off huge pages.
  // Without generation a layer's keys are read only while that layer runs, so one slot serves every layer.
  LargeVector<float> kv_cache_;
  size_t cache_rows_ = 0;
  size_t cache_slots_ = 0;
  std::vector<size_t> cache_base_;
  float* cache_k(uint32_t layer) { return kv_cache_.data() + (cache_slots_ == 1 ? 0 : size_t(layer)) * 2 * cache_rows_ * kv_dim_; }
  float* cache_v(uint32_t layer) { return cache_k(layer) + cache_rows_ * kv_dim_; }
  // Scratch reused across layers (on huge pages when large: large_mappings.h).
  LargeVector<float> h_, qkv_, attn_, write_, parallel_write_, mlp_in_, mlp_act_;
  LargeVector<float> moe_logits_, moe_rows_, moe_out_, shared_out_;
  // Generation multiplies every weight once per new token: resident runs pack each one once (gemm.h PackedWeight),
  // the head and, without kept layers, every layer's weights.
  bool pack_weights_ = false;
  std::unordered_map<const TensorRef*, std::unique_ptr<PackedWeight>> packed_;
  // The same for stacked matrices (linear_parts), keyed by their first part.
  std::unordered_map<const TensorRef*, std::unique_ptr<PackedWeight>> packed_stacks_;
};

}  // namespace fwd
}  // namespace abl
