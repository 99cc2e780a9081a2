"""Benchmarks of the pull-mode protocol through a real server: pickup latency and throughput.

    .venv/bin/python benchmarks/bench_agents.py [--tasks 10000] [--agents 4] [--samples 200]
                                                [--server URL --admin-token T --agent-token T]

Without ``--server`` it starts ``graphium-run serve`` on loopback with a temporary state file.

There is no no-op task type (every type does Docker work), so the agents here are HTTP clients
speaking the agent protocol exactly as :class:`graphium.agent.Agent` does (long-poll claim, PUT
running, PUT completed) without executing anything: the figures measure the server, its store and
the protocol, not Docker.

1. Pickup latency: one agent long-polls; a task is enqueued (POST /tasks) every ~20 ms; latency is
   the time from just before the enqueue request to the claim response arriving (same clock).
2. Throughput: N tasks are enqueued first (not timed), then A agent processes claim and complete
   them; every claimed id is collected to check that none ran twice and none was lost.
"""

from __future__ import annotations

import argparse
import asyncio
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
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from graphium.tasks import Task, TaskType  # noqa: E402

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


def noop_task(run: str, i: int) -> dict[str, Any]:
    """A delete task: never executed here (the clients only speak the protocol)."""
    task = Task(
        id=f"{run}-{i:06d}",
        task_type=TaskType.delete,
        host_id=HOST,
        stack_id=f"bench-{run}",
        payload={"dockerName": f"bench-{i}"},
    )
    return task.dump()


async def _enqueue(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/tasks", json=body)
    if response.status_code not in (200, 201):
        raise SystemExit(f"POST /tasks answered {response.status_code}: {response.text[:300]}")


async def _complete(client: httpx.AsyncClient, task_id: str, agent_id: str) -> None:
    for status in ("running", "completed"):
        body: dict[str, Any] = {"status": status, "agentId": agent_id}
        if status == "completed":
            body["result"] = {}
        response = await client.put(f"/tasks/{task_id}/status", json=body)
        if response.status_code != 200:
            raise SystemExit(f"PUT status {status} answered {response.status_code}: {response.text[:300]}")


async def bench_latency(url: str, admin: str, agent: str, samples: int) -> list[float]:
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    sent: dict[str, float] = {}
    got_all = asyncio.Event()
    limits = httpx.Limits(max_connections=4)
    timeout = httpx.Timeout(10.0, read=40.0)

    async def agent_loop(client: httpx.AsyncClient) -> None:
        while len(latencies) < samples:
            response = await client.post(
                f"/agents/{HOST}/claim",
                params={"wait": 25},
                json={"agentId": "bench-latency", "leaseSeconds": 30},
            )
            now = time.perf_counter()
            if response.status_code == 204:
                continue
            if response.status_code != 200:
                raise SystemExit(f"claim answered {response.status_code}: {response.text[:300]}")
            task_id = response.json()["id"]
            latencies.append(now - sent[task_id])
            await _complete(client, task_id, "bench-latency")
        got_all.set()

    async with (
        httpx.AsyncClient(
            base_url=f"{url}/api/v1",
            headers={"Authorization": f"Bearer {admin}"},
            limits=limits,
            timeout=timeout,
        ) as admin_client,
        httpx.AsyncClient(
            base_url=f"{url}/api/v1",
            headers={"Authorization": f"Bearer {agent}"},
            limits=limits,
            timeout=timeout,
        ) as agent_client,
    ):
        worker = asyncio.create_task(agent_loop(agent_client))
        await asyncio.sleep(0.3)  # the agent is parked in its long-poll
        for i in range(samples):
            body = noop_task(run, i)
            sent[body["id"]] = time.perf_counter()
            await _enqueue(admin_client, body)
            await asyncio.sleep(0.02)
            while len(latencies) <= i and not worker.done():  # one in flight at a time
                await asyncio.sleep(0.001)
        await asyncio.wait_for(worker, 60)
    return latencies


def _agent_process(url: str, token: str, agent_id: str, out: Any) -> None:
    """One agent: claim and complete until nothing is claimable for a while; report what it ran."""

    last_done = 0.0

    async def main() -> list[str]:
        nonlocal last_done
        ran: list[str] = []
        async with httpx.AsyncClient(
            base_url=f"{url}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=40.0),
        ) as client:
            idle = 0
            while idle < 2:
                response = await client.post(
                    f"/agents/{HOST}/claim",
                    params={"wait": 1},
                    json={"agentId": agent_id, "leaseSeconds": 60},
                )
                if response.status_code == 204:
                    idle += 1
                    continue
                if response.status_code != 200:
                    raise SystemExit(f"claim answered {response.status_code}: {response.text[:300]}")
                idle = 0
                task_id = response.json()["id"]
                ran.append(task_id)
                await _complete(client, task_id, agent_id)
                last_done = time.time()
        return ran

    ran = asyncio.run(main())
    out.put((agent_id, ran, last_done))


async def _enqueue_many(url: str, admin: str, bodies: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=30
    ) as client:
        queue = list(bodies)

        async def worker() -> None:
            while queue:
                await _enqueue(client, queue.pop())

        await asyncio.gather(*(worker() for _ in range(8)))


def bench_throughput(url: str, admin: str, agent: str, count: int, agents: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    bodies = [noop_task(run, i) for i in range(count)]
    started = time.perf_counter()
    asyncio.run(_enqueue_many(url, admin, bodies))
    enqueue_seconds = time.perf_counter() - started
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_agent_process, args=(url, agent, f"bench-agent-{i}", out)) for i in range(agents)
    ]
    started = time.time()  # wall clock: comparable with the agent processes' completion times
    for p in procs:
        p.start()
    results = [out.get(timeout=3600) for _ in procs]
    # the agents stop after 2 idle 1 s polls: measure up to the last completion, not the idle tail
    finished = max(last for _, _, last in results)
    with httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {admin}"}) as client:
        stats = client.get("/tasks/stats").json()
    for p in procs:
        p.join(30)
    ran = [task_id for _, ids, _ in results for task_id in ids]
    counts = Counter(ran)
    wanted = {b["id"] for b in bodies}
    return {
        "elapsed": finished - started,
        "enqueue_seconds": enqueue_seconds,
        "per_agent": {agent_id: len(ids) for agent_id, ids, _ in results},
        "duplicates": sum(1 for v in counts.values() if v > 1),
        "lost": len(wanted - set(counts)),
        "foreign": len(set(counts) - wanted),
        "stats": stats,
        "completed_by_agents": len(ran),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=4)
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
                "agents are protocol clients (claim, PUT running, PUT completed), no Docker work"
            )
            lat = sorted(asyncio.run(bench_latency(url, admin, agent, args.samples)))
            p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
            print(
                f"pickup latency (enqueue -> claimed), 1 agent long-polling, {len(lat)} tasks enqueued one "
                f"at a time: median {statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
                f"max {lat[-1] * 1000:.1f} ms (target: median <= 100 ms)"
            )
            tp = bench_throughput(url, admin, agent, args.tasks, args.agents)
            rate = tp["completed_by_agents"] / tp["elapsed"]
            print(
                f"throughput: {args.agents} agent processes, {args.tasks} pre-enqueued tasks "
                f"(enqueued in {tp['enqueue_seconds']:.1f} s): {tp['completed_by_agents']} claimed+completed "
                f"in {tp['elapsed']:.1f} s (agents started -> last completion) = {rate:.0f} tasks/s "
                "(target >= 500); "
                f"per agent {tp['per_agent']}"
            )
            print(
                f"integrity: duplicates {tp['duplicates']}, lost {tp['lost']}, foreign {tp['foreign']}; "
                f"server stats {tp['stats']}"
            )
            ok = tp["duplicates"] == 0 and tp["lost"] == 0 and tp["foreign"] == 0
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
