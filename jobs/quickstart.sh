#!/usr/bin/env bash
# The main job: build (if needed), run a study - every method on the same model/environment, data
# and budget - print the comparison table, and write plots with analysis/report.py.
#   bash jobs/quickstart.sh [--section.key=value ...]        language models: AdamW, DDP, DiLoCo, SparseLoCo
#   bash jobs/quickstart.sh --rl [--section.key=value ...]   RL: EGGROLL, OpenAI-ES, PPO on CartPole and Pendulum
#   bash jobs/quickstart.sh --est [--section.key=value ...]  EST vs dense training, 3 seeds each
#   bash jobs/quickstart.sh --rlvr [--section.key=value ...] RL on a language model: SFT bases (made once,
#                                                            kept), then GRPO-LoRA, GRPO full, EGGROLL
#   bash jobs/quickstart.sh --next [--section.key=value ...] extrapolating GRPO-LoRA trajectories: the SFT
#                                                            bases, then NExt, AlphaRL, RL-Extra, RELEX vs GRPO
# (overrides apply to every run of the study)
set -euo pipefail
cd "$(dirname "$0")/.."
study=configs/quickstart/study.toml out=runs/quickstart
plots="loss_vs_tokens.png, loss_vs_bytes.png, loss_vs_time.png, loss_vs_flops.png"
if [ "${1:-}" = "--rl" ]; then
  shift
  study=configs/rl/study.toml out=runs/rl
  plots="return_vs_env_steps_<env>.png, return_vs_time_<env>.png"
elif [ "${1:-}" = "--rlvr" ]; then
  shift
  study=configs/rlvr/study.toml out=runs/rlvr bases=configs/rlvr/bases.toml
  plots="accuracy_vs_step_<task>.png, accuracy_vs_generated_tokens_<task>.png, accuracy_vs_time_<task>.png"
elif [ "${1:-}" = "--next" ]; then
  shift
  study=configs/next/study.toml out=runs/next bases=configs/rlvr/bases.toml report=analysis/next_report.py
  plots="accuracy_vs_rl_steps_<task>.png; tables and which claim the numbers support in report.md"
elif [ "${1:-}" = "--est" ]; then
  shift
  study=configs/est/study.toml out=runs/est
  plots="loss_vs_flops.png, loss_vs_time.png, loss_vs_tokens.png; EST vs dense table in report.md"
fi
cmake --workflow --preset release > build-quickstart.log 2>&1 || { tail -30 build-quickstart.log; exit 1; }
rm -f build-quickstart.log
if [ -n "${bases:-}" ]; then
  # The SFT bases the RL runs start from: deterministic, made once and kept (no --fresh).
  ./build/release/frugal compare "$bases" "$@"
fi
./build/release/frugal compare "$study" --fresh "$@"
# The table above came from frugal compare; report.py adds the plots (and report.md with seeds).
if [ -n "${report:-}" ]; then
  .venv/bin/python "$report" "$out" --out "$out/report"
else
  .venv/bin/python analysis/report.py "$out" --out "$out/report" > /dev/null
fi
echo "plots and report: $out/report/ ($plots, report.md)"
