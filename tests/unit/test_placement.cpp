// Which GPU a rank takes (harness/placement.hpp): the rule is pure, so every case - a multi-GPU
// node, Slurm's one GPU per task, too few GPUs, none - is tested here without a GPU.
#include <gtest/gtest.h>

#include <string>

#include "harness/placement.hpp"

using namespace frugal;

namespace {

std::string error_of(int local_rank, int local_ranks, int visible) {
  try {
    gpu_for_local_rank(local_rank, local_ranks, visible, "node7");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Placement, OneGpuPerLocalRankOnAMultiGpuNode) {
  for (int r = 0; r < 4; r++) EXPECT_EQ(gpu_for_local_rank(r, 4, 4, "node7"), r);
  EXPECT_EQ(gpu_for_local_rank(1, 2, 8, "node7"), 1);  // more GPUs than ranks: the first ones
}

TEST(Placement, OneVisibleGpuIsEachRanksOwn) {  // Slurm --gpus-per-task=1: CUDA_VISIBLE_DEVICES per task
  for (int r = 0; r < 4; r++) EXPECT_EQ(gpu_for_local_rank(r, 4, 1, "node7"), 0);
}

TEST(Placement, TooFewOrNoGpusAreErrorsNamingTheNode) {
  const std::string uneven = error_of(3, 4, 2);
  EXPECT_NE(uneven.find("4 ranks on node7 but 2 visible GPUs"), std::string::npos) << uneven;
  EXPECT_NE(uneven.find("--gpus-per-task"), std::string::npos) << uneven;
  const std::string none = error_of(0, 1, 0);
  EXPECT_NE(none.find("no CUDA device is visible on node7"), std::string::npos) << none;
  EXPECT_NE(none.find("CUDA_VISIBLE_DEVICES"), std::string::npos) << none;
}
