#pragma once
// EST's three-stage schedule (methods.md section 5), separate from the method so tests and the
// study tooling can ask what a configuration will do:
//   stage 1, steps [0, stage1_end):          sample blocks, heads and MLP units
//   stage 2, steps [stage1_end, stage2_end): every block, still sample heads and units
//   stage 3, steps [stage2_end, run.steps):  the dense model
// Boundaries are fractions of run.steps (rounded to whole steps). The paper's values are not
// public; the defaults (stage 1 the first 20% of steps at rates 0.5/0.5/0.5, stage 2 to 65% at
// heads 0.5 and units 0.5) save 26.6% of training FLOPs on GPT-2 124M at T = 1024, the paper's
// 26.7% regime; smaller models, where the fixed embedding/head costs weigh less, save more.
#include <cstdint>

#include "core/config.hpp"
#include "model/subnet.hpp"

namespace frugal {

struct EstSchedule {
  int64_t stage1_end = 0, stage2_end = 0, total_steps = 0;  // in steps
  SubnetRates stage1, stage2;                                // stage2.layers is always 1
  bool share_across_layers = false;
  bool update_unselected = false;  // true: zero-gradient AdamW update; false: no update
};

void add_est_keys(Schema& schema);
EstSchedule est_schedule_from(const Config& cfg, int64_t total_steps);
int est_stage(const EstSchedule& s, int64_t step);  // 1, 2 or 3
// The subnetwork of a step: a pure function of (seed, step), so all ranks and a resumed run draw
// the same one without communicating. Stage 3 gives the full model.
GPT2Subnet est_subnet(const EstSchedule& s, const GPT2Config& c, uint64_t seed, int64_t step);
// Training FLOPs of the whole schedule relative to dense training, 1 - sum(EST) / sum(dense). Exact:
// the kept counts, hence each stage's FLOPs, are fixed by the rates.
double est_flops_saving(const EstSchedule& s, const GPT2Config& c, int B, int T);

}  // namespace frugal
