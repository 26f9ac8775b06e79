// Per-process scratch file names for multi-rank tests. Every process of every mpirun job (np 2 and
// np 4 may run at the same time under `ctest -j`) gets its own name: two processes writing one
// file is a race that fails one rank and leaves the other waiting in a collective.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>

#include <string>

inline std::string scratch_file(const std::string& name) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return ::testing::TempDir() + "frugal_np" + std::to_string(size) + "_rank" + std::to_string(rank) + "_" + name;
}
