#!/usr/bin/env bash
# Submits a whole study (or sweep) to Slurm: one array task per entry (run x seed), each with the
# study's largest rank count, and a job that runs once they have all ended and prints the table
# (frugal compare --table) and writes the report (analysis/report.py).
#   jobs/submit_study.sh STUDY.toml [sbatch options ...] [-- --section.key=value ...]
#   jobs/submit_study.sh configs/sparseloco/study.toml --cpus-per-task=8 --time=02:00:00
# Run from the repository root. Resubmitting a study continues it: finished entries are kept.
set -euo pipefail
study=${1:?usage: jobs/submit_study.sh STUDY.toml [sbatch options ...] [-- overrides ...]}
shift
sbatch_opts=() overrides=()
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then shift; overrides=("$@"); break; fi
  sbatch_opts+=("$1")
  shift
done
bin=${FRUGAL_BIN:-$PWD/build/release/frugal}
listing=$("$bin" compare "$study" --list "${overrides[@]}")
entries=$(grep -c '^[0-9]' <<<"$listing")
ranks=$(sed -n 's/^# .* at most \([0-9]*\) ranks.*/\1/p' <<<"$listing")
out_dir=$(sed -n 's/^# .*out_dir //p' <<<"$listing")
echo "$listing"
array=$(sbatch --parsable --array=0-$((entries - 1)) --ntasks="$ranks" "${sbatch_opts[@]}" \
  jobs/study.sbatch "$study" "${overrides[@]}")
array=${array%%;*}
table=$(sbatch --parsable --dependency=afterany:"$array" --job-name=frugal-table --output=frugal-table-%j.out \
  --ntasks=1 --time=00:30:00 --wrap "'$bin' compare '$study' --table ${overrides[*]}; \
  [ -x .venv/bin/python ] && .venv/bin/python analysis/report.py '$out_dir' --out '$out_dir/report' || true")
echo "submitted: array job $array ($entries tasks of $ranks rank(s)); table job $table (frugal-table-$table.out)"
