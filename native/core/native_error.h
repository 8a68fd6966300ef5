// The one exception type of the native core. `code` is stable and reaches JavaScript as error.code
// (lib/native/addon.ts maps it to an AbliterateError code); `path` names the file when there is one.
#pragma once

#include <stdexcept>
#include <string>

namespace abl {

namespace error_code {
inline constexpr const char* kIo = "E_IO";
inline constexpr const char* kNoSpace = "E_NOSPC";
inline constexpr const char* kInvalidJob = "E_INVALID_JOB";
inline constexpr const char* kCuda = "E_CUDA";
}  // namespace error_code

class NativeError : public std::runtime_error {
 public:
  NativeError(std::string code, const std::string& message, std::string path = "")
      : std::runtime_error(message), code_(std::move(code)), path_(std::move(path)) {}
  const std::string& code() const { return code_; }
  const std::string& path() const { return path_; }

 private:
  std::string code_;
  std::string path_;
};

/** "<syscall> <path>: <strerror>", code E_NOSPC for ENOSPC/EDQUOT, E_IO otherwise. */
[[noreturn]] void throw_system_error(const char* syscall, const std::string& path, int error_number);

[[noreturn]] void throw_invalid_job(const std::string& message, const std::string& path = "");

}  // namespace abl
