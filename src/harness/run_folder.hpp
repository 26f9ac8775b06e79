#pragma once
// A run's folder, <run.out_dir>/<run.name>/: where its trace and checkpoints go, and the lock
// that makes it one run's at a time. Rank 0 takes the lock (a POSIX record lock on
// <folder>/.lock, which works on local disks and on NFS/Lustre mounts with locking) before it
// looks at or creates anything in the folder and holds it until the process ends, so two jobs
// given the same name - a mis-sized job array, a resubmission while the first still runs - can
// never write one trace: the second fails at once with a message naming the holder.
#include <filesystem>
#include <string>

#include "core/config.hpp"

namespace frugal {

struct RunPaths {
  std::filesystem::path dir, trace, checkpoints;
};

// The paths of the configured run; run.name must be a plain folder name (not empty, no '/', not
// "." or ".."), so that a run can only write inside run.out_dir.
RunPaths run_paths(const Config& cfg);

class RunFolderLock {
 public:
  RunFolderLock() = default;
  // Creates the folder if needed and takes its lock, or throws an Error naming who holds it.
  explicit RunFolderLock(const std::filesystem::path& dir);
  ~RunFolderLock();
  RunFolderLock(RunFolderLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RunFolderLock& operator=(RunFolderLock&& other) noexcept;
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace frugal
