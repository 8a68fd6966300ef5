#include "mapped_files.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "../native_error.h"

namespace abl {
namespace fwd {

struct FileMapping {
  std::string path;
  File file;  // kept open for read(): the same inode as the mapping, even after a rename over the path
  uint8_t* base = nullptr;
  uint64_t size = 0;
  // What makes two opens the same file: a replaced file has another inode, a rewritten one another mtime.
  dev_t device = 0;
  ino_t inode = 0;
  int64_t mtime_ns = 0;

  FileMapping() = default;
  FileMapping(const FileMapping&) = delete;
  FileMapping& operator=(const FileMapping&) = delete;
  ~FileMapping() {
    if (base) munmap(base, size);
  }
};

namespace {

uint64_t page_size() {
  static const uint64_t size = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return size;
}

class KeptFileMappings {
 public:
  static KeptFileMappings& instance() {
    static KeptFileMappings* kept = new KeptFileMappings();  // never destroyed: jobs may still run at exit
    return *kept;
  }

  /** The mapping of `path` as it is now, and whether an earlier job left it. */
  std::shared_ptr<const FileMapping> map(const std::string& path, uint64_t job, bool& reused) {
    File file = File::open_read(path);
    struct stat info {};
    if (fstat(file.descriptor(), &info) != 0) throw_system_error("fstat", path, errno);
    const int64_t mtime_ns = int64_t(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
    const uint64_t size = static_cast<uint64_t>(info.st_size);
    std::lock_guard<std::mutex> lock(mutex_);
    for (Kept& kept : kept_) {
      const FileMapping& m = *kept.mapping;
      if (m.path == path && m.device == info.st_dev && m.inode == info.st_ino && m.size == size && m.mtime_ns == mtime_ns) {
        kept.last_job = std::max(kept.last_job, job);
        reused = true;
        return kept.mapping;
      }
    }
    auto mapping = std::make_shared<FileMapping>();
    mapping->path = path;
    mapping->size = size;
    mapping->device = info.st_dev;
    mapping->inode = info.st_ino;
    mapping->mtime_ns = mtime_ns;
    if (size > 0) {
      void* base = mmap(nullptr, size, PROT_READ, MAP_SHARED, file.descriptor(), 0);
      if (base == MAP_FAILED) throw_system_error("mmap", path, errno);
      mapping->base = static_cast<uint8_t*>(base);
    }
    mapping->file = std::move(file);
    // An older mapping of the path (the file since replaced) leaves the registry; its jobs still hold it.
    kept_.erase(std::remove_if(kept_.begin(), kept_.end(), [&](const Kept& k) { return k.mapping->path == path; }), kept_.end());
    kept_.push_back({mapping, job});
    reused = false;
    return mapping;
  }

  uint64_t next_job() {
    std::lock_guard<std::mutex> lock(mutex_);
    return ++jobs_;
  }

  void trim(uint64_t job) {
    std::lock_guard<std::mutex> lock(mutex_);
    kept_.erase(std::remove_if(kept_.begin(), kept_.end(), [&](const Kept& k) { return k.last_job < job; }), kept_.end());
  }

 private:
  struct Kept {
    std::shared_ptr<const FileMapping> mapping;
    uint64_t last_job;  // the latest job that mapped it
  };
  std::mutex mutex_;
  std::vector<Kept> kept_;
  uint64_t jobs_ = 0;
};

}  // namespace

uint64_t next_file_job() { return KeptFileMappings::instance().next_job(); }

void trim_file_mappings(uint64_t job) { KeptFileMappings::instance().trim(job); }

MappedFiles::MappedFiles(const std::vector<std::string>& paths, uint64_t job) {
  maps_.reserve(paths.size());
  for (const std::string& path : paths) {
    bool reused = false;
    maps_.push_back(KeptFileMappings::instance().map(path, job, reused));
    reused_.push_back(reused);
    if (reused) reused_bytes_ += maps_.back()->size;
  }
}

void MappedFiles::release_reused() const {
  for (uint32_t file = 0; file < maps_.size(); ++file) {
    if (reused_[file]) release(file, 0, maps_[file]->size);
  }
}

const std::string& MappedFiles::path(uint32_t file) const { return maps_[file]->path; }

uint64_t MappedFiles::size(uint32_t file) const { return maps_[file]->size; }

const uint8_t* MappedFiles::at(uint32_t file, uint64_t offset, uint64_t bytes) const {
  if (file >= maps_.size()) throw_invalid_job("tensor names file " + std::to_string(file) + " of " + std::to_string(maps_.size()));
  const FileMapping& map = *maps_[file];
  if (offset > map.size || bytes > map.size - offset) {
    throw_invalid_job("tensor bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                          ") lie outside the file (" + std::to_string(map.size) + " bytes)",
                      map.path);
  }
  return map.base + offset;
}

void MappedFiles::read(uint32_t file, uint64_t offset, uint64_t bytes, uint8_t* out) const {
  at(file, offset, bytes);  // validates the range
  maps_[file]->file.read_at(out, bytes, offset);
}

void MappedFiles::release(uint32_t file, uint64_t offset, uint64_t bytes) const {
  if (file >= maps_.size() || bytes == 0) return;
  const FileMapping& map = *maps_[file];
  const uint64_t begin = offset / page_size() * page_size();
  const uint64_t end = std::min(map.size, (offset + bytes + page_size() - 1) / page_size() * page_size());
  if (end > begin) madvise(map.base + begin, end - begin, MADV_DONTNEED);
}

void MappedFiles::prefetch(uint32_t file, uint64_t offset, uint64_t bytes) const {
  if (file >= maps_.size() || bytes == 0) return;
  const FileMapping& map = *maps_[file];
  const uint64_t begin = offset / page_size() * page_size();
  const uint64_t end = std::min(map.size, offset + bytes);
  if (end > begin) madvise(map.base + begin, end - begin, MADV_WILLNEED);
}

}  // namespace fwd
}  // namespace abl
