// Field readers shared by the bindings (addon.cpp, addon_forward.cpp): each reads one property of a job object,
// checks its JavaScript type and range, and throws E_INVALID_JOB naming the field (`where` + "." + key) otherwise.
// The library has validated the job already; these keep the native side memory-safe whatever it is given.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/native_error.h"

namespace abl_napi {

[[noreturn]] inline void invalid(const std::string& message) { throw abl::NativeError(abl::error_code::kInvalidJob, message); }

inline Napi::Object object_field(const Napi::Object& object, const char* key, const std::string& where) {
  const Napi::Value value = object.Get(key);
  if (!value.IsObject()) invalid(where + "." + key + " must be an object");
  return value.As<Napi::Object>();
}

inline double number_field(const Napi::Object& object, const char* key, const std::string& where) {
  const Napi::Value value = object.Get(key);
  if (!value.IsNumber()) invalid(where + "." + key + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

constexpr uint64_t kMaxSafeInteger = 9007199254740991ull;

/** A non-negative integer no larger than `limit` (default 2^53 − 1, the largest a double holds exactly). */
inline uint64_t count_value(const Napi::Value& value, const std::string& what, uint64_t limit = kMaxSafeInteger) {
  if (!value.IsNumber()) invalid(what + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 0) || std::floor(number) != number || number > static_cast<double>(limit)) {
    invalid(what + " must be a non-negative integer no larger than " + (limit == kMaxSafeInteger ? std::string("2^53 - 1") : std::to_string(limit)));
  }
  return static_cast<uint64_t>(number);
}

inline uint64_t count_field(const Napi::Object& object, const char* key, const std::string& where) {
  return count_value(object.Get(key), where + "." + key);
}

inline uint32_t u32_field(const Napi::Object& object, const char* key, const std::string& where) {
  return static_cast<uint32_t>(count_value(object.Get(key), where + "." + key, 0xFFFFFFFFull));
}

inline bool bool_field(const Napi::Object& object, const char* key, const std::string& where) {
  const Napi::Value value = object.Get(key);
  if (!value.IsBoolean()) invalid(where + "." + key + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

inline bool optional_bool(const Napi::Object& object, const char* key, const std::string& where, bool fallback) {
  const Napi::Value value = object.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean()) invalid(where + "." + key + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

inline double optional_number(const Napi::Object& object, const char* key, const std::string& where, double fallback) {
  return object.Get(key).IsUndefined() ? fallback : number_field(object, key, where);
}

inline std::string string_field(const Napi::Object& object, const char* key, const std::string& where) {
  const Napi::Value value = object.Get(key);
  if (!value.IsString()) invalid(where + "." + key + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

/** A copy of a typed array of exactly this element type. */
template <class T, napi_typedarray_type Type>
std::vector<T> typed_array(const Napi::Value& value, const std::string& what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != Type) invalid(what + " has the wrong typed-array type");
  const Napi::TypedArrayOf<T> array = value.As<Napi::TypedArrayOf<T>>();
  return std::vector<T>(array.Data(), array.Data() + array.ElementLength());
}

inline abl::Dtype dtype_value(const Napi::Value& value, const std::string& what) {
  const std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (name == "F64") return abl::Dtype::F64;
  if (name == "F32") return abl::Dtype::F32;
  if (name == "F16") return abl::Dtype::F16;
  if (name == "BF16") return abl::Dtype::BF16;
  invalid(what + " must be one of F64, F32, F16, BF16");
}

}  // namespace abl_napi
