#!/usr/bin/env bash
# `make bench`: every benchmark, each printing its figures and conditions (not part of CI's pass/fail).
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
status=0
for bench in bench_startup bench_plan bench_store bench_claims bench_apply bench_ssh bench_agents bench_idle bench_dashboard; do
  echo; echo "=== $bench"
  args=()
  [ "$bench" = bench_ssh ] && args=(--hosts 3,10)  # both sizes side by side (issue 10)
  $py "benchmarks/$bench.py" "${args[@]}" || { echo "($bench failed)"; status=1; }
done
exit $status
