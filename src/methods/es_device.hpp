#pragma once
// EGGROLL's and OpenAI-ES's perturbations on the rank's GPU (run.device = "cuda"): the same
// EsPerturbation as the CPU classes, over kernels/cuda/perturb.cu. The keyed noise is regenerated on
// the device (bit-identical to the CPU's: both call noise_block), a layer's population forward is the
// correction pass plus the one shared cuBLAS GEMM, and a layer's update is one GEMM over the stacked
// factors there. What stays on the host, and why: the environments (CPU code, bit-exact with
// Gymnasium), the fitness shaping and the optimiser (a policy is kilobytes: its update is cheaper
// than a launch), and the activation between layers. So per environment step each layer moves the
// batch's inputs up and its outputs down; per epoch the parameters go up once (set_params) and the
// update directions come down once. In a build without CUDA the factories fail with a clear message.
#include <memory>

#include "methods/es.hpp"

namespace frugal {

std::unique_ptr<EsPerturbation> make_lowrank_perturbation_cuda(int rank, float sigma);
std::unique_ptr<EsPerturbation> make_fullrank_perturbation_cuda(float sigma);

}  // namespace frugal
