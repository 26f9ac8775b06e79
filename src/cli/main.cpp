// frugal: run, compare and inspect efficient-training experiments.
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "harness/method.hpp"
#include "harness/runner.hpp"

namespace {

const char* kUsage = R"(frugal - compute- and communication-efficient training, head to head

usage:
  frugal run CONFIG.toml [--section.key=value ...]
      Run one experiment; under mpirun/srun every rank runs it together. Writes
      <run.out_dir>/<run.name>/trace.h5 (and checkpoints/ next to it). Command-line overrides beat
      the file, which beats the defaults; unknown keys and bad values are errors.
      SIGUSR1/SIGTERM: every rank checkpoints at the next step boundary and exits 0;
      rerun with --checkpoint.resume=auto to continue.
  frugal compare STUDY.toml [--fresh] [--launcher=mpirun|srun] [--dry-run] [--section.key=value ...]
      Run every entry of a study file (each with its own rank count, via mpirun, or srun inside a
      Slurm allocation), then print a comparison table. Overrides apply to every run. Entries
      continue where they stand: finished runs are kept, stopped or killed ones resume from their
      last checkpoint; --fresh starts every entry over. See configs/quickstart/study.toml.
  frugal compare STUDY.toml --list | --index=N | --table
      A study as a Slurm job array (jobs/submit_study.sh): --list prints the entries (run x seed),
      --index=N runs entry N only, --table prints the table of the traces that exist.
  frugal info TRACE.h5 [ATTRIBUTE ...]
      Summary of a trace: attributes, final metrics, datasets; with attribute names, just their
      values, one per line (e.g. `frugal info runs/x/trace.h5 status` in a job script).
  frugal methods
      The registered methods.
  frugal --help
      This text and every configuration key with its default.
)";

int print_help() {
  std::printf("%s\nmethods:\n", kUsage);
  for (const auto& m : frugal::registered_methods()) std::printf("  %-12s %s\n", m.name.c_str(), m.summary.c_str());
  std::printf("\nconfiguration keys (TOML sections; override as --section.key=value):\n%s",
              frugal::describe_schema(frugal::suite_schema()).c_str());
  return 0;
}

int run(int argc, char** argv) {
  if (argc < 3 || std::strncmp(argv[2], "--", 2) == 0) {
    std::fprintf(stderr, "frugal: error: usage: frugal run CONFIG.toml [--section.key=value ...]\n");
    return 2;
  }
  MPI_Init(&argc, &argv);
  std::vector<std::string> overrides(argv + 3, argv + argc);
  const int rc = frugal::run_experiment(argv[2], overrides);
  MPI_Finalize();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "run") return run(argc, argv);
    if (cmd == "-h" || cmd == "--help" || cmd == "help") return print_help();
    const std::vector<std::string> args(argv + 2, argv + std::max(argc, 2));
    if (cmd == "compare") return frugal::cli::compare(args);
    if (cmd == "info") return frugal::cli::info(args);
    if (cmd == "methods") {
      for (const auto& m : frugal::registered_methods()) std::printf("%-12s %s\n", m.name.c_str(), m.summary.c_str());
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "frugal: error: %s\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "%sfrugal: error: unknown command '%s'\n", kUsage, cmd.c_str());
  return 2;
}
