"""Benchmark: start-up of ``graphium-run`` (issue 10: ``--version`` and ``validate`` well under 200 ms CPU).

    .venv/bin/python benchmarks/bench_startup.py [--runs 20] [--no-engine] [--against GIT_REF]

Runs the installed ``graphium-run`` as a user does, one process after another, and prints for
each command the median over ``--runs`` runs of its CPU time (user + sys of the child, from
``getrusage(RUSAGE_CHILDREN)``) and of its wall time:

* ``graphium-run --version``;
* ``graphium-run validate`` of a small stack (one container, the examples' ``https://schema.org``
  JSON-LD spelling);
* ``graphium-run plan`` no-op: the same stack applied once on the lab's local engine, then
  planned again (observe the engine, zero changes). Skipped with ``--no-engine``.

With ``--against GIT_REF`` (e.g. the commit before a change), that commit's code is checked out
in a temporary worktree and every command runs alternately from this tree and from it (both as
``python -c "from graphium.cli import main; main()"`` with ``PYTHONPATH`` set, from a neutral
directory): a before/after in one run, under the same load.

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
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lab  # noqa: E402

RUN = str(Path(sys.executable).with_name("graphium-run"))
ENTRY = "from graphium.cli import main; main()"
BUDGET_MS = 200.0  # the bar for --version and validate


@dataclass
class Variant:
    """One way of running graphium-run: the installed command, or a tree's code (``--against``)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    state: Path
    stack: Path


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
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    return {**env, **extra}


def run_once(variant: Variant, args: list[str], extra: dict[str, str] | None = None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``graphium-run ARGS``; fails on a non-zero exit."""
    env = {**variant.env, **(extra or {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [*variant.argv, *args], env=env, cwd=variant.state.parent, capture_output=True, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(
            f"{variant.name}: graphium-run {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(
    label: str,
    command: list[str],
    variants: list[Variant],
    runs: int,
    budget: float | None,
    extra: dict[str, str],
) -> None:
    """``command`` (``{stack}`` stands for each variant's stack file) run ``runs`` times by every
    variant in turn, interleaved, so that a drifting load hits all alike."""
    argv = {v.name: [str(v.stack) if a == "{stack}" else a for a in command] for v in variants}
    for v in variants:
        run_once(v, argv[v.name], extra)  # writes the bytecode cache
    samples: dict[str, list[tuple[float, float]]] = {v.name: [] for v in variants}
    for _ in range(runs):
        for v in variants:
            samples[v.name].append(run_once(v, argv[v.name], extra))
    for v in variants:
        cpu = statistics.median(s[0] for s in samples[v.name]) * 1000
        wall = statistics.median(s[1] for s in samples[v.name]) * 1000
        verdict = ""
        if budget is not None:
            verdict = f"   (target < {budget:.0f} ms CPU: {'OK' if cpu < budget else 'SLOW'})"
        name = f" [{v.name}]" if len(variants) > 1 else ""
        print(f"{label + name:<46} CPU {cpu:6.0f} ms   wall {wall:6.0f} ms{verdict}")


def variants_for(tmp: Path, against: str | None) -> list[Variant]:
    """The installed command alone; with ``against``, this tree's code and that ref's, both run
    as ``python -c`` from a neutral directory."""
    out: list[Variant] = []
    trees = [("this tree", REPO)]
    if against:
        tree = tmp / "against"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), against], check=True
        )
        trees.append((against, tree))
    for index, (name, tree) in enumerate(trees):
        home = tmp / f"v{index}"
        home.mkdir()
        stack = home / "small.json"
        stack.write_text(json.dumps(small_stack(f"benchstartup{os.getpid()}v{index}")))
        state = home / "state.json"
        env = child_env({"GRAPHIUM_STATE": str(state)})
        if against:
            out.append(
                Variant(name, [sys.executable, "-c", ENTRY], {**env, "PYTHONPATH": str(tree)}, state, stack)
            )
        else:
            out.append(Variant("installed", [RUN], env, state, stack))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-engine", action="store_true", help="skip the plan no-op (needs Docker)")
    parser.add_argument("--against", metavar="GIT_REF", help="also run that commit's code, interleaved")
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"# bench_startup: median of {args.runs} runs per command, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"
    )
    with tempfile.TemporaryDirectory() as tmp:
        variants = variants_for(Path(tmp), args.against)
        try:
            measure("graphium-run --version", ["--version"], variants, args.runs, BUDGET_MS, {})
            validate = ["validate", "{stack}"]
            measure("graphium-run validate (1 container)", validate, variants, args.runs, BUDGET_MS, {})
            if not args.no_engine:
                plan_noop(variants, args.runs)
        finally:
            if args.against:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(Path(tmp) / "against")]
                )
    load = os.getloadavg()
    print(f"# load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at end")
    return 0


def plan_noop(variants: list[Variant], runs: int) -> None:
    """``plan`` of each variant's stack once it is applied on the local engine (zero changes)."""
    url = lab.acquire_engine()
    engine = {"DOCKER_HOST": url}
    applied: list[Variant] = []
    try:
        for v in variants:
            run_once(v, ["apply", "-y", str(v.stack)], engine)
            applied.append(v)
        measure("graphium-run plan (no-op, local)", ["plan", "{stack}"], variants, runs, None, engine)
    finally:
        for v in applied:
            run_once(v, ["destroy", "-y", str(v.stack)], engine)
        lab.release_engine()


if __name__ == "__main__":
    sys.exit(main())
