// The forward engine's job and result, as plain structs. TypeScript (lib/engine) has already read config.json,
// resolved every tensor to (file, offset, dtype, shape), checked the shapes and computed the RoPE frequencies;
// the native side only checks what it must to stay memory-safe (bounds, sizes) and does the maths.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../dtype.h"
#include "../large_mappings.h"
#include "forward_kernels.h"

namespace abl {
namespace fwd {

/**
 * A weight inside one of the job's files: `shape` row-major as stored, elements of `dtype` from byte `offset`.
 * `transposed` marks a matrix stored [in, out] (GPT-2's Conv1D) instead of nn.Linear's [out, in].
 */
struct TensorRef {
  bool present = false;
  bool transposed = false;
  uint32_t file = 0;
  uint64_t offset = 0;
  Dtype dtype = Dtype::F32;
  std::vector<uint64_t> shape;

  uint64_t numel() const {
    uint64_t n = 1;
    for (uint64_t s : shape) n *= s;
    return n;
  }
  uint64_t bytes() const { return numel() * dtype_size(dtype); }
};

enum class NormKind : uint8_t { RmsNorm, LayerNorm };
enum class Activation : uint8_t { Silu, GeluTanh, GeluExact };

/** The spec's activation from its name ("silu", "gelu_tanh", "gelu"); false for any other name. */
inline bool activation_named(const std::string& name, Activation* out) {
  if (name == "silu") *out = Activation::Silu;
  else if (name == "gelu_tanh") *out = Activation::GeluTanh;
  else if (name == "gelu") *out = Activation::GeluExact;
  else return false;
  return true;
}

/** The entry of `kernels` that computes `activation` (f(gate) · up). */
inline void (*activation_kernel(const ForwardKernels& kernels, Activation activation))(const float*, const float*, float*, size_t) {
  switch (activation) {
    case Activation::GeluTanh: return kernels.gelu_tanh_mul;
    case Activation::GeluExact: return kernels.gelu_mul;
    default: return kernels.silu_mul;
  }
}

/** Rotary tables: inv_freq has rotary_dim / 2 entries; cos/sin are multiplied by attention_scaling. */
struct RopeTable {
  std::vector<float> inv_freq;
  float attention_scaling = 1.0f;
  uint32_t rotary_dim = 0;
};

/** One routed expert: gated MLP with separate gate/up or a fused gate_up ([gate; up] rows). */
struct ExpertWeights {
  TensorRef gate, up, gate_up, down;
};

struct LayerWeights {
  // The norm in front of attention; absent in OLMo-2, whose attention reads the residual stream itself.
  TensorRef input_norm, input_norm_bias;
  // Separate q/k/v or one fused qkv ([q; k; v] rows).
  TensorRef q, k, v, qkv;
  TensorRef q_bias, k_bias, v_bias, qkv_bias;
  // RMSNorm on q and k before RoPE: per head over head_dim (qwen3, gemma3), or over the whole projection when
  // ModelSpec::qk_norm_whole (olmo2).
  TensorRef q_norm, k_norm;
  TensorRef o, o_bias;
  TensorRef post_attention_norm;   // sandwich norm applied to the attention output (gemma2/3)
  TensorRef pre_mlp_norm, pre_mlp_norm_bias;  // the norm in front of the MLP (absent in OLMo-2)
  TensorRef post_mlp_norm;         // sandwich norm applied to the MLP output (gemma2/3)
  // Gated MLP: act(gate x) * (up x), or fused gate_up ([gate; up] rows). Plain MLP (gpt2): up then act then down.
  TensorRef gate, up, gate_up, down;
  TensorRef gate_bias, up_bias, down_bias;
  // Mixture of experts (the layer is sparse when `experts` is non-empty): router [E, d], top-k routed experts, and
  // an optional always-on shared expert whose output is scaled by sigmoid(shared_expert_gate · x) (Qwen2-MoE).
  TensorRef router;
  std::vector<ExpertWeights> experts;
  TensorRef shared_gate, shared_up, shared_down, shared_expert_gate;
  uint32_t sliding_window = 0;  // 0: full causal attention
  /** Llama 4 chunked attention: a query sees only the keys of its own chunk of this many positions (0: none). */
  uint32_t attention_chunk = 0;
  uint32_t rope_table = 0;
  /** false on Llama 4's NoPE layers: no rotary embedding at all. */
  bool use_rope = true;
  /** Llama 4: weightless RMS ("L2") norm of every q and k head after RoPE. */
  bool qk_l2_norm = false;
  /** Llama 4 NoPE layers: q scaled by log1p(floor((pos + 1) / floor_scale)) · attn_scale + 1. */
  bool temperature_tuning = false;
};

struct ModelSpec {
  uint32_t hidden_size = 0;
  uint32_t num_layers = 0;
  uint32_t num_heads = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t intermediate_size = 0;
  uint32_t vocab_size = 0;
  float norm_eps = 1e-6f;
  NormKind norm_kind = NormKind::RmsNorm;
  bool norm_add_one = false;        // Gemma: weight applied as (1 + w)
  bool gated_mlp = true;
  Activation activation = Activation::Silu;
  bool parallel_residual = false;   // GPT-NeoX: x + attn(ln1 x) + mlp(ln2 x)
  bool qkv_per_head = false;        // GPT-NeoX: fused qkv rows are [q_h; k_h; v_h] head after head
  float embedding_scale = 1.0f;     // Gemma: sqrt(hidden_size) rounded to the embedding dtype
  float attention_scale = 0.0f;     // 0: 1 / sqrt(head_dim)
  float attn_logit_softcap = 0.0f;  // Gemma 2
  float final_logit_softcap = 0.0f; // Gemma 2
  // Mixture of experts (layers with experts): softmax over num_experts router logits, top experts_per_token kept,
  // their weights renormalized to sum 1 when norm_topk_prob.
  uint32_t num_experts = 0;
  uint32_t experts_per_token = 0;
  uint32_t moe_intermediate_size = 0;
  uint32_t shared_intermediate_size = 0;
  bool norm_topk_prob = false;
  /**
   * Sigmoid: Llama 4's router. The top experts_per_token router logits are kept, each expert's weight is
   * sigmoid(logit), and it scales the expert's *input* (the expert sees w · x and its output is added as is).
   */
  bool router_sigmoid = false;
  /** OLMo-2: q_norm / k_norm span the whole q / k projection instead of one head. */
  bool qk_norm_whole = false;
  /** Llama 4: RoPE rotates adjacent pairs (2i, 2i + 1) (complex multiplication), not (i, i + rotary_dim / 2). */
  bool rope_interleaved = false;
  /** Llama 4 attention temperature tuning (layers with temperature_tuning). */
  float temperature_floor_scale = 8192.0f;
  float temperature_scale = 0.1f;
};

/**
 * Directional ablation at every residual writer, equal to the weight edit W ← W − α B Bᵀ W of that writer: each
 * writer's output (what it adds to the residual stream, so after the post-norm in post-norm families) becomes
 * out − α B (Bᵀ out). Writers into stream s (docs/architectures.md § Residual streams): the embedding writes stream 0,
 * layer l's attention and MLP write stream l + 1. α = 0 leaves a writer untouched (no arithmetic at all).
 */
struct Ablation {
  /** Orthonormal bases (TypeScript orthonormalizes), rows of hidden_size, concatenated: ranks[b] rows each. */
  std::vector<float> basis;
  /** One entry (one basis for every writer) or L + 1 (basis s for the writers into stream s). */
  std::vector<uint32_t> ranks;
  double embedding_alpha = 0.0;
  /** Per layer (L entries): α of its attention write and of its MLP write. */
  std::vector<double> attention_alpha, mlp_alpha;
};

/**
 * Activation addition (Arditi et al. § 3, induced refusal): x ← x + v for every row of the residual stream at one
 * point (index i enters decoder layer i; index L is the last layer's output, before the final norm), in the prompt
 * pass and in every generation step. It acts on the stream itself, so post-norm families need no special case.
 */
struct Addition {
  std::vector<float> vector;
  uint32_t point = 0;
};

/** The hooks one pass runs under: an ablation, an addition, both or neither. */
struct ForwardEdit {
  bool ablate = false;
  Ablation ablation;
  bool add = false;
  Addition addition;
};

enum class Mode : uint8_t { Resident, Streamed };

struct ForwardJob {
  std::vector<std::string> files;
  ModelSpec spec;
  TensorRef embed, position_embed, final_norm, final_norm_bias, lm_head, lm_head_bias;
  std::vector<LayerWeights> layers;
  std::vector<RopeTable> rope_tables;

  /** All prompts' token ids, concatenated; prompt_lengths[p] tokens each. */
  std::vector<int32_t> tokens;
  std::vector<uint32_t> prompt_lengths;
  /** Rows of the concatenated prompts whose residual stream is captured at all L+1 points. */
  std::vector<uint32_t> capture_rows;
  /** Rows of the concatenated prompts whose logits are returned. */
  std::vector<uint32_t> logits_rows;
  /** Also return each logits row's argmax and log-normalizer (logits_stats.h). */
  bool logits_stats = false;
  /**
   * Logits to return one by one: pick i is the logit of token pick_tokens[i] in logits row pick_rows[i] (an index
   * into logits_rows). A teacher-forced pass reads one logit per position past the few whose distribution it keeps.
   */
  std::vector<uint32_t> pick_rows;
  std::vector<int32_t> pick_tokens;
  /**
   * With `whole_subset`, `logits` holds only these logits rows (indices into logits_rows), in this order: the rest
   * are computed (for the statistics and picks) but not handed to JS, whose collector counts every returned byte.
   */
  bool whole_subset = false;
  std::vector<uint32_t> whole_rows;
  uint32_t max_new_tokens = 0;  // greedy generation (resident only)
  /**
   * Resume at decoder layer start_layer from a residual stream computed before (start_hidden: [tokens, hidden], the
   * stream entering that layer for every row): layers below it are not run, and the stream at points below it is
   * not captured (zeros). 0: from the embedding.
   */
  uint32_t start_layer = 0;
  std::vector<float> start_hidden;
  /**
   * Per prompt (or empty: none shared): its first prefix_length[p] tokens are those of the earlier prompt
   * prefix_source[p], whose keys and values it takes through the KV cache instead of running them (shared_prefix.h).
   */
  std::vector<uint32_t> prefix_source, prefix_length;
  std::vector<int32_t> eos_ids;

  /** The edit the pass runs under (none: the unedited model). */
  ForwardEdit edit;
  /**
   * Further edits run over the same prompts in the same job, layer by layer beside `edit`: each layer is staged (or,
   * streamed, read) once for all of them, and each edit's rows go through it with that edit's hooks, with the
   * arithmetic of a job of its own. A model that does not fit the budget reads every layer once per pass, so a
   * wave of n edits reads the model once instead of n times. Prompt passes only: no generation, capture or resume.
   * Their logits, statistics and picks come back in ForwardResult::wave.
   */
  std::vector<ForwardEdit> wave;

  Mode mode = Mode::Resident;
  /** fp32 (the reference), bf16 (BF16 dot products for every weight) or auto (for BF16-stored weights). */
  Compute compute = Compute::Fp32;
  unsigned threads = 0;
  /** Tokens per MLP chunk: bounds the [tokens, intermediate] activations. */
  uint32_t mlp_chunk_tokens = 512;
  /**
   * Keep the layers this job stages for the next jobs of the process, and take those an earlier one kept
   * (kept_layers.h), as long as all kept layers take at most this many bytes (0: keep none, and free the kept
   * layers first). A resident generation's decode steps run on them too; a streamed job reads kept layers neither
   * in its prompt pass nor in its decode steps, and the rest one at a time as before.
   */
  uint64_t keep_layers_bytes = 0;
};

struct ForwardResult {
  /**
   * [capture_rows, L + 1, hidden]. On large pages, and handed to JS without a copy (addon_forward.cpp): the pages go
   * back for reuse when JS drops the array.
   */
  LargeVector<float> hidden;
  /** [logits_rows, vocab], likewise. */
  LargeVector<float> logits;
  /** The logits of the job's picks (pick_rows, pick_tokens). */
  std::vector<float> picked_logits;
  /** With logits_stats, per logits row: the argmax and log Σ exp (logits_stats.h). */
  bool has_logits_stats = false;
  std::vector<uint32_t> logits_argmax;
  std::vector<double> logits_logz;
  /** Per edit of the job's wave, in order: what logits, logits_stats and picks hold for the job's own edit. */
  struct WaveOutput {
    LargeVector<float> logits;
    std::vector<float> picked_logits;
    std::vector<uint32_t> logits_argmax;
    std::vector<double> logits_logz;
  };
  std::vector<WaveOutput> wave;
  /** Generated ids per prompt (each stops after an EOS id, which is included). */
  std::vector<std::vector<int32_t>> generated;
  double seconds = 0;
  const char* kernels = "scalar";
  /** Bytes of weight panels packed for generation, and the part packed into mappings an earlier job gave back. */
  uint64_t packed_bytes = 0;
  uint64_t reused_packed_bytes = 0;
  /** Bytes of this job's large buffers (panels included) laid in pages an earlier job gave back (large_mappings.h). */
  uint64_t reused_buffer_bytes = 0;
  /** Bytes of checkpoint files this job found mapped by an earlier job, unchanged (mapped_files.h). */
  uint64_t reused_mapped_bytes = 0;
  /** Bytes of layer weights the prompt pass read into its staging buffer (staged_weights.h). */
  uint64_t staged_bytes = 0;
  /** Bytes of layer weights the prompt pass found kept by an earlier job and did not read (kept_layers.h). */
  uint64_t kept_bytes = 0;
};

/** Called after each layer (and once more for the head): (layers done, layers total). */
using ForwardProgress = std::function<void(uint32_t, uint32_t)>;

ForwardResult run_forward(const ForwardJob& job, const ForwardProgress& progress);

}  // namespace fwd
}  // namespace abl
