#!/usr/bin/env bash
# `make bench`: every benchmark, each printing its figures and conditions (not part of CI's pass/fail).
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
status=0
for bench in bench_plan bench_store bench_apply bench_ssh bench_agents bench_idle; do
  echo; echo "=== $bench"
  $py "benchmarks/$bench.py" || { echo "($bench failed)"; status=1; }
done
exit $status
