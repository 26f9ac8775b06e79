#pragma once
// Checkpoints of a run: <run dir>/checkpoints/step_XXXXXXXX/rank_XXXXX.state, one file per rank
// (core/state.hpp), and `latest` naming the newest complete one. The runner and the method each
// describe their state once (a StateFields function); the checkpointer walks that description to
// save and to load, so what is saved is exactly what is loaded.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "comm/communicator.hpp"
#include "core/state.hpp"

namespace frugal {

class Checkpointer {
 public:
  using Describe = std::function<void(StateFields&)>;
  Checkpointer(std::filesystem::path dir, int64_t keep, Communicator& comm) : dir_(std::move(dir)), keep_(keep), comm_(comm) {}

  // Whether the folder holds a complete checkpoint to resume from.
  bool has_latest() const { return std::filesystem::exists(dir_ / "latest"); }
  // Restores this rank's state from the latest checkpoint through `describe`.
  void load_latest(const Describe& describe) const;
  // Every rank writes its file for `step`; once all are complete rank 0 moves `latest` to it
  // (atomically) and deletes all but the newest `keep` checkpoints.
  void save(int64_t step, const Describe& describe) const;

 private:
  std::filesystem::path dir_;
  int64_t keep_;
  Communicator& comm_;
};

}  // namespace frugal
