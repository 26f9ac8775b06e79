#pragma once
// Which OpenBLAS kernels run, and making sure they fit the CPU.
//
// OpenBLAS (a DYNAMIC_ARCH build, as Debian's) picks its kernels when it loads, from the CPU's
// family and model. A CPU newer than its table gets the generic SSE3 "Prescott" kernels: Debian 12's
// OpenBLAS 0.3.21 does that on a Sapphire Rapids-class Xeon, where one core then runs sgemm at
// 31 GFLOP/s instead of 155 with the AVX-512 (SkylakeX) kernels - every GEMM-bound method 2-5x
// slower. So every frugal program (the CLI, tests, benchmarks: this lives in frugal_lib) checks
// before main: when OpenBLAS chose a core below the CPU's instruction set (AVX-512 F/BW/VL/DQ/CD:
// SkylakeX; AVX2 + FMA: Haswell), it sets OPENBLAS_CORETYPE to that core and re-executes itself
// once (same process id, arguments and environment otherwise), so the library loads again with the
// right kernels. An OPENBLAS_CORETYPE the user set is always respected, and FRUGAL_BLAS_CORE=keep
// turns the check off. x86-64 only (elsewhere OpenBLAS's own choice stands).
#include <string>

namespace frugal {

// The kernel set OpenBLAS runs (openblas_get_corename), e.g. "SkylakeX"; recorded in each trace.
std::string blas_core();

}  // namespace frugal
