// N-API bindings only: JavaScript values in, plain C++ structs to the core (native/core/), results and
// typed errors back. The typed surface is lib/native/addon.ts.
#include <napi.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>

#include "core/codec.h"
#include "core/native_error.h"
#include "core/runtime_info.h"
#include "core/shard_job.h"
#include "napi_fields.h"
#include "promise_worker.h"

// The forward engine's exports (native/addon_forward.cpp, always part of the build).
void RegisterForwardBindings(Napi::Env env, Napi::Object exports);

namespace {

using abl::NativeError;
using abl_napi::js_error;

using namespace abl_napi;

Napi::Value field(const Napi::Object& object, const char* key) { return object.Get(key); }

abl::TensorJob tensor_job(const Napi::Value& value, const std::string& where) {
  if (!value.IsObject()) invalid(where + " must be an object");
  const Napi::Object object = value.As<Napi::Object>();
  abl::TensorJob tensor;
  tensor.name = string_field(object, "name", where);
  tensor.offset = count_field(object, "offset", where);
  tensor.rows = count_field(object, "rows", where);
  tensor.cols = count_field(object, "cols", where);
  tensor.dtype = dtype_value(field(object, "dtype"), where + ".dtype");
  const uint64_t axis = count_field(object, "dModelAxis", where);
  if (axis > 1) invalid(where + ".dModelAxis must be 0 or 1");
  tensor.d_model_axis = static_cast<int>(axis);
  const Napi::Value basis = field(object, "basis");
  if (!basis.IsTypedArray() || basis.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    invalid(where + ".basis must be a Float64Array");
  }
  const Napi::Float64Array values = basis.As<Napi::Float64Array>();
  tensor.basis.assign(values.Data(), values.Data() + values.ElementLength());
  const uint64_t rank = count_field(object, "rank", where);
  if (rank > 1u << 20) invalid(where + ".rank is implausibly large");
  tensor.rank = static_cast<unsigned>(rank);
  const Napi::Value alpha = field(object, "alpha");
  if (!alpha.IsNumber()) invalid(where + ".alpha must be a number");
  tensor.alpha = alpha.As<Napi::Number>().DoubleValue();
  const Napi::Value norm_preserving = field(object, "normPreserving");
  if (!norm_preserving.IsBoolean()) invalid(where + ".normPreserving must be a boolean");
  tensor.norm_preserving = norm_preserving.As<Napi::Boolean>().Value();
  return tensor;
}

std::vector<abl::TensorJob> tensor_jobs(const Napi::Object& job, const std::string& where) {
  const Napi::Value value = field(job, "tensors");
  if (!value.IsArray()) invalid(where + ".tensors must be an array");
  const Napi::Array array = value.As<Napi::Array>();
  std::vector<abl::TensorJob> tensors;
  tensors.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    tensors.push_back(tensor_job(array.Get(i), where + ".tensors[" + std::to_string(i) + "]"));
  }
  return tensors;
}

abl::ExecutionOptions execution_options(const Napi::Object& job, const std::string& where) {
  abl::ExecutionOptions options;
  const Napi::Value chunk = field(job, "chunkBytes");
  if (!chunk.IsUndefined()) {
    options.chunk_bytes = count_value(chunk, where + ".chunkBytes");
    if (options.chunk_bytes == 0) invalid(where + ".chunkBytes must be positive");
  }
  const Napi::Value threads = field(job, "threads");
  if (!threads.IsUndefined()) {
    const uint64_t count = count_value(threads, where + ".threads");
    if (count > 1024) invalid(where + ".threads must be at most 1024");
    options.threads = static_cast<unsigned>(count);
  }
  const Napi::Value backend = field(job, "backend");
  if (!backend.IsUndefined()) options.backend = string_field(job, "backend", where);
  return options;
}

abl::ApplyJob apply_job(const Napi::Value& value) {
  if (!value.IsObject()) invalid("applyShard: the job must be an object");
  const Napi::Object object = value.As<Napi::Object>();
  abl::ApplyJob job;
  job.input_path = string_field(object, "inputPath", "job");
  job.output_path = string_field(object, "outputPath", "job");
  job.tensors = tensor_jobs(object, "job");
  job.options = execution_options(object, "job");
  const Napi::Value sync = field(object, "fsync");
  if (!sync.IsUndefined()) {
    if (!sync.IsBoolean()) invalid("job.fsync must be a boolean");
    job.sync = sync.As<Napi::Boolean>().Value();
  }
  return job;
}

abl::VerifyJob verify_job(const Napi::Value& value) {
  if (!value.IsObject()) invalid("verifyShard: the job must be an object");
  const Napi::Object object = value.As<Napi::Object>();
  abl::VerifyJob job;
  job.original_path = string_field(object, "originalPath", "job");
  job.modified_path = string_field(object, "modifiedPath", "job");
  job.tensors = tensor_jobs(object, "job");
  job.options = execution_options(object, "job");
  return job;
}

Napi::Value to_js(Napi::Env env, const abl::ApplyResult& result) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("bytesCopied", Napi::Number::New(env, static_cast<double>(result.bytes_copied)));
  object.Set("bytesRewritten", Napi::Number::New(env, static_cast<double>(result.bytes_rewritten)));
  object.Set("seconds", Napi::Number::New(env, result.seconds));
  object.Set("backend", Napi::String::New(env, result.backend));
  if (!result.backend_fallback.empty()) object.Set("backendFallback", Napi::String::New(env, result.backend_fallback));
  return object;
}

Napi::Value to_js(Napi::Env env, const abl::VerifyResult& result) {
  Napi::Array tensors = Napi::Array::New(env, result.tensors.size());
  for (uint32_t i = 0; i < result.tensors.size(); ++i) {
    const abl::VerifiedTensor& tensor = result.tensors[i];
    Napi::Object object = Napi::Object::New(env);
    object.Set("name", Napi::String::New(env, tensor.name));
    object.Set("elements", Napi::Number::New(env, static_cast<double>(tensor.elements)));
    object.Set("mismatches", Napi::Number::New(env, static_cast<double>(tensor.mismatches)));
    object.Set("maxUlpError", Napi::Number::New(env, tensor.max_ulp_error));
    object.Set("firstMismatchIndex", Napi::Number::New(env, static_cast<double>(tensor.first_mismatch_index)));
    object.Set("firstMismatchExpected", Napi::Number::New(env, tensor.first_mismatch_expected));
    object.Set("firstMismatchActual", Napi::Number::New(env, tensor.first_mismatch_actual));
    object.Set("projectionBefore", Napi::Number::New(env, tensor.projection_before));
    object.Set("projectionAfter", Napi::Number::New(env, tensor.projection_after));
    object.Set("nonFinite", Napi::Number::New(env, static_cast<double>(tensor.non_finite)));
    object.Set("firstNonFinite", Napi::Number::New(env, static_cast<double>(tensor.first_non_finite)));
    object.Set("nonFiniteOriginal", Napi::Number::New(env, static_cast<double>(tensor.non_finite_original)));
    object.Set("firstNonFiniteOriginal", Napi::Number::New(env, static_cast<double>(tensor.first_non_finite_original)));
    tensors.Set(i, object);
  }
  Napi::Object object = Napi::Object::New(env);
  object.Set("tensors", tensors);
  object.Set("untouchedIdentical", Napi::Boolean::New(env, result.untouched_identical));
  object.Set("firstUntouchedDifference", Napi::Number::New(env, static_cast<double>(result.first_untouched_difference)));
  object.Set("seconds", Napi::Number::New(env, result.seconds));
  return object;
}

struct ProgressEvent {
  uint64_t done;
  uint64_t total;
};

Napi::Value progress_to_js(Napi::Env env, const ProgressEvent& event) {
  Napi::Object progress = Napi::Object::New(env);
  progress.Set("bytesDone", Napi::Number::New(env, static_cast<double>(event.done)));
  progress.Set("bytesTotal", Napi::Number::New(env, static_cast<double>(event.total)));
  return progress;
}

/** applyShard and verifyShard differ only in job, result and core entry point. */
template <class J, class R, R (*Run)(const J&, const abl::ProgressCallback&)>
struct ShardTraits {
  using Job = J;
  using Result = R;
  using Event = ProgressEvent;
  static constexpr const char* kName = "abliterate:shard";
  static Result run(const Job& job, const std::function<void(const Event&)>& report) {
    return Run(job, [&](uint64_t done, uint64_t total) { report(Event{done, total}); });
  }
  static Napi::Value result_to_js(Napi::Env env, Result& result) { return to_js(env, result); }
  static Napi::Value event_to_js(Napi::Env env, const Event& event) { return progress_to_js(env, event); }
};

using ApplyTraits = ShardTraits<abl::ApplyJob, abl::ApplyResult, abl::apply_shard>;
using VerifyTraits = ShardTraits<abl::VerifyJob, abl::VerifyResult, abl::verify_shard>;

Napi::Value ApplyShard(const Napi::CallbackInfo& info) { return abl_napi::start_promise_job<ApplyTraits>(info, apply_job); }

Napi::Value VerifyShard(const Napi::CallbackInfo& info) { return abl_napi::start_promise_job<VerifyTraits>(info, verify_job); }

Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      invalid("decode: bytes must be a Uint8Array");
    }
    const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    const abl::Dtype dtype = dtype_value(info[1], "decode: dtype");
    const size_t size = abl::dtype_size(dtype);
    if (bytes.ByteLength() % size != 0) {
      invalid("decode: " + std::to_string(bytes.ByteLength()) + " bytes is not a whole number of " +
              abl::dtype_name(dtype) + " elements");
    }
    const size_t count = bytes.ByteLength() / size;
    Napi::Float64Array values = Napi::Float64Array::New(env, count);
    abl::decode_elements(bytes.Data(), values.Data(), count, dtype);
    return values;
  } catch (const NativeError& error) {
    throw js_error(env, error.what(), error.code(), error.path());
  }
}

Napi::Value Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      invalid("encode: values must be a Float64Array");
    }
    const Napi::Float64Array values = info[0].As<Napi::Float64Array>();
    const abl::Dtype dtype = dtype_value(info[1], "encode: dtype");
    const size_t count = values.ElementLength();
    Napi::Buffer<uint8_t> bytes = Napi::Buffer<uint8_t>::New(env, count * abl::dtype_size(dtype));
    abl::encode_elements(values.Data(), bytes.Data(), count, dtype);
    return bytes;
  } catch (const NativeError& error) {
    throw js_error(env, error.what(), error.code(), error.path());
  }
}

Napi::Value RuntimeInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const abl::RuntimeInfo runtime = abl::runtime_info();
    Napi::Object kernels = Napi::Object::New(env);
    kernels.Set("setting", Napi::String::New(env, runtime.kernel_setting));
    kernels.Set("cpu", Napi::String::New(env, runtime.cpu_level));
    kernels.Set("projection", Napi::String::New(env, runtime.projection_kernels));
    kernels.Set("verify", Napi::String::New(env, runtime.verify_kernels));
    kernels.Set("forward", Napi::String::New(env, runtime.forward_kernels));
    Napi::Object compute = Napi::Object::New(env);
    compute.Set("fp32", Napi::String::New(env, runtime.forward_kernels));
    compute.Set("bf16", Napi::String::New(env, runtime.forward_bf16_kernels));
    compute.Set("auto", Napi::String::New(env, runtime.forward_auto_kernels));
    kernels.Set("forwardCompute", compute);
    Napi::Array backends = Napi::Array::New(env, runtime.backends.size());
    for (uint32_t i = 0; i < runtime.backends.size(); ++i) {
      Napi::Object backend = Napi::Object::New(env);
      backend.Set("name", Napi::String::New(env, runtime.backends[i].name));
      backend.Set("devices", Napi::Number::New(env, runtime.backends[i].devices));
      if (!runtime.backends[i].reason.empty()) backend.Set("reason", Napi::String::New(env, runtime.backends[i].reason));
      backends.Set(i, backend);
    }
    Napi::Object object = Napi::Object::New(env);
    object.Set("threads", Napi::Number::New(env, runtime.threads));
    object.Set("kernels", kernels);
    object.Set("backends", backends);
    return object;
  } catch (const NativeError& error) {
    throw js_error(env, error.what(), error.code(), error.path());
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("applyShard", Napi::Function::New(env, ApplyShard, "applyShard"));
  exports.Set("verifyShard", Napi::Function::New(env, VerifyShard, "verifyShard"));
  exports.Set("decode", Napi::Function::New(env, Decode, "decode"));
  exports.Set("encode", Napi::Function::New(env, Encode, "encode"));
  exports.Set("runtimeInfo", Napi::Function::New(env, RuntimeInfo, "runtimeInfo"));
  RegisterForwardBindings(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(abliterate, Init)
