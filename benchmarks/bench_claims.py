"""Claim cost against the size of the store: does a claim cost the same with 200,000 tasks kept?

    .venv/bin/python benchmarks/bench_claims.py [--store json|postgres]… [--sizes 10000,200000]
                                                [--claims 500] [--blocks 10] [--json]

For each store kind (default both: the JSON file, and PostgreSQL in fresh databases of the lab's
throwaway cluster, lab/postgres.py, dropped afterwards), one store per size is filled, reopened
(the open is timed: a server's start), then the stores are measured side by side: ``--claims``
tasks claimed and completed one at a time in each (``claim_many(limit=1, start=True)`` then
``transition(completed)``: the calls behind an agent's claim and its report), in ``--blocks``
alternating blocks so that a change of the machine's load hits every size alike. The figure is
the ratio of the median claim at the largest size to the median at the smallest (target: flat,
<= ~1.2x).

What a store holds: ``--pending-share`` of its tasks pending (claimable), the rest completed
(the history a busy control plane keeps), spread over ``--hosts`` hosts with three priorities;
claims go round-robin over the hosts. Stores are filled through their own ``create_tasks`` in
batches (history inserted already completed): no SQL against private tables.
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
from contextlib import ExitStack, contextmanager
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
    compact_seconds: float | None = None  # the JSON store's full rewrite of its file at this size
    file_mb: float | None = None  # the JSON store's file after that rewrite


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
    """Add tasks ``start..stop-1``, every host getting its share of pending ones (task ``i`` is
    host ``i % hosts``'s; every ``1/pending_share``-th round over the hosts is pending). Seconds."""
    every = max(1, round(1 / pending_share)) if pending_share > 0 else 0

    def pending(i: int) -> bool:
        return bool(every) and (i // hosts) % every == 0

    began = time.perf_counter()
    for offset in range(start, stop, FILL_BATCH):
        batch = [_task(i, hosts, pending(i)) for i in range(offset, min(stop, offset + FILL_BATCH))]
        store.create_tasks(batch)
    return time.perf_counter() - began


def claim_round(
    store: TaskStore, claims: int, hosts: int, first_host: int = 0
) -> tuple[list[float], list[float]]:
    """``claims`` claim+complete cycles round-robin over the hosts: (claim s, cycle s) each."""
    claim_times: list[float] = []
    cycle_times: list[float] = []
    host = first_host
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
def store_locations(kind: str, workdir: Path, count: int) -> Iterator[list[str]]:
    """``count`` empty stores of ``kind``: new JSON files, or new databases of the lab's throwaway
    PostgreSQL cluster (dropped afterwards)."""
    if kind == "json":
        yield [str(workdir / f"claims-{n}.json") for n in range(count)]
        return
    if kind != "postgres":
        raise SystemExit(f"--store: json or postgres, not {kind!r}")
    from lab.postgres import fresh_database

    with ExitStack() as stack:
        yield [stack.enter_context(fresh_database(f"bench_claims_{n}")) for n in range(count)]


def _summary(
    size: int, fill_seconds: float, open_seconds: float, claims: list[float], cycles: list[float]
) -> Round:
    return Round(
        size=size,
        fill_seconds=round(fill_seconds, 2),
        open_seconds=round(open_seconds, 3),
        claim_ms_median=round(statistics.median(claims) * 1000, 3),
        claim_ms_p95=round(_p(claims, 0.95) * 1000, 3),
        cycle_ms_median=round(statistics.median(cycles) * 1000, 3),
        tasks_per_second=round(len(cycles) / sum(cycles)),
        claimed=len(claims),
    )


def bench_store(
    locations: list[str], sizes: list[int], claims: int, hosts: int, pending_share: float, blocks: int
) -> list[Round]:
    """One store per size, filled, reopened (timed), then measured side by side: ``blocks``
    alternating blocks of claims per store, so a change of the machine's load hits every size."""
    stores: list[TaskStore] = []
    filled: list[tuple[float, float]] = []
    try:
        for location, size in zip(locations, sizes, strict=True):
            store = _open(location)
            try:
                fill_seconds = fill(store, 0, size, hosts, pending_share)
            finally:
                _close(store)
            began = time.perf_counter()
            stores.append(_open(location))
            filled.append((fill_seconds, time.perf_counter() - began))
        times: list[tuple[list[float], list[float]]] = [([], []) for _ in sizes]
        per_block = max(1, claims // blocks)
        for block in range(blocks):
            order = range(len(stores)) if block % 2 == 0 else reversed(range(len(stores)))
            for n in order:
                claimed, cycles = claim_round(stores[n], per_block, hosts, first_host=block * per_block)
                times[n][0].extend(claimed)
                times[n][1].extend(cycles)
        rounds = [
            _summary(size, fill_s, open_s, claimed, cycles)
            for size, (fill_s, open_s), (claimed, cycles) in zip(sizes, filled, times, strict=True)
        ]
        for location, store, summary in zip(locations, stores, rounds, strict=True):
            _file_costs(location, store, summary)
    finally:
        for store in stores:
            _close(store)
    return rounds


def _file_costs(location: str, store: TaskStore, summary: Round) -> None:
    """A file store's compaction (it rewrites the whole file, now and then, under its lock) and
    the file's size: the costs that grow with the store even when claims do not."""
    compact = getattr(store, "compact", None)
    if not callable(compact):
        return
    began = time.perf_counter()
    compact()
    summary.compact_seconds = round(time.perf_counter() - began, 2)
    summary.file_mb = round(os.path.getsize(location) / 1e6, 1)


def _print(label: str, rounds: list[Round], claims: int) -> None:
    print(f"{label}:")
    for r in rounds:
        print(
            f"  {r.size:>7,} tasks: claim median {r.claim_ms_median:.2f} ms (p95 {r.claim_ms_p95:.2f}),"
            f" claim+complete median {r.cycle_ms_median:.2f} ms, {r.tasks_per_second:,.0f} tasks/s"
            f" ({r.claimed}/{claims} claimed); filled in {r.fill_seconds:.1f} s, opened in"
            f" {r.open_seconds:.2f} s"
            + (
                f"; a compaction (full rewrite, {r.file_mb:.0f} MB file) takes {r.compact_seconds:.1f} s"
                if r.compact_seconds is not None and r.file_mb is not None
                else ""
            )
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
        help="json or postgres (fresh databases of the lab's throwaway cluster); repeatable (default: both)",
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
    parser.add_argument("--blocks", type=int, default=10, help="alternating blocks of claims (default 10)")
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
            label = "JSON file" if kind == "json" else "PostgreSQL (a throwaway cluster, fsync on)"
            with store_locations(kind, Path(tmp), len(sizes)) as locations:
                rounds = bench_store(
                    locations, sizes, args.claims, args.hosts, args.pending_share, args.blocks
                )
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
