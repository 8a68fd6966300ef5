// One AsyncWorker for every promise-returning binding (applyShard, verifyShard, forward): the job runs on a
// worker thread, progress reaches JS through a thread-safe function, and C++ errors become JS errors with
// `.code` and `.path`. A binding supplies a Traits type:
//   using Job, Result, Event;  static constexpr const char* kName;
//   static Result run(const Job&, const std::function<void(const Event&)>& report);
//   static Napi::Value result_to_js(Napi::Env, Result&);
//   static Napi::Value event_to_js(Napi::Env, const Event&);
#pragma once

#include <napi.h>

#include <exception>
#include <functional>
#include <new>
#include <string>
#include <utility>

#include "core/native_error.h"

namespace abl_napi {

inline Napi::Error js_error(Napi::Env env, const std::string& message, const std::string& code, const std::string& path) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  return error;
}

/**
 * The promise of one job. It settles only when the work is done AND every queued progress call has been
 * delivered (the thread-safe function is finalized), so no progress arrives after the promise settles.
 */
template <class Traits>
struct Settlement {
  explicit Settlement(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise::Deferred deferred;
  bool work_done = false;
  bool progress_drained = true;
  typename Traits::Result result;
  Napi::ObjectReference error;

  void settle_if_ready(Napi::Env env) {
    if (!work_done || !progress_drained) return;
    if (!error.IsEmpty()) {
      deferred.Reject(error.Value());
    } else {
      deferred.Resolve(Traits::result_to_js(env, result));
    }
    delete this;
  }
};

template <class Traits>
class PromiseWorker final : public Napi::AsyncWorker {
  using Event = typename Traits::Event;

 public:
  PromiseWorker(Napi::Env env, typename Traits::Job job, const Napi::Value& on_progress, Settlement<Traits>* settlement)
      : Napi::AsyncWorker(env, Traits::kName), job_(std::move(job)), settlement_(settlement) {
    if (on_progress.IsFunction()) {
      settlement_->progress_drained = false;
      progress_ = Napi::ThreadSafeFunction::New(env, on_progress.As<Napi::Function>(), Traits::kName, 0, 1, settlement_,
                                                [](Napi::Env env, Settlement<Traits>* settlement) {
                                                  settlement->progress_drained = true;
                                                  settlement->settle_if_ready(env);
                                                });
    }
  }

  void Execute() override {
    std::function<void(const Event&)> report = [](const Event&) {};
    if (progress_) {
      report = [this](const Event& event) {
        auto* copy = new Event(event);
        if (progress_.NonBlockingCall(copy, deliver) != napi_ok) delete copy;
      };
    }
    try {
      result_ = Traits::run(job_, report);
    } catch (const abl::NativeError& error) {
      code_ = error.code();
      path_ = error.path();
      SetError(error.what());
    } catch (const std::bad_alloc&) {
      code_ = "E_NOMEM";
      SetError(std::string(Traits::kName) + ": out of memory");
    } catch (const std::exception& error) {
      code_ = "E_INTERNAL";
      SetError(error.what());
    }
    if (progress_) progress_.Release();
  }

  void OnOK() override {
    settlement_->result = std::move(result_);
    settlement_->work_done = true;
    settlement_->settle_if_ready(Env());
  }

  void OnError(const Napi::Error& error) override {
    settlement_->error = Napi::Persistent(js_error(Env(), error.Message(), code_, path_).Value());
    settlement_->work_done = true;
    settlement_->settle_if_ready(Env());
  }

 private:
  static void deliver(Napi::Env env, Napi::Function callback, Event* event) {
    if (env != nullptr && callback != nullptr) callback.Call({Traits::event_to_js(env, *event)});
    delete event;
  }

  typename Traits::Job job_;
  typename Traits::Result result_;
  std::string code_;
  std::string path_;
  Napi::ThreadSafeFunction progress_;
  Settlement<Traits>* settlement_;
};

/** Parses the job on the main thread (a parse error rejects the promise) and queues the worker. */
template <class Traits>
Napi::Value start_promise_job(const Napi::CallbackInfo& info, typename Traits::Job (*parse)(const Napi::Value&)) {
  Napi::Env env = info.Env();
  auto* settlement = new Settlement<Traits>(env);
  const Napi::Promise promise = settlement->deferred.Promise();
  try {
    auto* worker = new PromiseWorker<Traits>(env, parse(info[0]), info[1], settlement);
    worker->Queue();
  } catch (const abl::NativeError& error) {
    settlement->deferred.Reject(js_error(env, error.what(), error.code(), error.path()).Value());
    delete settlement;
  }
  return promise;
}

}  // namespace abl_napi
