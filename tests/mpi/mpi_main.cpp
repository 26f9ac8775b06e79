// main() for multi-rank GoogleTest programs: MPI is initialised once, every rank runs every test,
// only rank 0 prints (a failing assertion on any rank still makes that rank's exit code non-zero,
// and mpirun reports it).
//
// A fatal failure (ASSERT_*, or an exception escaping a test body) on one rank would leave the
// other ranks waiting forever in their next collective, so it aborts the whole job at once with
// the failure printed: a broken multi-rank test fails in seconds instead of hanging until ctest's
// timeout.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

namespace {
class AbortOnFatalFailure final : public ::testing::EmptyTestEventListener {
 public:
  explicit AbortOnFatalFailure(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.fatally_failed()) return;
    std::fprintf(stderr, "rank %d: fatal failure at %s:%d\n%s\nrank %d: aborting the MPI job\n", rank_,
                 r.file_name() ? r.file_name() : "unknown file", r.line_number(), r.message(), rank_);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) delete listeners.Release(listeners.default_result_printer());
  listeners.Append(new AbortOnFatalFailure(rank));
  const int result = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
