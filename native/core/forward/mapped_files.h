// The checkpoint shards, mapped read-only, each with its descriptor kept open. Mapping costs no memory by itself;
// pages count toward the process only once touched. The prompt pass reads each layer's dense weights with read()
// into a staging buffer instead (staged_weights.h), so the mapping serves the embedding, the head, routed experts
// and what generation reads. Layer-streamed runs hand each layer's pages back (madvise DONTNEED: the kernel keeps
// them in the page cache, so a second run is still fast) and ask for the next layer's ahead of use (WILLNEED).
//
// A mapping outlives its job while the file is unchanged, for the next job of the process on the same files (the
// pipeline runs one per batch of prompts and per scored candidate). Each job's first touch of a 4 KB page of a
// fresh mapping faults it in, and on the project's VMs that costs more than reading it: 15 700 faults and about
// 10 % of a capture of the bench model, which a later job on a kept mapping does not pay (2.76–2.89 → 2.51–2.53 s,
// 15 700 → 4 200 faults). A file is the same while its device, inode, size and modification time are; a file
// replaced or rewritten gets a fresh mapping. When a job ends, mappings of files it did not use are unmapped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../file_io.h"

namespace abl {
namespace fwd {

/** One mapped shard (shared by the jobs that use the unchanged file). */
struct FileMapping;

class MappedFiles {
 public:
  /** Maps each path, or takes the mapping an earlier job left of the unchanged file; `job` from next_file_job. */
  MappedFiles(const std::vector<std::string>& paths, uint64_t job);
  MappedFiles(const MappedFiles&) = delete;
  MappedFiles& operator=(const MappedFiles&) = delete;

  size_t count() const { return maps_.size(); }
  /**
   * A file's mapping, shared by the jobs that found the file unchanged: while someone holds it, another mapping (of
   * a file replaced or rewritten since) never has its address (kept_layers.h keys on it).
   */
  const std::shared_ptr<const FileMapping>& mapping(uint32_t file) const { return maps_[file]; }
  const std::string& path(uint32_t file) const;
  uint64_t size(uint32_t file) const;
  /** Pointer to [offset, offset + bytes) of a file; throws E_INVALID_JOB when the range is outside it. */
  const uint8_t* at(uint32_t file, uint64_t offset, uint64_t bytes) const;
  /** Copies [offset, offset + bytes) of a file into `out` by reading it (pread): no page of the mapping is touched. */
  void read(uint32_t file, uint64_t offset, uint64_t bytes, uint8_t* out) const;
  /** Drops the pages covering the range from this process (whole pages around it; neighbours refault if used). */
  void release(uint32_t file, uint64_t offset, uint64_t bytes) const;
  void prefetch(uint32_t file, uint64_t offset, uint64_t bytes) const;
  /** Bytes of the files whose mapping an earlier job left (its touched pages need no fault). */
  uint64_t reused_bytes() const { return reused_bytes_; }
  /**
   * Drops from this process the pages of the mappings an earlier job left: a streamed run holds one layer at a time,
   * and a resident run before it may have touched every page.
   */
  void release_reused() const;

 private:
  std::vector<std::shared_ptr<const FileMapping>> maps_;
  std::vector<bool> reused_;
  uint64_t reused_bytes_ = 0;
};

/** A count of jobs; a job takes one when it starts and passes it to trim_file_mappings when it ends. */
uint64_t next_file_job();
/** Unmaps the kept mappings no job numbered `job` or later used (those still in use stay mapped for their jobs). */
void trim_file_mappings(uint64_t job);

}  // namespace fwd
}  // namespace abl
