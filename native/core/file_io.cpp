#include "file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "large_mappings.h"
#include "native_error.h"

namespace abl {

namespace {
// Slices keep progress reports flowing during large copies; the kernel copies each slice in one call.
constexpr uint64_t kCopySlice = 64ull << 20;
constexpr size_t kFallbackBuffer = 4u << 20;
}  // namespace

File File::open_read(const std::string& path) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_system_error("open", path, errno);
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw_system_error("fstat", path, error);
  }
  if (S_ISDIR(info.st_mode)) {
    ::close(fd);
    throw_system_error("open", path, EISDIR);
  }
  return File(fd, path);
}

File File::open_write(const std::string& path) {
  int fd;
  do fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_system_error("open", path, errno);
  return File(fd, path);
}

File::File(File&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) { other.fd_ = -1; }

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t File::size() const {
  struct stat info;
  if (::fstat(fd_, &info) != 0) throw_system_error("fstat", path_, errno);
  return static_cast<uint64_t>(info.st_size);
}

size_t File::read_some_at(void* buffer, size_t length, uint64_t offset) const {
  auto* bytes = static_cast<uint8_t*>(buffer);
  size_t done = 0;
  while (done < length) {
    const ssize_t got = ::pread(fd_, bytes + done, length - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_system_error("pread", path_, errno);
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

void File::read_at(void* buffer, size_t length, uint64_t offset) const {
  if (read_some_at(buffer, length, offset) != length) {
    throw NativeError(error_code::kIo,
                      "pread " + path_ + ": unexpected end of file before byte " + std::to_string(offset + length),
                      path_);
  }
}

void File::write_at(const void* buffer, size_t length, uint64_t offset) const {
  const auto* bytes = static_cast<const uint8_t*>(buffer);
  size_t done = 0;
  while (done < length) {
    const ssize_t put = ::pwrite(fd_, bytes + done, length - done, static_cast<off_t>(offset + done));
    if (put < 0) {
      if (errno == EINTR) continue;
      throw_system_error("pwrite", path_, errno);
    }
    if (put == 0) throw_system_error("pwrite", path_, ENOSPC);
    done += static_cast<size_t>(put);
  }
}

void File::preallocate(uint64_t length) const {
#if defined(__linux__)
  if (length == 0) return;
  int result;
  do result = ::fallocate(fd_, 0, 0, static_cast<off_t>(length));
  while (result != 0 && errno == EINTR);
  if (result == 0) return;
  const int error = errno;
  const bool refusal = error == ENOSPC || error == EFBIG
#ifdef EDQUOT
                       || error == EDQUOT
#endif
      ;
  // Filesystems without fallocate (EOPNOTSUPP, ENOSYS; some FUSE and network ones) allocate as the writes arrive.
  if (refusal) throw_system_error("fallocate", path_, error);
#else
  (void)length;
#endif
}

void File::sync() const {
  if (::fsync(fd_) != 0) throw_system_error("fsync", path_, errno);
}

void File::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0 && errno != EINTR) throw_system_error("close", path_, errno);
}

void ChunkBuffer::reserve(size_t length) {
  if (length <= capacity_) return;
  release();  // before the new allocation: one chunk's bytes at a time
  data_ = LargeAllocator<uint8_t>().allocate(length);
  capacity_ = length;
}

void ChunkBuffer::release() {
  if (data_) LargeAllocator<uint8_t>().deallocate(data_, capacity_);
  data_ = nullptr;
  capacity_ = 0;
}

void FileView::load(const File& file, uint64_t offset, size_t length) {
  if (length == 0) return;
  buffer_.reserve(length);
  file.read_at(buffer_.data(), length, offset);
}

uint64_t copy_range_slice(const File& from, const File& to, uint64_t offset, uint64_t length, bool& use_kernel_copy) {
  const uint64_t want = std::min(length, kCopySlice);
#if defined(__linux__)
  if (use_kernel_copy) {
    loff_t in_offset = static_cast<loff_t>(offset);
    loff_t out_offset = static_cast<loff_t>(offset);
    uint64_t done = 0;
    while (done < want) {
      const ssize_t copied = ::copy_file_range(from.descriptor(), &in_offset, to.descriptor(), &out_offset,
                                               static_cast<size_t>(want - done), 0);
      if (copied < 0) {
        if (errno == EINTR) continue;
        if (done == 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP ||
                          errno == ENOTSUP || errno == EPERM)) {
          use_kernel_copy = false;
          break;
        }
        // Name the side that failed: out-of-space and write errors belong to the output.
        const bool write_side = errno == ENOSPC || errno == EFBIG
#ifdef EDQUOT
                                || errno == EDQUOT
#endif
            ;
        throw_system_error("copy_file_range", write_side ? to.path() : from.path(), errno);
      }
      if (copied == 0) {
        throw NativeError(error_code::kIo,
                          "copy_file_range " + from.path() + ": unexpected end of file before byte " +
                              std::to_string(offset + want),
                          from.path());
      }
      done += static_cast<uint64_t>(copied);
    }
    if (use_kernel_copy) return done;
  }
#endif
  std::vector<uint8_t> buffer(static_cast<size_t>(std::min<uint64_t>(want, kFallbackBuffer)));
  uint64_t done = 0;
  while (done < want) {
    const size_t step = static_cast<size_t>(std::min<uint64_t>(want - done, buffer.size()));
    from.read_at(buffer.data(), step, offset + done);
    to.write_at(buffer.data(), step, offset + done);
    done += step;
  }
  return done;
}

}  // namespace abl
