#include "mapped_files.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "../native_error.h"

namespace abl {
namespace fwd {
namespace {

uint64_t page_size() {
  static const uint64_t size = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

MappedFiles::MappedFiles(const std::vector<std::string>& paths) {
  maps_.reserve(paths.size());
  try {
    for (const std::string& path : paths) {
      Map map;
      map.path = path;
      map.file = File::open_read(path);
      map.size = map.file.size();
      if (map.size > 0) {
        void* base = mmap(nullptr, map.size, PROT_READ, MAP_SHARED, map.file.descriptor(), 0);
        if (base == MAP_FAILED) throw_system_error("mmap", path, errno);
        map.base = static_cast<uint8_t*>(base);
      }
      maps_.push_back(std::move(map));
    }
  } catch (...) {
    for (Map& map : maps_) {
      if (map.base) munmap(map.base, map.size);
    }
    throw;
  }
}

MappedFiles::~MappedFiles() {
  for (Map& map : maps_) {
    if (map.base) munmap(map.base, map.size);
  }
}

const uint8_t* MappedFiles::at(uint32_t file, uint64_t offset, uint64_t bytes) const {
  if (file >= maps_.size()) throw_invalid_job("tensor names file " + std::to_string(file) + " of " + std::to_string(maps_.size()));
  const Map& map = maps_[file];
  if (offset > map.size || bytes > map.size - offset) {
    throw_invalid_job("tensor bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                          ") lie outside the file (" + std::to_string(map.size) + " bytes)",
                      map.path);
  }
  return map.base + offset;
}

void MappedFiles::release(uint32_t file, uint64_t offset, uint64_t bytes) const {
  if (file >= maps_.size() || bytes == 0) return;
  const Map& map = maps_[file];
  const uint64_t begin = offset / page_size() * page_size();
  const uint64_t end = std::min(map.size, (offset + bytes + page_size() - 1) / page_size() * page_size());
  if (end > begin) madvise(map.base + begin, end - begin, MADV_DONTNEED);
}

void MappedFiles::prefetch(uint32_t file, uint64_t offset, uint64_t bytes) const {
  if (file >= maps_.size() || bytes == 0) return;
  const Map& map = maps_[file];
  const uint64_t begin = offset / page_size() * page_size();
  const uint64_t end = std::min(map.size, offset + bytes);
  if (end > begin) madvise(map.base + begin, end - begin, MADV_WILLNEED);
}

}  // namespace fwd
}  // namespace abl
