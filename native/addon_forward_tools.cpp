// The forward engine's smaller exports, beside `forward` (addon_forward.cpp, which registers them): the chosen
// forward table's per-element kernels, exposed so tests bound them element by element, and the controls of the
// layers jobs keep between them (core/forward/kept_layers.h).
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/forward/forward_job.h"
#include "core/forward/forward_kernels.h"
#include "core/forward/kept_layers.h"
#include "core/forward/logits_stats.h"
#include "core/thread_pool.h"

namespace {

namespace fwd = abl::fwd;

bool is_f32(const Napi::Value& v) { return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array; }

/** A new Float32Array holding `input`'s values: the in-place kernels run on it, leaving the caller's array alone. */
Napi::Float32Array copy_f32(Napi::Env env, const Napi::Float32Array& input) {
  Napi::Float32Array values = Napi::Float32Array::New(env, input.ElementLength());
  std::copy(input.Data(), input.Data() + input.ElementLength(), values.Data());
  return values;
}

/**
 * activationMul(activation, gate, up | null): the chosen table's MLP activation ("silu", "gelu_tanh" or "gelu", the
 * names of the forward spec) on Float32Arrays, so tests can bound it element-wise.
 */
Napi::Value ActivationMul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const fwd::ForwardKernels& kernels = fwd::best_forward_kernels();
  fwd::Activation activation;
  if (!info[0].IsString() || !fwd::activation_named(info[0].As<Napi::String>().Utf8Value(), &activation)) {
    Napi::TypeError::New(env, "activationMul: activation must be silu, gelu_tanh or gelu").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!is_f32(info[1])) {
    Napi::TypeError::New(env, "activationMul: gate must be a Float32Array").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const Napi::Float32Array gate = info[1].As<Napi::Float32Array>();
  const float* up = nullptr;
  if (!info[2].IsNull() && !info[2].IsUndefined()) {
    if (!is_f32(info[2]) || info[2].As<Napi::Float32Array>().ElementLength() != gate.ElementLength()) {
      Napi::TypeError::New(env, "activationMul: up must be null or a Float32Array as long as gate").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    up = info[2].As<Napi::Float32Array>().Data();
  }
  Napi::Float32Array out = Napi::Float32Array::New(env, gate.ElementLength());
  fwd::activation_kernel(kernels, activation)(gate.Data(), up, out.Data(), gate.ElementLength());
  return out;
}

/** expShifted(values, shift): the chosen table's softmax numerators {values: exp(values − shift), sum}, for tests. */
Napi::Value ExpShifted(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!is_f32(info[0]) || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "expShifted: needs a Float32Array and a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float32Array values = copy_f32(env, info[0].As<Napi::Float32Array>());
  const float shift = info[1].As<Napi::Number>().FloatValue();
  const float sum = fwd::best_forward_kernels().exp_shifted(values.Data(), values.ElementLength(), shift);
  Napi::Object result = Napi::Object::New(env);
  result.Set("values", values);
  result.Set("sum", Napi::Number::New(env, sum));
  return result;
}

/** softCap(values, cap): the chosen table's soft-capping, cap · tanh(values / cap), on a copy, for tests. */
Napi::Value SoftCap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!is_f32(info[0]) || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "softCap: needs a Float32Array and a number").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Float32Array values = copy_f32(env, info[0].As<Napi::Float32Array>());
  fwd::best_forward_kernels().soft_cap(values.Data(), values.ElementLength(), info[1].As<Napi::Number>().FloatValue());
  return values;
}

/**
 * logitsRowStats(logits, vocab): the engine's per-row argmax and log Σ exp (logits_stats.h) of rows of `vocab`
 * logits, {argmax: Uint32Array, logZ: Float64Array}, so tests check them against an fp64 reference.
 */
Napi::Value LogitsRowStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!is_f32(info[0]) || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "logitsRowStats: needs a Float32Array and a vocabulary size").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const Napi::Float32Array logits = info[0].As<Napi::Float32Array>();
  const double vocab = info[1].As<Napi::Number>().DoubleValue();
  if (!(vocab >= 1) || vocab != std::floor(vocab) || std::fmod(static_cast<double>(logits.ElementLength()), vocab) != 0) {
    Napi::TypeError::New(env, "logitsRowStats: the vocabulary size must divide the logits' length").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t v = static_cast<size_t>(vocab);
  const size_t rows = logits.ElementLength() / v;
  Napi::Uint32Array argmax = Napi::Uint32Array::New(env, rows);
  Napi::Float64Array logz = Napi::Float64Array::New(env, rows);
  abl::ThreadPool pool(0, /*spin=*/false);
  fwd::logits_row_stats(fwd::best_forward_kernels(), pool, logits.Data(), rows, v, argmax.Data(), logz.Data());
  Napi::Object result = Napi::Object::New(env);
  result.Set("argmax", argmax);
  result.Set("logZ", logz);
  return result;
}

/** releaseKeptLayers(): frees the layers forward jobs kept (kept_layers.h); returns the bytes they took. */
Napi::Value ReleaseKeptLayers(const Napi::CallbackInfo& info) {
  const uint64_t bytes = fwd::kept_layer_bytes();
  fwd::release_kept_layers();
  return Napi::Number::New(info.Env(), static_cast<double>(bytes));
}

/** keptLayerBytes(): the bytes the kept layers take now. */
Napi::Value KeptLayerBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(fwd::kept_layer_bytes()));
}

}  // namespace

void RegisterForwardTools(Napi::Env env, Napi::Object exports) {
  exports.Set("activationMul", Napi::Function::New(env, ActivationMul, "activationMul"));
  exports.Set("expShifted", Napi::Function::New(env, ExpShifted, "expShifted"));
  exports.Set("softCap", Napi::Function::New(env, SoftCap, "softCap"));
  exports.Set("logitsRowStats", Napi::Function::New(env, LogitsRowStats, "logitsRowStats"));
  exports.Set("releaseKeptLayers", Napi::Function::New(env, ReleaseKeptLayers, "releaseKeptLayers"));
  exports.Set("keptLayerBytes", Napi::Function::New(env, KeptLayerBytes, "keptLayerBytes"));
}
