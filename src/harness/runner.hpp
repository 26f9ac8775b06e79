#pragma once
// The runner: everything around a method's step() - rank setup, the trace, metrics reduction,
// progress lines, evaluation, checkpoints, resume, and stop signals (SIGUSR1/SIGTERM: every rank
// checkpoints at the next step boundary and exits 0, as a Slurm --signal=USR1@90 --requeue job needs).
#include <string>
#include <vector>

namespace frugal {

class Schema;

// Keys of the sections the runner owns: [run] [eval] [trace] [checkpoint] [debug].
void add_run_keys(Schema& schema, const std::vector<std::string>& method_names);

// Runs one experiment on MPI_COMM_WORLD (MPI already initialised). Returns the process exit
// code: 0 finished or stopped on a signal, 2 on an error that every rank agreed on (the message
// is printed by rank 0 and recorded in the trace). Other errors abort the MPI job.
int run_experiment(const std::string& config_path, const std::vector<std::string>& overrides);

}  // namespace frugal
