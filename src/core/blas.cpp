#include "core/blas.hpp"

#include <cblas.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace frugal {

std::string blas_core() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

#if defined(__x86_64__)  // the kernel names and the CPU checks below are x86's
namespace {

bool is_one_of(const char* name, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (std::strcmp(name, n) == 0) return true;
  return false;
}

// The OpenBLAS core this CPU's instruction set merits when the loaded one is below it, else null.
const char* better_core() {
  __builtin_cpu_init();
  const char* loaded = openblas_get_corename();
  if (!loaded) return nullptr;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512cd");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512 && !is_one_of(loaded, {"SkylakeX", "Cooperlake", "SapphireRapids"})) return "SkylakeX";
  if (!avx512 && avx2 && !is_one_of(loaded, {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"}))
    return "Haswell";
  return nullptr;
}

// Runs before main (after OpenBLAS has loaded and chosen): glibc passes main's arguments to
// constructors. Re-executes at most once (FRUGAL_BLAS_CORE marks the second start).
__attribute__((constructor)) void match_blas_kernels_to_cpu(int argc, char** argv, char** /*envp*/) {
  if (argc < 1 || !argv || std::getenv("OPENBLAS_CORETYPE") || std::getenv("FRUGAL_BLAS_CORE")) return;
  const char* core = better_core();
  if (!core) return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  setenv("FRUGAL_BLAS_CORE", openblas_get_corename(), 1);  // what it was; also stops a second re-exec
  execv("/proc/self/exe", argv);
  // Still here: exec failed (no /proc?). Carry on with the kernels already loaded.
  std::fprintf(stderr, "frugal: OpenBLAS runs its %s kernels on a CPU fit for %s; could not restart with "
                       "OPENBLAS_CORETYPE=%s (%s)\n", openblas_get_corename(), core, core, std::strerror(errno));
}

}  // namespace
#endif

}  // namespace frugal
