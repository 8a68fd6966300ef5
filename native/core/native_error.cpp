#include "native_error.h"

#include <cerrno>
#include <cstring>

namespace abl {

void throw_system_error(const char* syscall, const std::string& path, int error_number) {
  const bool no_space = error_number == ENOSPC
#ifdef EDQUOT
                        || error_number == EDQUOT
#endif
      ;
  std::string message = std::string(syscall) + " " + path + ": " + std::strerror(error_number);
  throw NativeError(no_space ? error_code::kNoSpace : error_code::kIo, message, path);
}

void throw_invalid_job(const std::string& message, const std::string& path) {
  throw NativeError(error_code::kInvalidJob, path.empty() ? message : path + ": " + message, path);
}

}  // namespace abl
