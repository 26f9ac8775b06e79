#include "harness/run_folder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace fs = std::filesystem;

namespace frugal {

RunPaths run_paths(const Config& cfg) {
  const std::string& name = cfg.str("run.name");
  FRUGAL_CHECK(!name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos,
               "run.name '", name, "' must be a plain folder name (not empty, no '/', not '.' or '..'): a run writes ",
               "only inside run.out_dir");
  RunPaths p;
  p.dir = fs::path(cfg.str("run.out_dir")) / name;
  p.trace = cfg.str("trace.path").empty() ? p.dir / "trace.h5" : fs::path(cfg.str("trace.path"));
  p.checkpoints = p.dir / "checkpoints";
  return p;
}

namespace {
// Who holds a lock: written into the lock file by the holder, read by whoever is refused.
std::string holder_description() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  char when[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  std::ostringstream os;
  os << "pid " << getpid() << " on " << host;
  if (const char* job = std::getenv("SLURM_JOB_ID")) {
    os << " (Slurm job " << job;
    if (const char* task = std::getenv("SLURM_ARRAY_TASK_ID")) os << ", array task " << task;
    os << ")";
  }
  os << " since " << when;
  return os.str();
}
}  // namespace

RunFolderLock::RunFolderLock(const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path file = dir / ".lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  FRUGAL_CHECK(fd_ >= 0, "cannot open the run folder's lock file '", file.string(), "': ", std::strerror(errno));
  struct flock lk = {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  if (fcntl(fd_, F_SETLK, &lk) != 0) {
    const int err = errno;
    // The holder writes its description right after it takes the lock: give it a moment.
    std::string holder;
    for (int attempt = 0; attempt < 20 && holder.empty(); attempt++) {
      if (attempt) usleep(10000);
      std::ifstream in(file);
      std::getline(in, holder);
    }
    ::close(fd_);
    fd_ = -1;
    FRUGAL_CHECK(err != EACCES && err != EAGAIN, "run folder '", dir.string(), "' is in use by another run (",
                 holder.empty() ? "holder unknown" : holder,
                 "); wait for it to end, or give this run another run.name");
    fail("cannot lock the run folder '", dir.string(), "': ", std::strerror(err));
  }
  // Overwrite in place, then cut: a reader never sees an empty file once a holder has written.
  const std::string me = holder_description() + "\n";
  if (pwrite(fd_, me.data(), me.size(), 0) == ssize_t(me.size())) {
    const int cut = ftruncate(fd_, off_t(me.size()));
    (void)cut;  // the description is a courtesy to whoever is refused; the lock is what counts
  }
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock (as does the process's end)
}

RunFolderLock& RunFolderLock::operator=(RunFolderLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

}  // namespace frugal
