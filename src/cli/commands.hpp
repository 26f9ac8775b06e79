#pragma once
// The frugal executable's subcommands (each returns the process exit code).
#include <string>
#include <vector>

namespace frugal::cli {

// frugal compare STUDY.toml [--section.key=value ...] [--dry-run]
int compare(const std::vector<std::string>& args);
// frugal info TRACE.h5 [ATTRIBUTE ...]
int info(const std::vector<std::string>& args);
// One row per label (seeds aggregated) from the traces found under `dirs`.
void print_table(const std::vector<std::string>& traces);

}  // namespace frugal::cli
