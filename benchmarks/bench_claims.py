"""Claim cost against the size of the store: does a claim cost the same with 200,000 tasks kept?

    .venv/bin/python benchmarks/bench_claims.py [--store json|postgres|postgresql://…]…
                                                [--sizes 10000,200000] [--claims 500] [--json]

For each store (default: both the JSON file and a PostgreSQL database, which a throwaway cluster
gives unless a ``postgresql://`` URL is passed), the store is filled to the first size, 500 tasks
are claimed and completed one at a time (``claim_many(limit=1, start=True)`` then
``transition(completed)``, the calls an agent's claim and report make), then the store is grown to
the next size in the same place and the same 500-task round runs again. The figure is the ratio of
the median claim at the largest size to the median at the smallest (target: flat, <= ~1.2x).

What the store holds: ``--pending-share`` of the tasks pending (claimable), the rest completed
(history a busy control plane keeps), spread over ``--hosts`` hosts with three priorities;
claims go round-robin over the hosts, so every claim scans a real queue. The store is filled
through its own ``create_tasks`` in batches (tasks inserted already completed, as history): no
SQL against private tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from graphium.records.task import Task, TaskStatus, TaskType  # noqa: E402
from graphium.store.base import TaskStore  # noqa: E402

FILL_BATCH = 10_000
STAMP = "2026-12-01T00:00:00+00:00"


@dataclass
class Round:
    """One 500-claim round at one store size."""

    size: int
    fill_seconds: float  # growing the store to ``size`` (create_tasks in batches)
    open_seconds: float  # opening the store at ``size`` afresh (a server's start)
    claim_ms_median: float
    claim_ms_p95: float
    cycle_ms_median: float  # claim + transition(completed)
    tasks_per_second: float  # of the whole round, one caller
    claimed: int


def _task(i: int, hosts: int, pending: bool) -> Task:
    """A planner-shaped deploy task; history tasks carry a result and completion stamps."""
    host = f"host-{i % hosts:03}"
    base = Task(
        id=f"claims-{i:07d}",
        task_type=TaskType.deploy,
        host_id=host,
        stack_id=f"stack-{i // 100:05d}",
        priority=i % 3,
        payload={
            "container": f"web-{i}",
            "dockerName": f"stack-{i // 100:05d}-web-{i}",
            "image": "nginx:1.27-alpine",
            "env": {"MODE": "production", "WORKERS": "4"},
            "ports": [{"containerPort": 80, "hostPort": 8000 + i % 1000, "protocol": "tcp"}],
        },
    )
    if pending:
        return base
    return base.model_copy(
        update={
            "status": TaskStatus.completed,
            "agent_id": f"{host}-agent",
            "assigned_at": STAMP,
            "started_at": STAMP,
            "completed_at": STAMP,
            "result": {"containerId": "c" * 64},
        }
    )


def fill(store: TaskStore, start: int, stop: int, hosts: int, pending_share: float) -> float:
    """Add tasks ``start..stop-1``; every ``1/pending_share``-th is pending. Returns seconds."""
    every = max(1, round(1 / pending_share)) if pending_share > 0 else 0
    began = time.perf_counter()
    for offset in range(start, stop, FILL_BATCH):
        batch = [
            _task(i, hosts, bool(every) and i % every == 0)
            for i in range(offset, min(stop, offset + FILL_BATCH))
        ]
        store.create_tasks(batch)
    return time.perf_counter() - began


def claim_round(store: TaskStore, claims: int, hosts: int) -> tuple[list[float], list[float]]:
    """``claims`` claim+complete cycles round-robin over the hosts: (claim s, cycle s) each."""
    claim_times: list[float] = []
    cycle_times: list[float] = []
    host = 0
    misses = 0
    while len(claim_times) < claims and misses < hosts:
        host_id = f"host-{host % hosts:03}"
        host += 1
        began = time.perf_counter()
        taken = store.claim_many(host_id, "bench-agent", 60, 1, start=True)
        claimed = time.perf_counter()
        if not taken:
            misses += 1
            continue
        misses = 0
        store.transition(taken[0].id, TaskStatus.completed, agent_id="bench-agent", result={"ok": True})
        claim_times.append(claimed - began)
        cycle_times.append(time.perf_counter() - began)
    return claim_times, cycle_times


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _close(store: TaskStore) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _open(location: str) -> TaskStore:
    from graphium.store.open import open_store

    return open_store(location)


@contextmanager
def store_location(kind: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """(label, location) of an empty store of ``kind``: a new JSON file, a new database of a
    throwaway cluster (dropped afterwards), or the PostgreSQL URL as given."""
    if kind == "json":
        yield "JSON file", str(workdir / "claims-state.json")
    elif kind == "postgres":
        from lab.postgres import fresh_database

        with fresh_database("bench_claims") as url:
            yield "PostgreSQL (throwaway cluster)", url
    else:
        from graphium.store.open import mask_url

        yield f"PostgreSQL {mask_url(kind)}", kind


def bench_store(
    location: str, sizes: list[int], claims: int, hosts: int, pending_share: float
) -> list[Round]:
    rounds: list[Round] = []
    filled = 0
    for size in sizes:
        store = _open(location)
        try:
            fill_seconds = fill(store, filled, size, hosts, pending_share)
        finally:
            _close(store)
        filled = size
        began = time.perf_counter()
        store = _open(location)
        open_seconds = time.perf_counter() - began
        try:
            claim_times, cycle_times = claim_round(store, claims, hosts)
        finally:
            _close(store)
        rounds.append(
            Round(
                size=size,
                fill_seconds=round(fill_seconds, 2),
                open_seconds=round(open_seconds, 3),
                claim_ms_median=round(statistics.median(claim_times) * 1000, 3),
                claim_ms_p95=round(_p(claim_times, 0.95) * 1000, 3),
                cycle_ms_median=round(statistics.median(cycle_times) * 1000, 3),
                tasks_per_second=round(len(cycle_times) / sum(cycle_times)),
                claimed=len(claim_times),
            )
        )
    return rounds


def _print(label: str, rounds: list[Round], claims: int) -> None:
    print(f"{label}:")
    for r in rounds:
        print(
            f"  {r.size:>7,} tasks: claim median {r.claim_ms_median:.2f} ms (p95 {r.claim_ms_p95:.2f}),"
            f" claim+complete median {r.cycle_ms_median:.2f} ms, {r.tasks_per_second:,.0f} tasks/s"
            f" ({r.claimed}/{claims} claimed); filled in {r.fill_seconds:.1f} s, opened in"
            f" {r.open_seconds:.2f} s"
        )
    first, last = rounds[0], rounds[-1]
    ratio = last.claim_ms_median / first.claim_ms_median
    cycle = last.cycle_ms_median / first.cycle_ms_median
    verdict = "flat" if ratio <= 1.2 else "NOT flat"
    print(
        f"  ratio {last.size:,} / {first.size:,}: claim {ratio:.2f}x, claim+complete {cycle:.2f}x"
        f" ({verdict}; target <= 1.2x)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--store",
        action="append",
        help="json, postgres (a fresh database of the lab's throwaway cluster) or a postgresql:// URL;"
        " repeatable (default: json and postgres)",
    )
    parser.add_argument(
        "--sizes", default="10000,200000", help="store sizes, ascending (default 10000,200000)"
    )
    parser.add_argument(
        "--claims", type=int, default=500, help="claim+complete cycles per size (default 500)"
    )
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument(
        "--pending-share", type=float, default=0.2, help="share of tasks pending (default 0.2)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per store instead of text")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    kinds = args.store or ["json", "postgres"]
    print(
        f"claim cost vs store size: {os.cpu_count()} cores, Python {platform.python_version()}, load average"
        f" {os.getloadavg()[0]:.2f}; {args.hosts} hosts, {args.pending_share:.0%} pending, {args.claims}"
        " claim+complete cycles per size, one caller"
    )
    with tempfile.TemporaryDirectory(prefix="graphium-bench-claims-") as tmp:
        for kind in kinds:
            with store_location(kind, Path(tmp)) as (label, location):
                rounds = bench_store(location, sizes, args.claims, args.hosts, args.pending_share)
            if args.json:
                out: dict[str, Any] = {
                    "benchmark": "claims",
                    "store": label,
                    "rounds": [asdict(r) for r in rounds],
                }
                print(json.dumps(out))
            else:
                _print(label, rounds, args.claims)
    return 0


if __name__ == "__main__":
    sys.exit(main())
