// The layer-streamed forward pass on a CUDA device, for dense families (no experts) without generation: each
// layer's weights are copied up as stored (F32/F16/BF16 bytes from the mapped shards), widened to fp32 on the device,
// and all prompts are advanced through the layer before the next one is loaded, exactly the CPU engine's order.
//
// Status: compiled with ABLITERATE_CUDA=ON (compile-checked in CI); run_forward() does not dispatch here yet because
// it has not been validated on a device against the goldens. Wiring: call run_forward_device() from run_forward when
// runtime_info reports a device and the job has no experts and no generation, then run engine-golden on a GPU.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/forward/forward_job.h"
#include "core/forward/forward_validate.h"
#include "core/forward/mapped_files.h"
#include "core/native_error.h"
#include "forward_kernels.cuh"

namespace abl {
namespace fwd {

ForwardResult run_forward_device(const ForwardJob& job, const ForwardProgress& progress);

namespace {

using cuda::check;

/** A device buffer that only grows. */
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);
  }
  template <class T>
  T* as(size_t count) {
    const size_t bytes = count * sizeof(T);
    if (bytes > capacity_) {
      if (data_) cudaFree(data_);
      data_ = nullptr;
      check(cudaMalloc(&data_, bytes), "cudaMalloc");
      capacity_ = bytes;
    }
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

/** Uploads a tensor's bytes and widens them to fp32 on the device (Gemma's 1 + w applied when asked). */
class WeightLoader {
 public:
  WeightLoader(const MappedFiles& files, cudaStream_t stream) : files_(files), stream_(stream) {}

  const float* load(const TensorRef& ref, DeviceBuffer& target, bool add_one = false) {
    if (!ref.present) return nullptr;
    const uint8_t* bytes = files_.at(ref.file, ref.offset, ref.bytes());
    uint8_t* raw = staging_.as<uint8_t>(ref.bytes());
    check(cudaMemcpyAsync(raw, bytes, ref.bytes(), cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    float* values = target.as<float>(ref.numel());
    cuda::convert_to_f32(raw, ref.dtype, values, ref.numel(), stream_);
    if (add_one) {
      std::vector<float> ones(ref.numel(), 1.0f);
      float* device_ones = ones_.as<float>(ones.size());
      check(cudaMemcpyAsync(device_ones, ones.data(), ones.size() * sizeof(float), cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
      cuda::add_into(values, device_ones, ones.size(), stream_);
      check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    }
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return values;
  }

 private:
  const MappedFiles& files_;
  cudaStream_t stream_;
  DeviceBuffer staging_;
  DeviceBuffer ones_;
};

template <class T>
T* upload(DeviceBuffer& buffer, const std::vector<T>& values, cudaStream_t stream) {
  T* device = buffer.as<T>(values.size());
  check(cudaMemcpyAsync(device, values.data(), values.size() * sizeof(T), cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync");
  return device;
}

struct LayerBuffers {
  DeviceBuffer input_norm, input_norm_bias, qkv_weight[3], qkv_bias[3], q_norm, k_norm, o, o_bias, post_attention_norm;
  DeviceBuffer pre_mlp_norm, pre_mlp_norm_bias, post_mlp_norm, gate, up, down, gate_bias, up_bias, down_bias;
};

}  // namespace

ForwardResult run_forward_device(const ForwardJob& job, const ForwardProgress& progress) {
  MappedFiles files(job.files);
  validate_forward_job(job, files);
  const ModelSpec& spec = job.spec;
  if (job.max_new_tokens > 0) throw_invalid_job("the CUDA forward pass does not generate");
  for (const LayerWeights& layer : job.layers) {
    if (!layer.experts.empty() || layer.qkv.transposed || layer.o.transposed || layer.up.transposed || spec.qkv_per_head) {
      throw_invalid_job("the CUDA forward pass handles dense, nn.Linear-layout families only");
    }
  }
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "cudaStreamCreate");
  cuda::GemmContext gemm;
  WeightLoader loader(files, stream);
  const size_t d = spec.hidden_size;
  const size_t hd = spec.head_dim;
  const size_t q_dim = size_t(spec.num_heads) * hd;
  const size_t kv_dim = size_t(spec.num_kv_heads) * hd;
  const size_t qkv_cols = q_dim + 2 * kv_dim;
  const size_t rows = job.tokens.size();
  const size_t layers = spec.num_layers;
  const bool layer_norm = spec.norm_kind == NormKind::LayerNorm;
  const bool add_one = spec.norm_add_one && !layer_norm;

  // Row bookkeeping, as the CPU engine's prompt batch.
  std::vector<uint32_t> pos(rows), prompt_of_row(rows), first_row;
  size_t longest = 0;
  for (uint32_t p = 0, row = 0; p < job.prompt_lengths.size(); ++p) {
    first_row.push_back(row);
    for (uint32_t i = 0; i < job.prompt_lengths[p]; ++i, ++row) {
      pos[row] = i;
      prompt_of_row[row] = p;
    }
    longest = std::max<size_t>(longest, job.prompt_lengths[p]);
  }
  DeviceBuffer d_pos, d_prompt, d_first, d_tokens, d_basis, d_x, d_h, d_qkv, d_attn, d_write, d_mlp_in, d_mlp_act, d_embed, d_cos, d_sin;
  upload(d_pos, pos, stream);
  upload(d_prompt, prompt_of_row, stream);
  upload(d_first, first_row, stream);
  upload(d_tokens, job.tokens, stream);
  const float* basis = job.ablate ? upload(d_basis, job.ablation.basis, stream) : nullptr;
  float* x = d_x.as<float>(rows * d);
  float* h = d_h.as<float>(rows * d);
  float* qkv = d_qkv.as<float>(rows * qkv_cols);
  float* attn = d_attn.as<float>(rows * q_dim);
  float* write = d_write.as<float>(rows * d);

  ForwardResult result;
  result.kernels = "cuda";
  result.hidden.assign(job.capture_rows.size() * (layers + 1) * d, 0.0f);
  std::vector<float> host_row(d);
  const auto capture = [&](size_t point) {
    for (size_t c = 0; c < job.capture_rows.size(); ++c) {
      check(cudaMemcpyAsync(&result.hidden[(c * (layers + 1) + point) * d], x + size_t(job.capture_rows[c]) * d, d * sizeof(float),
                            cudaMemcpyDeviceToHost, stream),
            "cudaMemcpyAsync");
    }
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  };
  const auto ablate = [&](float* values, size_t count) {
    if (job.ablate) cuda::ablate_rows(values, count, d, basis, job.ablation.rank, job.ablation.alpha, stream);
  };

  // Embedding: only the rows the prompts use go up.
  {
    DeviceBuffer table;
    const float* embed = loader.load(job.embed, table);
    DeviceBuffer positions;
    const float* position_table = loader.load(job.position_embed, positions);
    cuda::embed_rows(embed, d_tokens.as<int32_t>(rows), position_table, d_pos.as<uint32_t>(rows), rows, d, spec.embedding_scale, x,
                     stream);
    if (job.ablate && job.ablation.embedding) ablate(x, rows);
  }
  capture(0);

  // RoPE tables on the device (same angles as the CPU engine: one fp32 product, cos/sin, then the scaling).
  std::vector<const float*> cos_tables, sin_tables;
  std::vector<DeviceBuffer> rope_buffers(2 * job.rope_tables.size());
  for (size_t t = 0; t < job.rope_tables.size(); ++t) {
    const RopeTable& table = job.rope_tables[t];
    const size_t half = table.rotary_dim / 2;
    std::vector<float> cos_values(longest * half), sin_values(longest * half);
    for (size_t p = 0; p < longest; ++p) {
      for (size_t i = 0; i < half; ++i) {
        const float angle = table.inv_freq[i] * static_cast<float>(p);
        cos_values[p * half + i] = static_cast<float>(std::cos(static_cast<double>(angle))) * table.attention_scaling;
        sin_values[p * half + i] = static_cast<float>(std::sin(static_cast<double>(angle))) * table.attention_scaling;
      }
    }
    cos_tables.push_back(upload(rope_buffers[2 * t], cos_values, stream));
    sin_tables.push_back(upload(rope_buffers[2 * t + 1], sin_values, stream));
  }

  LayerBuffers w;
  const int activation = spec.activation == Activation::Silu ? 0 : spec.activation == Activation::GeluTanh ? 1 : 2;
  for (uint32_t l = 0; l < layers; ++l) {
    const LayerWeights& layer = job.layers[l];
    const bool ablate_layer = job.ablate && job.ablation.layers[l];
    cuda::norm_rows(x, rows, d, loader.load(layer.input_norm, w.input_norm, add_one), loader.load(layer.input_norm_bias, w.input_norm_bias),
                    layer_norm, spec.norm_eps, h, d, d, stream);
    if (layer.qkv.present) {
      cuda::gemm_xwt(gemm, h, rows, d, loader.load(layer.qkv, w.qkv_weight[0]), qkv_cols, loader.load(layer.qkv_bias, w.qkv_bias[0]),
                     qkv, stream);
    } else {
      // Separate projections land in a contiguous [rows, q | k | v] buffer through per-part scratch.
      const TensorRef* parts[3] = {&layer.q, &layer.k, &layer.v};
      const TensorRef* biases[3] = {&layer.q_bias, &layer.k_bias, &layer.v_bias};
      const size_t widths[3] = {q_dim, kv_dim, kv_dim};
      size_t column = 0;
      for (int part = 0; part < 3; ++part) {
        float* scratch = d_write.as<float>(rows * std::max(d, widths[part]));
        cuda::gemm_xwt(gemm, h, rows, d, loader.load(*parts[part], w.qkv_weight[part]), widths[part],
                       loader.load(*biases[part], w.qkv_bias[part]), scratch, stream);
        check(cudaMemcpy2DAsync(qkv + column, qkv_cols * sizeof(float), scratch, widths[part] * sizeof(float), widths[part] * sizeof(float),
                                rows, cudaMemcpyDeviceToDevice, stream),
              "cudaMemcpy2DAsync");
        column += widths[part];
      }
      write = d_write.as<float>(rows * d);
    }
    if (layer.q_norm.present) {
      const float* q_norm = loader.load(layer.q_norm, w.q_norm, add_one);
      for (unsigned head = 0; head < spec.num_heads; ++head) {
        cuda::norm_rows(qkv + head * hd, rows, qkv_cols, q_norm, nullptr, false, spec.norm_eps, qkv + head * hd, qkv_cols, hd, stream);
      }
    }
    if (layer.k_norm.present) {
      const float* k_norm = loader.load(layer.k_norm, w.k_norm, add_one);
      for (unsigned head = 0; head < spec.num_kv_heads; ++head) {
        float* k = qkv + q_dim + head * hd;
        cuda::norm_rows(k, rows, qkv_cols, k_norm, nullptr, false, spec.norm_eps, k, qkv_cols, hd, stream);
      }
    }
    if (!job.rope_tables.empty()) {
      const RopeTable& table = job.rope_tables[layer.rope_table];
      cuda::rope_rows(qkv, rows, qkv_cols, spec.num_heads + spec.num_kv_heads, hd, table.rotary_dim, d_pos.as<uint32_t>(rows),
                      cos_tables[layer.rope_table], sin_tables[layer.rope_table], stream);
    }
    const float scale = spec.attention_scale > 0.0f ? spec.attention_scale : 1.0f / std::sqrt(static_cast<float>(hd));
    cuda::attention_rows(qkv, qkv_cols, qkv + q_dim, qkv + q_dim + kv_dim, qkv_cols, d_pos.as<uint32_t>(rows), d_prompt.as<uint32_t>(rows),
                         d_first.as<uint32_t>(first_row.size()), rows, spec.num_heads, spec.num_kv_heads, hd, scale,
                         spec.attn_logit_softcap, layer.sliding_window, attn, q_dim, stream);
    cuda::gemm_xwt(gemm, attn, rows, q_dim, loader.load(layer.o, w.o), d, loader.load(layer.o_bias, w.o_bias), write, stream);
    if (layer.post_attention_norm.present) {
      cuda::norm_rows(write, rows, d, loader.load(layer.post_attention_norm, w.post_attention_norm, add_one), nullptr, false,
                      spec.norm_eps, write, d, d, stream);
    }
    if (ablate_layer) ablate(write, rows);
    cuda::add_into(x, write, rows * d, stream);

    const size_t inter = spec.intermediate_size;
    const bool gated = layer.gate.present || layer.gate_up.present;
    const size_t in_cols = gated ? 2 * inter : inter;
    float* mlp_in = d_mlp_in.as<float>(rows * in_cols);
    float* mlp_act = d_mlp_act.as<float>(rows * inter);
    cuda::norm_rows(x, rows, d, loader.load(layer.pre_mlp_norm, w.pre_mlp_norm, add_one),
                    loader.load(layer.pre_mlp_norm_bias, w.pre_mlp_norm_bias), layer_norm, spec.norm_eps, h, d, d, stream);
    if (layer.gate_up.present) {
      cuda::gemm_xwt(gemm, h, rows, d, loader.load(layer.gate_up, w.gate), 2 * inter, nullptr, mlp_in, stream);
    } else if (gated) {
      // gate then up, each [rows, inter], copied side by side into [rows, 2 · inter].
      float* scratch = d_mlp_act.as<float>(rows * inter);
      cuda::gemm_xwt(gemm, h, rows, d, loader.load(layer.gate, w.gate), inter, loader.load(layer.gate_bias, w.gate_bias), scratch, stream);
      check(cudaMemcpy2DAsync(mlp_in, in_cols * sizeof(float), scratch, inter * sizeof(float), inter * sizeof(float), rows,
                              cudaMemcpyDeviceToDevice, stream),
            "cudaMemcpy2DAsync");
      cuda::gemm_xwt(gemm, h, rows, d, loader.load(layer.up, w.up), inter, loader.load(layer.up_bias, w.up_bias), scratch, stream);
      check(cudaMemcpy2DAsync(mlp_in + inter, in_cols * sizeof(float), scratch, inter * sizeof(float), inter * sizeof(float), rows,
                              cudaMemcpyDeviceToDevice, stream),
            "cudaMemcpy2DAsync");
    } else {
      cuda::gemm_xwt(gemm, h, rows, d, loader.load(layer.up, w.up), inter, loader.load(layer.up_bias, w.up_bias), mlp_in, stream);
    }
    cuda::activation_rows(mlp_in, rows, inter, gated, activation, mlp_act, stream);
    cuda::gemm_xwt(gemm, mlp_act, rows, inter, loader.load(layer.down, w.down), d, loader.load(layer.down_bias, w.down_bias), write,
                   stream);
    if (layer.post_mlp_norm.present) {
      cuda::norm_rows(write, rows, d, loader.load(layer.post_mlp_norm, w.post_mlp_norm, add_one), nullptr, false, spec.norm_eps, write,
                      d, d, stream);
    }
    if (ablate_layer) ablate(write, rows);
    cuda::add_into(x, write, rows * d, stream);
    capture(l + 1);
    if (progress) progress(l + 1, static_cast<uint32_t>(layers + 1));
  }
  if (!job.logits_rows.empty()) throw_invalid_job("the CUDA forward pass does not compute logits yet");
  check(cudaStreamDestroy(stream), "cudaStreamDestroy");
  if (progress) progress(static_cast<uint32_t>(layers + 1), static_cast<uint32_t>(layers + 1));
  return result;
}

}  // namespace fwd
}  // namespace abl
