#include "harness/checkpointer.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <vector>

namespace fs = std::filesystem;

namespace frugal {

namespace {
std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}
std::string rank_file(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank_%05d.state", rank);
  return buf;
}
}  // namespace

void Checkpointer::load_latest(const Describe& describe) const {
  std::ifstream in(dir_ / "latest");
  std::string name;
  in >> name;
  StateReader state((dir_ / name / rank_file(comm_.rank())).string());
  StateFields fields(state);
  describe(fields);
}

void Checkpointer::save(int64_t step, const Describe& describe) const {
  const std::string name = checkpoint_name(step);
  const fs::path dir = dir_ / name;
  fs::create_directories(dir);
  StateWriter w;
  StateFields fields(w);
  describe(fields);
  w.save((dir / rank_file(comm_.rank())).string());
  comm_.control_barrier("checkpoint.written");  // every rank's file is complete before `latest` moves
  comm_.take_records();                         // bookkeeping, not part of any step
  if (comm_.rank() != 0) return;
  const fs::path tmp = dir_ / "latest.tmp";
  std::ofstream(tmp) << name << "\n";
  fs::rename(tmp, dir_ / "latest");
  std::vector<fs::path> old;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0) old.push_back(e.path());
  std::sort(old.begin(), old.end());
  for (size_t i = 0; i + static_cast<size_t>(keep_) < old.size(); i++) fs::remove_all(old[i]);
}

}  // namespace frugal
