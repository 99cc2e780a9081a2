"""Benchmark: start-up of ``graphium-run`` (issue 10: ``--version`` and ``validate`` well under 200 ms CPU).

    .venv/bin/python benchmarks/bench_startup.py [--runs 20] [--no-engine]

Runs the installed ``graphium-run`` as a user does, one process after another, and prints for
each command the median over ``--runs`` runs of its CPU time (user + sys of the child, from
``getrusage(RUSAGE_CHILDREN)``) and of its wall time:

* ``graphium-run --version``;
* ``graphium-run validate`` of a small stack (one container, the examples' ``https://schema.org``
  JSON-LD spelling);
* ``graphium-run plan`` no-op: the same stack applied once on the lab's local engine, then
  planned again (observe the engine, zero changes). Skipped with ``--no-engine``.

Each command runs once first, untimed, so that Python's bytecode cache is written; the children
run without ``PYTHONDONTWRITEBYTECODE`` (with it, every run would recompile graphium's sources,
which no installed copy does). The load average is printed with the figures: on a busy machine
CPU time grows too (caches, frequency), so compare figures taken under similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lab  # noqa: E402

RUN = str(Path(sys.executable).with_name("graphium-run"))
BUDGET_MS = 200.0  # the bar for --version and validate


def small_stack(name: str) -> dict[str, object]:
    web = {
        "name": "web",
        "image": "graphium-test/web:1",
        "environment": {"MODE": "bench"},
        "restartPolicy": "unless-stopped",
    }
    return {
        "@context": "https://schema.org",
        "@graph": [{"@type": "datacenter:Stack", "name": name, "hasPart": [web]}],
    }


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``graphium-run ARGS``; fails on a non-zero exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([RUN, *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"graphium-run {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(label: str, args: list[str], env: dict[str, str], runs: int, budget: float | None) -> None:
    run_once(args, env)  # writes the bytecode cache
    samples = [run_once(args, env) for _ in range(runs)]
    cpu = statistics.median(s[0] for s in samples) * 1000
    wall = statistics.median(s[1] for s in samples) * 1000
    verdict = (
        "" if budget is None else f"   (target < {budget:.0f} ms CPU: {'OK' if cpu < budget else 'SLOW'})"
    )
    print(f"{label:<34} CPU {cpu:6.0f} ms   wall {wall:6.0f} ms{verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-engine", action="store_true", help="skip the plan no-op (needs Docker)")
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"# bench_startup: median of {args.runs} runs per command, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"
    )
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.json"
        stack = Path(tmp) / "small.json"
        name = f"benchstartup{os.getpid()}"
        stack.write_text(json.dumps(small_stack(name)))
        env = child_env({"GRAPHIUM_STATE": str(state)})
        measure("graphium-run --version", ["--version"], env, args.runs, BUDGET_MS)
        measure("graphium-run validate (1 container)", ["validate", str(stack)], env, args.runs, BUDGET_MS)
        if not args.no_engine:
            plan_noop(stack, env, args.runs)
    load = os.getloadavg()
    print(f"# load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end")
    return 0


def plan_noop(stack: Path, env: dict[str, str], runs: int) -> None:
    """``plan`` of the stack once it is applied on the local engine (zero changes), then destroy."""
    url = lab.acquire_engine()
    engine_env = {**env, "DOCKER_HOST": url}
    try:
        run_once(["apply", "-y", str(stack)], engine_env)
        try:
            measure("graphium-run plan (no-op, local)", ["plan", str(stack)], engine_env, runs, None)
        finally:
            run_once(["destroy", "-y", str(stack)], engine_env)
    finally:
        lab.release_engine()


if __name__ == "__main__":
    sys.exit(main())
