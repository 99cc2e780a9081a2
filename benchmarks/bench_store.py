"""Task store throughput: durable status transitions per second on a 10,000-task file.

Target (issue 2, item 12): >= 1,000 individually durable transitions per second. Every phase starts
from a fresh copy of the same file (all tasks pending) and includes the compactions it triggers.
The file lives in a new temporary directory (``--dir`` picks the filesystem: fsync cost is the
filesystem's). Run: ``python benchmarks/bench_store.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from graphium.records.task import Task, TaskStatus, TaskType
from graphium.store.json_store import JsonTaskStore

TARGET = 1_000.0


def _tasks(count: int, hosts: int) -> list[Task]:
    """Tasks shaped like the planner's: a container spec payload of a few hundred bytes."""
    return [
        Task(
            id=f"deploy-web-{i:05}",
            task_type=TaskType.deploy,
            host_id=f"host-{i % hosts:03}",
            stack_id=f"stack-{i // 100:03}",
            payload={
                "container": f"web-{i}",
                "image": "nginx:1.27-alpine",
                "env": {"MODE": "production", "WORKERS": "4"},
                "ports": [{"containerPort": 80, "hostPort": 8000 + i % 1000, "protocol": "tcp"}],
                "labels": {"graphium.stack": f"stack-{i // 100:03}", "graphium.spec-hash": "v1:" + "ab" * 16},
            },
        )
        for i in range(count)
    ]


def _fsync_ms(directory: Path, rounds: int = 200) -> float:
    """The floor for one durable append on this filesystem."""
    probe = directory / "fsync-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        start = time.perf_counter()
        for _ in range(rounds):
            os.write(fd, b"x" * 400 + b"\n")
            os.fdatasync(fd)
        return (time.perf_counter() - start) / rounds * 1000
    finally:
        os.close(fd)
        probe.unlink()


def _fresh(base: Path, name: str) -> Path:
    """A copy of the populated, compacted file in its own directory."""
    directory = base.parent / name
    directory.mkdir()
    shutil.copy(base, directory / base.name)
    return directory / base.name


def _single(path: Path, ops: int) -> tuple[int, float, bool]:
    """pending -> running -> completed, task after task; every call its own durable write."""
    with JsonTaskStore(path) as store:
        ids = [t.id for t in store.list_tasks()]
        inode = path.stat().st_ino
        done = 0
        start = time.perf_counter()
        for task_id in ids:
            if done >= ops:
                break
            store.transition(task_id, TaskStatus.running)
            store.transition(task_id, TaskStatus.completed, result={"containerId": "c" * 64})
            done += 2
        elapsed = time.perf_counter() - start
        return done, elapsed, path.stat().st_ino != inode


def _agent_cycle(path: Path, ops: int, hosts: int) -> tuple[int, float]:
    """claim (with lease) + running + completed, round-robin over hosts; each durable."""
    with JsonTaskStore(path) as store:
        done = host = 0
        start = time.perf_counter()
        while done < ops:
            claimed = store.claim(f"host-{host % hosts:03}", "agent-1", 60)
            host += 1
            if claimed is None:
                break
            store.transition(claimed.id, TaskStatus.running, agent_id="agent-1")
            store.transition(claimed.id, TaskStatus.completed, agent_id="agent-1", result={"ok": True})
            done += 3
        return done, time.perf_counter() - start


def _batched(path: Path, ops: int, size: int) -> tuple[int, float]:
    """``size`` transitions per ``batch()``: one lock hold, one journal line, one fsync."""
    with JsonTaskStore(path) as store:
        ids = [t.id for t in store.list_tasks()]
        done = 0
        start = time.perf_counter()
        for offset in range(0, min(ops, len(ids)), size):
            with store.batch():
                for task_id in ids[offset : offset + size]:
                    store.transition(task_id, TaskStatus.running)
                    done += 1
        return done, time.perf_counter() - start


def _threads(path: Path, threads: int, ops: int, hosts: int) -> tuple[int, float]:
    """``threads`` agents served by one process and one store instance (the server's case)."""
    with JsonTaskStore(path) as store:
        counts = [0] * threads

        def agent(n: int) -> None:
            host = n
            while counts[n] < ops // threads:
                claimed = store.claim(f"host-{host % hosts:03}", f"agent-{n}", 60)
                host += threads
                if claimed is None:
                    return
                store.transition(claimed.id, TaskStatus.running, agent_id=f"agent-{n}")
                store.transition(claimed.id, TaskStatus.completed, agent_id=f"agent-{n}")
                counts[n] += 3

        workers = [threading.Thread(target=agent, args=(n,)) for n in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return sum(counts), time.perf_counter() - start


_WORKER = """
import sys
from graphium.store.json_store import JsonTaskStore
from graphium.records.task import TaskStatus
path, worker, workers, ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = JsonTaskStore(path)
hosts = sorted({t.host_id for t in store.list_tasks()})[worker::workers]
agent = f"agent-{worker}"
print("ready", flush=True)
sys.stdin.readline()
done = i = 0
while done < ops:
    task = store.claim(hosts[i % len(hosts)], agent, 60)
    i += 1
    if task is None:
        break
    store.transition(task.id, TaskStatus.running, agent_id=agent)
    store.transition(task.id, TaskStatus.completed, agent_id=agent)
    done += 3
print(done, flush=True)
"""


def _processes(path: Path, procs: int, ops: int) -> tuple[int, float]:
    """``procs`` processes sharing the file, each on its own hosts: lock contention and
    incremental catch-up included. Timed from a common start once every process has loaded."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(n), str(procs), str(ops // procs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(procs)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    total = sum(int(child.communicate()[0].strip() or 0) for child in children)
    return total, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks in the file (default 10000)")
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--ops", type=int, default=10_000, help="operations per phase (default 10000)")
    parser.add_argument("--batch", type=int, default=100, help="transitions per batch() (default 100)")
    parser.add_argument("--procs", type=int, default=2, help="processes in the shared-file phase")
    parser.add_argument("--threads", type=int, default=4, help="threads in the one-process phase")
    parser.add_argument("--dir", type=Path, default=None, help="directory for the state files")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="graphium-bench-", dir=args.dir))
    base = workdir / "base" / "state.json"
    out: dict[str, Any] = {}
    try:
        tasks = _tasks(args.tasks, args.hosts)
        with JsonTaskStore(base) as store:
            start = time.perf_counter()
            store.create_tasks(tasks)
            out["create_seconds"] = round(time.perf_counter() - start, 3)
            start = time.perf_counter()
            store.compact()
            out["compact_seconds"] = round(time.perf_counter() - start, 3)
        out["file_bytes"] = base.stat().st_size
        start = time.perf_counter()
        JsonTaskStore(base).close()
        out["open_seconds"] = round(time.perf_counter() - start, 3)
        out["fsync_ms"] = round(_fsync_ms(workdir), 3)

        count, elapsed, compacted = _single(_fresh(base, "single"), args.ops)
        out |= {"single_transitions": count, "single_per_second": round(count / elapsed)}
        out["single_compacted"] = compacted
        count, elapsed = _agent_cycle(_fresh(base, "agent"), args.ops, args.hosts)
        out |= {"agent_operations": count, "agent_per_second": round(count / elapsed)}
        count, elapsed = _batched(_fresh(base, "batched"), args.ops, args.batch)
        out |= {"batched_transitions": count, "batched_per_second": round(count / elapsed)}
        count, elapsed = _threads(_fresh(base, "threads"), args.threads, args.ops, args.hosts)
        out |= {"threads_operations": count, "threads_per_second": round(count / elapsed)}
        count, elapsed = _processes(_fresh(base, "procs"), args.procs, args.ops)
        out |= {"processes_operations": count, "processes_per_second": round(count / elapsed)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    conditions = (
        f"{args.tasks} tasks ({out['file_bytes'] / 1e6:.1f} MB TinyDB file) on {args.hosts} hosts,"
        f" fdatasync {out['fsync_ms']} ms in {workdir.parent}, Python {platform.python_version()},"
        f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    if args.json:
        print(
            json.dumps({"benchmark": "store", "target_per_second": TARGET, "conditions": conditions, **out})
        )
        return 0
    verdict = "meets" if out["single_per_second"] >= TARGET else "MISSES"
    print(f"task store: {conditions}")
    print(
        f"  individually durable transitions   {out['single_per_second']:>7,}/s"
        f"  ({out['single_transitions']} transitions, compaction during run: {out['single_compacted']};"
        f" {verdict} the {TARGET:,.0f}/s target)"
    )
    print(
        f"  agent cycle claim/running/completed {out['agent_per_second']:>6,} ops/s"
        f"  ({out['agent_operations']} operations, each durable)"
    )
    print(
        f"  batched, {args.batch} per batch()          {out['batched_per_second']:>7,}/s"
        f"  ({out['batched_transitions']} transitions)"
    )
    print(
        f"  {args.threads} threads, one store, agent cycle {out['threads_per_second']:>5,} ops/s in all"
        f"  ({out['threads_operations']} operations)"
    )
    print(
        f"  {args.procs} processes, one file, agent cycle {out['processes_per_second']:>5,} ops/s in all"
        f"  ({out['processes_operations']} operations)"
    )
    print(
        f"  create {args.tasks} tasks in one write {out['create_seconds']} s;"
        f" full compaction {out['compact_seconds']} s; open {out['open_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
