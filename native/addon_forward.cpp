// N-API bindings of the forward engine (native/core/forward): `forward(job, onProgress?)` → Promise.
// addon.cpp calls RegisterForwardBindings from its module init. The job arrives already validated and
// normalized by lib/engine; the parsing here only converts types and rejects what would be unsafe.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <utility>

#include "core/forward/forward_job.h"
#include "core/forward/forward_kernels.h"
#include "core/native_error.h"
#include "napi_fields.h"
#include "promise_worker.h"

namespace {

using abl::NativeError;
namespace fwd = abl::fwd;

using namespace abl_napi;

fwd::TensorRef tensor_ref(const Napi::Object& object, const char* key, const std::string& where) {
  fwd::TensorRef ref;
  const Napi::Value value = object.Get(key);
  if (value.IsUndefined() || value.IsNull()) return ref;
  const std::string at = where + "." + key;
  if (!value.IsObject()) invalid(at + " must be an object");
  const Napi::Object t = value.As<Napi::Object>();
  ref.present = true;
  const Napi::Value transposed = t.Get("transposed");
  if (!transposed.IsUndefined()) {
    if (!transposed.IsBoolean()) invalid(at + ".transposed must be a boolean");
    ref.transposed = transposed.As<Napi::Boolean>().Value();
  }
  ref.file = u32_field(t, "file", at);
  ref.offset = count_value(t.Get("offset"), at + ".offset");
  ref.dtype = dtype_value(t.Get("dtype"), at + ".dtype");
  const Napi::Value shape = t.Get("shape");
  if (!shape.IsArray()) invalid(at + ".shape must be an array");
  const Napi::Array dims = shape.As<Napi::Array>();
  if (dims.Length() > 8) invalid(at + ".shape has too many dimensions");
  for (uint32_t i = 0; i < dims.Length(); ++i) ref.shape.push_back(count_value(dims.Get(i), at + ".shape[i]", 1ull << 40));
  return ref;
}

fwd::ModelSpec model_spec(const Napi::Object& s) {
  const std::string at = "job.spec";
  fwd::ModelSpec spec;
  spec.hidden_size = u32_field(s, "hiddenSize", at);
  spec.num_layers = u32_field(s, "numLayers", at);
  spec.num_heads = u32_field(s, "numHeads", at);
  spec.num_kv_heads = u32_field(s, "numKvHeads", at);
  spec.head_dim = u32_field(s, "headDim", at);
  spec.intermediate_size = u32_field(s, "intermediateSize", at);
  spec.vocab_size = u32_field(s, "vocabSize", at);
  spec.norm_eps = static_cast<float>(number_field(s, "normEps", at));
  const std::string norm = string_field(s, "normKind", at);
  if (norm != "rms" && norm != "layer") invalid(at + ".normKind must be rms or layer");
  spec.norm_kind = norm == "rms" ? fwd::NormKind::RmsNorm : fwd::NormKind::LayerNorm;
  spec.norm_add_one = bool_field(s, "normAddOne", at);
  spec.gated_mlp = bool_field(s, "gatedMlp", at);
  const std::string activation = string_field(s, "activation", at);
  if (!fwd::activation_named(activation, &spec.activation)) invalid(at + ".activation must be silu, gelu_tanh or gelu");
  spec.parallel_residual = bool_field(s, "parallelResidual", at);
  spec.qkv_per_head = bool_field(s, "qkvPerHead", at);
  spec.embedding_scale = static_cast<float>(number_field(s, "embeddingScale", at));
  spec.attention_scale = static_cast<float>(number_field(s, "attentionScale", at));
  spec.attn_logit_softcap = static_cast<float>(number_field(s, "attnLogitSoftcap", at));
  spec.final_logit_softcap = static_cast<float>(number_field(s, "finalLogitSoftcap", at));
  spec.num_experts = u32_field(s, "numExperts", at);
  spec.experts_per_token = u32_field(s, "expertsPerToken", at);
  spec.moe_intermediate_size = u32_field(s, "moeIntermediateSize", at);
  spec.shared_intermediate_size = u32_field(s, "sharedIntermediateSize", at);
  spec.norm_topk_prob = bool_field(s, "normTopkProb", at);
  spec.router_sigmoid = optional_bool(s, "routerSigmoid", at, false);
  spec.qk_norm_whole = optional_bool(s, "qkNormWhole", at, false);
  spec.rope_interleaved = optional_bool(s, "ropeInterleaved", at, false);
  spec.temperature_floor_scale = static_cast<float>(optional_number(s, "temperatureFloorScale", at, 8192.0));
  spec.temperature_scale = static_cast<float>(optional_number(s, "temperatureScale", at, 0.1));
  return spec;
}

fwd::LayerWeights layer_weights(const Napi::Object& o, const std::string& at) {
  fwd::LayerWeights w;
  w.input_norm = tensor_ref(o, "inputNorm", at);
  w.input_norm_bias = tensor_ref(o, "inputNormBias", at);
  w.q = tensor_ref(o, "q", at);
  w.k = tensor_ref(o, "k", at);
  w.v = tensor_ref(o, "v", at);
  w.qkv = tensor_ref(o, "qkv", at);
  w.q_bias = tensor_ref(o, "qBias", at);
  w.k_bias = tensor_ref(o, "kBias", at);
  w.v_bias = tensor_ref(o, "vBias", at);
  w.qkv_bias = tensor_ref(o, "qkvBias", at);
  w.q_norm = tensor_ref(o, "qNorm", at);
  w.k_norm = tensor_ref(o, "kNorm", at);
  w.o = tensor_ref(o, "o", at);
  w.o_bias = tensor_ref(o, "oBias", at);
  w.post_attention_norm = tensor_ref(o, "postAttentionNorm", at);
  w.pre_mlp_norm = tensor_ref(o, "preMlpNorm", at);
  w.pre_mlp_norm_bias = tensor_ref(o, "preMlpNormBias", at);
  w.post_mlp_norm = tensor_ref(o, "postMlpNorm", at);
  w.gate = tensor_ref(o, "gate", at);
  w.up = tensor_ref(o, "up", at);
  w.gate_up = tensor_ref(o, "gateUp", at);
  w.down = tensor_ref(o, "down", at);
  w.gate_bias = tensor_ref(o, "gateBias", at);
  w.up_bias = tensor_ref(o, "upBias", at);
  w.down_bias = tensor_ref(o, "downBias", at);
  w.router = tensor_ref(o, "router", at);
  const Napi::Value experts = o.Get("experts");
  if (!experts.IsUndefined()) {
    if (!experts.IsArray()) invalid(at + ".experts must be an array");
    const Napi::Array list = experts.As<Napi::Array>();
    for (uint32_t e = 0; e < list.Length(); ++e) {
      const std::string ex = at + ".experts[" + std::to_string(e) + "]";
      const Napi::Value entry = list.Get(e);
      if (!entry.IsObject()) invalid(ex + " must be an object");
      const Napi::Object x = entry.As<Napi::Object>();
      fwd::ExpertWeights expert;
      expert.gate = tensor_ref(x, "gate", ex);
      expert.up = tensor_ref(x, "up", ex);
      expert.gate_up = tensor_ref(x, "gateUp", ex);
      expert.down = tensor_ref(x, "down", ex);
      w.experts.push_back(std::move(expert));
    }
  }
  w.shared_gate = tensor_ref(o, "sharedGate", at);
  w.shared_up = tensor_ref(o, "sharedUp", at);
  w.shared_down = tensor_ref(o, "sharedDown", at);
  w.shared_expert_gate = tensor_ref(o, "sharedExpertGate", at);
  w.sliding_window = u32_field(o, "slidingWindow", at);
  w.attention_chunk = o.Get("attentionChunk").IsUndefined() ? 0 : u32_field(o, "attentionChunk", at);
  w.rope_table = u32_field(o, "ropeTable", at);
  w.use_rope = !optional_bool(o, "noRope", at, false);
  w.qk_l2_norm = optional_bool(o, "qkL2Norm", at, false);
  w.temperature_tuning = optional_bool(o, "temperatureTuning", at, false);
  return w;
}

/** An edit's hooks, `ablation` and `addition` of `o` (either may be absent). */
fwd::ForwardEdit forward_edit(const Napi::Object& o, const std::string& where) {
  fwd::ForwardEdit edit;
  const Napi::Value ablation = o.Get("ablation");
  if (!ablation.IsUndefined() && !ablation.IsNull()) {
    const std::string at = where + ".ablation";
    if (!ablation.IsObject()) invalid(at + " must be an object");
    const Napi::Object a = ablation.As<Napi::Object>();
    edit.ablate = true;
    edit.ablation.basis = typed_array<float, napi_float32_array>(a.Get("basis"), at + ".basis");
    edit.ablation.ranks = typed_array<uint32_t, napi_uint32_array>(a.Get("ranks"), at + ".ranks");
    edit.ablation.embedding_alpha = number_field(a, "embeddingAlpha", at);
    edit.ablation.attention_alpha = typed_array<double, napi_float64_array>(a.Get("attentionAlpha"), at + ".attentionAlpha");
    edit.ablation.mlp_alpha = typed_array<double, napi_float64_array>(a.Get("mlpAlpha"), at + ".mlpAlpha");
  }
  const Napi::Value addition = o.Get("addition");
  if (!addition.IsUndefined() && !addition.IsNull()) {
    const std::string at = where + ".addition";
    if (!addition.IsObject()) invalid(at + " must be an object");
    const Napi::Object a = addition.As<Napi::Object>();
    edit.add = true;
    edit.addition.vector = typed_array<float, napi_float32_array>(a.Get("vector"), at + ".vector");
    edit.addition.point = u32_field(a, "point", at);
  }
  return edit;
}

fwd::ForwardJob forward_job(const Napi::Value& value) {
  if (!value.IsObject()) invalid("forward: the job must be an object");
  const Napi::Object o = value.As<Napi::Object>();
  fwd::ForwardJob job;
  const Napi::Value files = o.Get("files");
  if (!files.IsArray()) invalid("job.files must be an array");
  const Napi::Array file_array = files.As<Napi::Array>();
  for (uint32_t i = 0; i < file_array.Length(); ++i) {
    const Napi::Value path = file_array.Get(i);
    if (!path.IsString()) invalid("job.files[i] must be a string");
    job.files.push_back(path.As<Napi::String>().Utf8Value());
  }
  job.spec = model_spec(object_field(o, "spec", "job"));
  job.embed = tensor_ref(o, "embed", "job");
  job.position_embed = tensor_ref(o, "positionEmbed", "job");
  job.final_norm = tensor_ref(o, "finalNorm", "job");
  job.final_norm_bias = tensor_ref(o, "finalNormBias", "job");
  job.lm_head = tensor_ref(o, "lmHead", "job");
  job.lm_head_bias = tensor_ref(o, "lmHeadBias", "job");
  const Napi::Value layers = o.Get("layers");
  if (!layers.IsArray()) invalid("job.layers must be an array");
  const Napi::Array layer_array = layers.As<Napi::Array>();
  for (uint32_t i = 0; i < layer_array.Length(); ++i) {
    const std::string at = "job.layers[" + std::to_string(i) + "]";
    const Napi::Value layer = layer_array.Get(i);
    if (!layer.IsObject()) invalid(at + " must be an object");
    job.layers.push_back(layer_weights(layer.As<Napi::Object>(), at));
  }
  const Napi::Value tables = o.Get("ropeTables");
  if (!tables.IsArray()) invalid("job.ropeTables must be an array");
  const Napi::Array table_array = tables.As<Napi::Array>();
  for (uint32_t i = 0; i < table_array.Length(); ++i) {
    const std::string at = "job.ropeTables[" + std::to_string(i) + "]";
    const Napi::Value entry = table_array.Get(i);
    if (!entry.IsObject()) invalid(at + " must be an object");
    const Napi::Object t = entry.As<Napi::Object>();
    fwd::RopeTable table;
    table.inv_freq = typed_array<float, napi_float32_array>(t.Get("invFreq"), at + ".invFreq");
    table.attention_scaling = static_cast<float>(number_field(t, "attentionScaling", at));
    table.rotary_dim = u32_field(t, "rotaryDim", at);
    job.rope_tables.push_back(std::move(table));
  }
  job.tokens = typed_array<int32_t, napi_int32_array>(o.Get("tokens"), "job.tokens");
  job.prompt_lengths = typed_array<uint32_t, napi_uint32_array>(o.Get("promptLengths"), "job.promptLengths");
  job.capture_rows = typed_array<uint32_t, napi_uint32_array>(o.Get("captureRows"), "job.captureRows");
  job.logits_rows = typed_array<uint32_t, napi_uint32_array>(o.Get("logitsRows"), "job.logitsRows");
  job.max_new_tokens = u32_field(o, "maxNewTokens", "job");
  job.eos_ids = typed_array<int32_t, napi_int32_array>(o.Get("eosIds"), "job.eosIds");
  job.edit = forward_edit(o, "job");
  const Napi::Value wave = o.Get("wave");
  if (!wave.IsUndefined()) {
    if (!wave.IsArray()) invalid("job.wave must be an array");
    const Napi::Array edits = wave.As<Napi::Array>();
    for (uint32_t e = 0; e < edits.Length(); ++e) {
      const std::string at = "job.wave[" + std::to_string(e) + "]";
      const Napi::Value entry = edits.Get(e);
      if (!entry.IsObject()) invalid(at + " must be an object");
      job.wave.push_back(forward_edit(entry.As<Napi::Object>(), at));
    }
  }
  const std::string mode = string_field(o, "mode", "job");
  if (mode != "resident" && mode != "streamed") invalid("job.mode must be resident or streamed");
  job.mode = mode == "resident" ? fwd::Mode::Resident : fwd::Mode::Streamed;
  const Napi::Value resume = o.Get("resumeFrom");
  if (!resume.IsUndefined() && !resume.IsNull()) {
    if (!resume.IsObject()) invalid("job.resumeFrom must be an object");
    const Napi::Object r = resume.As<Napi::Object>();
    job.start_layer = u32_field(r, "layer", "job.resumeFrom");
    job.start_hidden = typed_array<float, napi_float32_array>(r.Get("hidden"), "job.resumeFrom.hidden");
  }
  const Napi::Value prefix_source = o.Get("prefixSource");
  if (!prefix_source.IsUndefined()) {
    job.prefix_source = typed_array<uint32_t, napi_uint32_array>(prefix_source, "job.prefixSource");
    job.prefix_length = typed_array<uint32_t, napi_uint32_array>(o.Get("prefixLength"), "job.prefixLength");
    if (job.prefix_source.size() != job.prompt_lengths.size() || job.prefix_length.size() != job.prompt_lengths.size()) {
      invalid("job.prefixSource and job.prefixLength need one entry per prompt");
    }
  }
  if (!o.Get("compute").IsUndefined()) {
    const std::string compute = string_field(o, "compute", "job");
    if (compute != "fp32" && compute != "bf16" && compute != "auto") invalid("job.compute must be fp32, bf16 or auto");
    job.compute = compute == "fp32" ? fwd::Compute::Fp32 : compute == "bf16" ? fwd::Compute::Bf16 : fwd::Compute::Auto;
  }
  if (!o.Get("threads").IsUndefined()) job.threads = static_cast<unsigned>(count_value(o.Get("threads"), "job.threads", 1024));
  if (!o.Get("mlpChunkTokens").IsUndefined()) job.mlp_chunk_tokens = u32_field(o, "mlpChunkTokens", "job");
  job.logits_stats = optional_bool(o, "logitsStats", "job", false);
  if (!o.Get("pickRows").IsUndefined()) {
    job.pick_rows = typed_array<uint32_t, napi_uint32_array>(o.Get("pickRows"), "job.pickRows");
    job.pick_tokens = typed_array<int32_t, napi_int32_array>(o.Get("pickTokens"), "job.pickTokens");
  }
  if (!o.Get("wholeRows").IsUndefined()) {
    job.whole_subset = true;
    job.whole_rows = typed_array<uint32_t, napi_uint32_array>(o.Get("wholeRows"), "job.wholeRows");
  }
  if (!o.Get("keepLayersBytes").IsUndefined()) job.keep_layers_bytes = static_cast<uint64_t>(count_value(o.Get("keepLayersBytes"), "job.keepLayersBytes", uint64_t(1) << 53));
  return job;
}

/**
 * A result array as a Float32Array over the vector's own pages: the ArrayBuffer owns the vector, and its finalizer
 * gives the pages back (large_mappings.h), where a later job of the same shape finds them faulted in. The copies into
 * a fresh, zero-filled JS buffer, after a copy out of the head's buffer, faulted 16 MB of logits in twice per
 * scoring pass of the bench model (8 prompts, 16 logits rows each): 4 960 faults per pass, 1 740 without them, and
 * alternated 633–641 → 585–606 ms a pass. Where the runtime allows no external buffers
 * (napi_no_external_buffers_allowed), the values are copied.
 */
Napi::Float32Array float32_array(Napi::Env env, abl::LargeVector<float>& values) {
  const size_t count = values.size();
  if (count == 0) return Napi::Float32Array::New(env, 0);
  auto* owned = new abl::LargeVector<float>(std::move(values));
  napi_value buffer = nullptr;
  const napi_status status = napi_create_external_arraybuffer(
      env, owned->data(), count * sizeof(float), [](napi_env, void*, void* hint) { delete static_cast<abl::LargeVector<float>*>(hint); },
      owned, &buffer);
  if (status != napi_ok) {
    Napi::Float32Array copy = Napi::Float32Array::New(env, count);
    std::copy(owned->begin(), owned->end(), copy.Data());
    delete owned;
    return copy;
  }
  return Napi::Float32Array::New(env, count, Napi::ArrayBuffer(env, buffer), 0);
}

void set_logits_stats(Napi::Env env, Napi::Object& object, const std::vector<uint32_t>& argmax_of, const std::vector<double>& logz_of) {
  Napi::Uint32Array argmax = Napi::Uint32Array::New(env, argmax_of.size());
  std::copy(argmax_of.begin(), argmax_of.end(), argmax.Data());
  Napi::Float64Array logz = Napi::Float64Array::New(env, logz_of.size());
  std::copy(logz_of.begin(), logz_of.end(), logz.Data());
  object.Set("logitsArgmax", argmax);
  object.Set("logitsLogZ", logz);
}

Napi::Value result_to_js(Napi::Env env, fwd::ForwardResult& result) {
  Napi::Object object = Napi::Object::New(env);
  Napi::Float32Array hidden = float32_array(env, result.hidden);
  Napi::Float32Array logits = float32_array(env, result.logits);
  Napi::Array generated = Napi::Array::New(env, result.generated.size());
  for (uint32_t p = 0; p < result.generated.size(); ++p) {
    Napi::Int32Array ids = Napi::Int32Array::New(env, result.generated[p].size());
    std::copy(result.generated[p].begin(), result.generated[p].end(), ids.Data());
    generated.Set(p, ids);
  }
  object.Set("hidden", hidden);
  object.Set("logits", logits);
  object.Set("generated", generated);
  object.Set("seconds", Napi::Number::New(env, result.seconds));
  object.Set("kernels", Napi::String::New(env, result.kernels));
  object.Set("packedBytes", Napi::Number::New(env, static_cast<double>(result.packed_bytes)));
  object.Set("reusedPackedBytes", Napi::Number::New(env, static_cast<double>(result.reused_packed_bytes)));
  object.Set("reusedBufferBytes", Napi::Number::New(env, static_cast<double>(result.reused_buffer_bytes)));
  object.Set("reusedMappedBytes", Napi::Number::New(env, static_cast<double>(result.reused_mapped_bytes)));
  object.Set("stagedBytes", Napi::Number::New(env, static_cast<double>(result.staged_bytes)));
  object.Set("keptBytes", Napi::Number::New(env, static_cast<double>(result.kept_bytes)));
  Napi::Float32Array picked = Napi::Float32Array::New(env, result.picked_logits.size());
  std::copy(result.picked_logits.begin(), result.picked_logits.end(), picked.Data());
  object.Set("pickedLogits", picked);
  if (result.has_logits_stats) set_logits_stats(env, object, result.logits_argmax, result.logits_logz);
  Napi::Array wave = Napi::Array::New(env, result.wave.size());
  for (uint32_t e = 0; e < result.wave.size(); ++e) {
    fwd::ForwardResult::WaveOutput& out = result.wave[e];
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("logits", float32_array(env, out.logits));
    Napi::Float32Array wave_picked = Napi::Float32Array::New(env, out.picked_logits.size());
    std::copy(out.picked_logits.begin(), out.picked_logits.end(), wave_picked.Data());
    entry.Set("pickedLogits", wave_picked);
    if (result.has_logits_stats) set_logits_stats(env, entry, out.logits_argmax, out.logits_logz);
    wave.Set(e, entry);
  }
  object.Set("wave", wave);
  return object;
}

struct LayerProgress {
  uint32_t done;
  uint32_t total;
};

struct ForwardTraits {
  using Job = fwd::ForwardJob;
  using Result = fwd::ForwardResult;
  using Event = LayerProgress;
  static constexpr const char* kName = "abliterate:forward";
  static Result run(const Job& job, const std::function<void(const Event&)>& report) {
    return fwd::run_forward(job, [&](uint32_t done, uint32_t total) { report(Event{done, total}); });
  }
  static Napi::Value result_to_js(Napi::Env env, Result& result) { return ::result_to_js(env, result); }
  static Napi::Value event_to_js(Napi::Env env, const Event& event) {
    Napi::Object progress = Napi::Object::New(env);
    progress.Set("layersDone", Napi::Number::New(env, event.done));
    progress.Set("layersTotal", Napi::Number::New(env, event.total));
    return progress;
  }
};

Napi::Value Forward(const Napi::CallbackInfo& info) { return abl_napi::start_promise_job<ForwardTraits>(info, forward_job); }

}  // namespace

// The forward engine's smaller exports (native/addon_forward_tools.cpp).
void RegisterForwardTools(Napi::Env env, Napi::Object exports);

void RegisterForwardBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("forward", Napi::Function::New(env, Forward, "forward"));
  RegisterForwardTools(env, exports);
}
