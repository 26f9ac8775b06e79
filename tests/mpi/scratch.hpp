// Helpers of the multi-rank tests: this process's rank and the world's size, per-process scratch
// file names, and a method's checkpointed tensor read back by name.
//
// Per-process scratch file names for multi-rank tests. Every process of every mpirun job (np 2 and
// np 4 may run at the same time under `ctest -j`) gets its own name: two processes writing one
// file is a race that fails one rank and leaves the other waiting in a collective.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "core/state.hpp"
#include "harness/method.hpp"

inline std::string scratch_file(const std::string& name) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return ::testing::TempDir() + "frugal_np" + std::to_string(size) + "_rank" + std::to_string(rank) + "_" + name;
}

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// Section `name` of the method's checkpointed state (e.g. "ddp.params"), n_params floats.
inline std::vector<float> state_section(frugal::Method& m, const std::string& name) {
  frugal::StateWriter w;
  frugal::StateFields fields(w);
  m.state(fields);
  const std::string path = scratch_file("state_" + name);
  w.save(path);
  frugal::StateReader r(path);
  std::vector<float> p(static_cast<size_t>(m.num_params()));
  r.get(name, p);
  return p;
}
