// The checkpoint shards, mapped read-only. Mapping costs no memory by itself; pages count toward the process only
// once touched. Layer-streamed runs hand each layer's pages back (madvise DONTNEED: the kernel keeps them in the
// page cache, so a second run is still fast) and ask for the next layer's ahead of use (WILLNEED).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../file_io.h"

namespace abl {
namespace fwd {

class MappedFiles {
 public:
  explicit MappedFiles(const std::vector<std::string>& paths);
  ~MappedFiles();
  MappedFiles(const MappedFiles&) = delete;
  MappedFiles& operator=(const MappedFiles&) = delete;

  size_t count() const { return maps_.size(); }
  const std::string& path(uint32_t file) const { return maps_[file].path; }
  uint64_t size(uint32_t file) const { return maps_[file].size; }
  /** Pointer to [offset, offset + bytes) of a file; throws E_INVALID_JOB when the range is outside it. */
  const uint8_t* at(uint32_t file, uint64_t offset, uint64_t bytes) const;
  /** Drops the pages covering the range from this process (whole pages around it; neighbours refault if used). */
  void release(uint32_t file, uint64_t offset, uint64_t bytes) const;
  void prefetch(uint32_t file, uint64_t offset, uint64_t bytes) const;

 private:
  struct Map {
    std::string path;
    File file;
    uint8_t* base = nullptr;
    uint64_t size = 0;
  };
  std::vector<Map> maps_;
};

}  // namespace fwd
}  // namespace abl
