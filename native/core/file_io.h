// POSIX file access for the shard executor. Every failure throws NativeError naming the syscall and the
// path ("pwrite /x/model-00001.safetensors: No space left on device").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace abl {

class File {
 public:
  static File open_read(const std::string& path);
  /** Creates or truncates. */
  static File open_write(const std::string& path);

  File() = default;
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  const std::string& path() const { return path_; }
  int descriptor() const { return fd_; }
  uint64_t size() const;

  /** Reads exactly `length` bytes at `offset`; a short file is an E_IO error. */
  void read_at(void* buffer, size_t length, uint64_t offset) const;
  /** Reads up to `length` bytes at `offset`, stopping early only at end of file; returns bytes read. */
  size_t read_some_at(void* buffer, size_t length, uint64_t offset) const;
  void write_at(const void* buffer, size_t length, uint64_t offset) const;
  /**
   * Allocates the file's blocks up front and sets its size to `length` (fallocate, mode 0), where the filesystem can;
   * elsewhere it does nothing and the writes allocate as they go. Out of space (ENOSPC, EDQUOT) or over the file-size
   * limit (EFBIG) throws, naming the file, before anything is written.
   */
  void preallocate(uint64_t length) const;
  void sync() const;
  /** Closes now and reports a failed close (delayed write errors surface there on some filesystems). */
  void close();

 private:
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

/**
 * Bytes for one chunk of a shard job, grown without being zero-filled (the job overwrites them). Large ones lie on
 * huge pages that the next shard's job takes over already faulted in (large_mappings.h): on the project's VMs a
 * fresh 4 KB page costs about 10 µs, and a shard job's four 8 MB chunk buffers were faulted in anew for every shard.
 */
class ChunkBuffer {
 public:
  ChunkBuffer() = default;
  ChunkBuffer(const ChunkBuffer&) = delete;
  ChunkBuffer& operator=(const ChunkBuffer&) = delete;
  ~ChunkBuffer() { release(); }

  /** Makes room for `length` bytes; the contents are unspecified after growing. */
  void reserve(size_t length);
  uint8_t* data() const { return data_; }

 private:
  void release();
  uint8_t* data_ = nullptr;
  size_t capacity_ = 0;
};

/**
 * A copy of [offset, offset + length) of a file, read with pread into a buffer that the view keeps: a view that
 * lives for a whole shard job loads chunk after chunk into the same, already faulted-in pages.
 *
 * Why not mmap: on the project's VMs, mapping and populating page-cache pages and then touching them costs several
 * times the copy. Comparing two 440 MB shards ran at 1.3–1.45 GB/s through fresh 1–4 MB mappings and at 6–7 GB/s
 * through pread into 256 KB buffers (C micro-benchmark, alternated). A copy also never raises SIGBUS when another
 * process truncates the file, and works on filesystems that cannot map.
 */
class FileView {
 public:
  FileView() = default;
  FileView(const FileView&) = delete;
  FileView& operator=(const FileView&) = delete;

  /** Replaces the view with the given range (which must lie inside the file; a short file is an E_IO error). */
  void load(const File& file, uint64_t offset, size_t length);
  const uint8_t* data() const { return buffer_.data(); }

 private:
  ChunkBuffer buffer_;
};

/**
 * Copies [offset, offset + length) of `from` to the same offset in `to`: copy_file_range (in-kernel copy,
 * reflink where the filesystem shares extents), falling back to a pread/pwrite loop where the kernel
 * refuses (EXDEV, ENOSYS, EINVAL, EOPNOTSUPP). `on_progress(bytes)` is called after every slice.
 */
template <class OnProgress>
void copy_range(const File& from, const File& to, uint64_t offset, uint64_t length, OnProgress&& on_progress);

/**
 * Copies the first slice (at most 64 MiB) of the range and returns its length. Clears `use_kernel_copy`
 * when copy_file_range is refused, so later slices go straight to the pread/pwrite loop.
 */
uint64_t copy_range_slice(const File& from, const File& to, uint64_t offset, uint64_t length, bool& use_kernel_copy);

template <class OnProgress>
void copy_range(const File& from, const File& to, uint64_t offset, uint64_t length, OnProgress&& on_progress) {
  bool use_kernel_copy = true;
  while (length > 0) {
    const uint64_t copied = copy_range_slice(from, to, offset, length, use_kernel_copy);
    offset += copied;
    length -= copied;
    on_progress(copied);
  }
}

}  // namespace abl
