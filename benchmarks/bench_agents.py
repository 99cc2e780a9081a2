"""Benchmarks of the pull-mode protocol through a real server: pickup latency and throughput.

    .venv/bin/python benchmarks/bench_agents.py [--tasks 10000] [--agents 4] [--slots 32]
                                                [--samples 200]
                                                [--server URL --admin-token T --agent-token T]

Without ``--server`` it starts ``graphium-run serve`` on loopback with a temporary state file.

The agents are the real :class:`graphium.control.agent.Agent` (its claims, heartbeats, batched reports and
observation reports, over HTTP) with a null engine in place of Docker: every task is a delete of
a container that is not there, answered at once. There is no no-op task type (every type does
Docker work), so this is how the figures measure the server, its store and the protocol, not
Docker.

1. Pickup latency: one agent long-polls; a task is enqueued (POST /tasks) every ~20 ms; latency is
   the time from just before the enqueue request to the agent's engine being asked to run it
   (same process, same clock).
2. Throughput: N tasks are enqueued first (not timed), then A agent processes with S slots each
   claim and complete them; every task each agent executed is collected to check that none ran
   twice and none was lost. The rate is over the server's own stamps, from the first claim to the
   last completion; the wall time from starting the agent processes is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from graphium.control.agent import Agent  # noqa: E402
from graphium.plan.model import ObservedHost  # noqa: E402
from graphium.records.task import Task, TaskStatus, TaskType  # noqa: E402

HOST = "bench-host"
RUNNER = [sys.executable, "-c", "from graphium.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(tokens: Path, *args: str) -> str:
    out = subprocess.run(
        [*RUNNER, "token", "create", *args, "--tokens", str(tokens)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return out.stdout.strip().splitlines()[-1].strip()


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str, str]:
    tokens, state, inventory = workdir / "tokens.json", workdir / "state.json", workdir / "inventory.json"
    inventory.write_text(json.dumps({"hosts": [{"@id": HOST, "connection": "agent"}]}))
    admin, agent = _token(tokens, "--admin"), _token(tokens, "--agent", HOST)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        *RUNNER,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state",
        str(state),
        "--tokens",
        str(tokens),
        "-i",
        str(inventory),
    ]
    log = (workdir / "server.log").open("ab")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {(workdir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(
                f"{url}/api/v1/tasks/stats", headers={"Authorization": f"Bearer {admin}"}
            ).is_success:
                return proc, url, admin, agent
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start within 30 s")


class NullEngine:
    """Stands in for :class:`graphium.docker.engine.DockerEngine`: containers are never there, so a
    delete task succeeds at once (``removed: False``). ``seen`` records when each was asked."""

    def __init__(self) -> None:
        self.host_id = HOST
        self.seen: dict[str, float] = {}
        self.asked = asyncio.Event()

    async def server_version(self) -> str:
        return "null"

    async def observe(self, stack: str | None = None) -> ObservedHost:
        return ObservedHost(host=HOST)

    async def remove(self, name_or_id: str, stop_timeout: float = 10.0) -> bool:
        self.seen[name_or_id] = time.perf_counter()
        self.asked.set()
        return False

    async def close(self) -> None:
        pass


def bench_agent(url: str, token: str, agent_id: str, slots: int, engine: NullEngine) -> Agent:
    """The real agent; the null engine stands in for DockerEngine by duck typing."""
    return Agent(
        HOST,
        url,
        token,
        agent_id=agent_id,
        slots=slots,
        lease_seconds=60,
        engine=engine,  # type: ignore[arg-type]
    )


def noop_task(run: str, i: int) -> dict[str, Any]:
    """A delete of a container that does not exist: the null engine answers it at once."""
    task_id = f"{run}-{i:06d}"
    task = Task(
        id=task_id,
        task_type=TaskType.delete,
        host_id=HOST,
        stack_id=f"bench-{run}",
        payload={"dockerName": task_id},
    )
    return task.dump()


async def _enqueue(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/tasks", json=body)
    if response.status_code not in (200, 201):
        raise SystemExit(f"POST /tasks answered {response.status_code}: {response.text[:300]}")


async def bench_latency(url: str, admin: str, agent: str, samples: int, slots: int) -> list[float]:
    run = uuid.uuid4().hex[:8]
    engine = NullEngine()
    worker = bench_agent(url, agent, "bench-latency", slots, engine)
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=10
    ) as admin_client:
        running = asyncio.create_task(worker.run())
        await asyncio.sleep(0.5)  # the agent is parked in its long-poll
        try:
            for i in range(samples):
                body = noop_task(run, i)
                sent = time.perf_counter()
                await _enqueue(admin_client, body)
                while body["id"] not in engine.seen:  # one in flight at a time
                    if running.done():
                        raise SystemExit("the latency agent stopped")
                    engine.asked.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(engine.asked.wait(), 10)
                latencies.append(engine.seen[body["id"]] - sent)
                await asyncio.sleep(0.02)
        finally:
            worker.stop()
            await asyncio.wait_for(running, 30)
    return latencies


def _agent_process(url: str, token: str, agent_id: str, slots: int, out: Any, stop: Any) -> None:
    """One real agent until the parent says every task ended; reports what it executed."""

    async def main() -> list[tuple[str, str | None]]:
        agent = bench_agent(url, token, agent_id, slots, NullEngine())
        running = asyncio.create_task(agent.run())
        await asyncio.to_thread(stop.wait)
        agent.stop()
        await running
        return [(o.task_id, o.status.value if o.status else None) for o in agent.outcomes]

    out.put((agent_id, asyncio.run(main())))


async def _enqueue_many(url: str, admin: str, bodies: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=30
    ) as client:
        queue = list(bodies)

        async def worker() -> None:
            while queue:
                await _enqueue(client, queue.pop())

        await asyncio.gather(*(worker() for _ in range(8)))


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def bench_throughput(url: str, admin: str, agent: str, count: int, agents: int, slots: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    bodies = [noop_task(run, i) for i in range(count)]
    started = time.perf_counter()
    asyncio.run(_enqueue_many(url, admin, bodies))
    enqueue_seconds = time.perf_counter() - started
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_agent_process, args=(url, agent, f"bench-agent-{i}", slots, out, stop))
        for i in range(agents)
    ]
    with httpx.Client(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=60
    ) as client:
        wall = time.time()
        for p in procs:
            p.start()
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            stats = client.get("/tasks/stats", params={"stackId": f"bench-{run}"}).json()
            if stats["completed"] + stats["failed"] + stats["cancelled"] >= count:
                break
            time.sleep(0.1)
        stop.set()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(30)
        stored = client.get("/tasks", params={"stackId": f"bench-{run}"}).json()
    ran = [task_id for _, outcomes in results for task_id, status in outcomes if status == "completed"]
    counts = Counter(ran)
    wanted = {b["id"] for b in bodies}
    first = min(_stamp(t["assignedAt"]) for t in stored)
    last = max(_stamp(t["completedAt"]) for t in stored if t["completedAt"])
    return {
        "elapsed": last - first,
        "wall": last - wall,
        "enqueue_seconds": enqueue_seconds,
        "per_agent": {agent_id: len(outcomes) for agent_id, outcomes in results},
        "duplicates": sum(1 for v in counts.values() if v > 1),
        "lost": len(wanted - set(counts)),
        "foreign": len(set(counts) - wanted),
        "unreported": sum(1 for _, outcomes in results for _, status in outcomes if status != "completed"),
        "not_completed": sum(1 for t in stored if t["status"] != TaskStatus.completed.value),
        "stats": stats,
        "completed_by_agents": len(ran),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--slots", type=int, default=32, help="tasks each agent runs at once")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--server", help="an already running server (else one is started)")
    parser.add_argument("--admin-token", default=os.environ.get("GRAPHIUM_ADMIN_TOKEN"))
    parser.add_argument(
        "--agent-token",
        default=os.environ.get("GRAPHIUM_AGENT_TOKEN"),
        help=f"an agent token for host {HOST}",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="graphium-bench-") as tmp:
        proc = None
        if args.server:
            url, admin, agent = args.server.rstrip("/"), args.admin_token, args.agent_token
            if not (admin and agent):
                raise SystemExit("--server needs --admin-token and --agent-token")
        else:
            proc, url, admin, agent = start_server(Path(tmp))
        try:
            print(
                f"server {url}; {os.cpu_count()} CPU(s); python {sys.version.split()[0]}; "
                f"agents are graphium.control.agent.Agent with {args.slots} slots and a null engine "
                "(no Docker work)"
            )
            lat = sorted(asyncio.run(bench_latency(url, admin, agent, args.samples, args.slots)))
            p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
            print(
                f"pickup latency (enqueue -> agent starts it), 1 agent long-polling, {len(lat)} tasks "
                f"enqueued one at a time: median {statistics.median(lat) * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms (target: median <= 100 ms)"
            )
            tp = bench_throughput(url, admin, agent, args.tasks, args.agents, args.slots)
            rate = tp["completed_by_agents"] / tp["elapsed"]
            print(
                f"throughput: {args.agents} agent processes x {args.slots} slots, {args.tasks} pre-enqueued "
                f"tasks (enqueued in {tp['enqueue_seconds']:.1f} s): {tp['completed_by_agents']} "
                f"claimed+completed in {tp['elapsed']:.1f} s (first claim -> last completion, server "
                f"stamps) = {rate:.0f} tasks/s (target >= 500); {tp['wall']:.1f} s from starting the "
                f"agent processes = {tp['completed_by_agents'] / tp['wall']:.0f} tasks/s; "
                f"per agent {tp['per_agent']}"
            )
            print(
                f"integrity: duplicates {tp['duplicates']}, lost {tp['lost']}, foreign {tp['foreign']}, "
                f"unreported {tp['unreported']}, not completed {tp['not_completed']}; "
                f"server stats for the run {tp['stats']}"
            )
            ok = not (
                tp["duplicates"] or tp["lost"] or tp["foreign"] or tp["unreported"] or tp["not_completed"]
            )
            print("integrity OK" if ok else "INTEGRITY FAILURE")
            if not ok:
                sys.exit(1)
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)


if __name__ == "__main__":
    main()
