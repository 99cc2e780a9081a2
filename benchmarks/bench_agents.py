"""Benchmarks of the pull-mode protocol through real servers: pickup latency and throughput.

    .venv/bin/python benchmarks/bench_agents.py [--setup json:1] [--setup postgres:2] …
                                                [--tasks 10000] [--agents 8] [--slots 32]
                                                [--samples 200]
                                                [--server URL --admin-token T --agent-token T]

Each ``--setup STORE[:REPLICAS]`` starts REPLICAS ``graphium-run serve`` processes on loopback on
one store: ``json`` a temporary state file (one server only), ``postgres`` a fresh database of the
lab's throwaway PostgreSQL cluster (lab/postgres.py; dropped afterwards), or a ``postgresql://``
URL. The default measures ``json:1`` then ``postgres:2`` in one run and prints the throughput
ratio (issue 10). ``--server`` measures a server that runs already instead.

The agents are the real :class:`graphium.control.agent.Agent` (its claims, heartbeats, batched reports and
observation reports, over HTTP) with a null engine in place of Docker: every task is a delete of
a container that is not there, answered at once. There is no no-op task type (every type does
Docker work), so this is how the figures measure the server, its store and the protocol, not
Docker.

1. Pickup latency: one agent long-polls; a task is enqueued (POST /tasks) every ~20 ms; latency is
   the time from just before the enqueue request to the agent's engine being asked to run it
   (same process, same clock). With several replicas the task is enqueued on the first and the
   agent long-polls the last: the wake-up crosses replicas (LISTEN/NOTIFY).
2. Throughput: N tasks are enqueued first (not timed; straight into the store), then A agent
   processes with S slots each, spread round-robin over the replicas, claim and complete them;
   every task each agent executed is collected to check that none ran twice and none was lost.
   The rate is over the server's own stamps, from the first claim to the last completion; the
   wall time from starting the agent processes is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from graphium.control.agent import Agent  # noqa: E402
from graphium.plan.model import ObservedHost  # noqa: E402
from graphium.records.task import Task, TaskStatus, TaskType  # noqa: E402
from graphium.store.open import is_database_url  # noqa: E402

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


@dataclass
class Servers:
    """Server processes on one store: their URLs, the tokens they all accept, where they log."""

    procs: list[subprocess.Popen[bytes]]
    urls: list[str]
    admin: str
    agent: str
    logs: list[Path]
    store: str | None = None  # where they keep their state (None: a server this script did not start)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _serve(
    workdir: Path, n: int, store: str, tokens: Path, inventory: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    where = ["--store", store] if is_database_url(store) else ["--state", store]
    cmd = [*RUNNER, "serve", "--host", "127.0.0.1", "--port", str(port), *where]
    cmd += ["--tokens", str(tokens), "-i", str(inventory)]
    log = (workdir / f"server-{n}.log").open("ab")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO), f"http://127.0.0.1:{port}"


def start_servers(workdir: Path, store: str | None = None, replicas: int = 1) -> Servers:
    """``replicas`` ``graphium-run serve`` processes on one store (a JSON file in ``workdir`` by
    default), sharing one tokens file and inventory; returns once every one answers."""
    tokens, inventory = workdir / "tokens.json", workdir / "inventory.json"
    store = store or str(workdir / "state.json")
    if replicas > 1 and not is_database_url(store):
        raise SystemExit("several replicas need a PostgreSQL store: the JSON file has one server")
    inventory.write_text(json.dumps({"hosts": [{"@id": HOST, "connection": "agent"}]}))
    admin, agent = _token(tokens, "--admin"), _token(tokens, "--agent", HOST)
    started = [_serve(workdir, n, store, tokens, inventory) for n in range(replicas)]
    servers = Servers(
        [p for p, _ in started],
        [u for _, u in started],
        admin,
        agent,
        [workdir / f"server-{n}.log" for n in range(replicas)],
        store,
    )
    deadline = time.monotonic() + 60
    waiting = list(zip(servers.procs, servers.urls, servers.logs, strict=True))
    while waiting and time.monotonic() < deadline:
        proc, url, log = waiting[0]
        if proc.poll() is not None:
            servers.stop()
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(
                f"{url}/api/v1/tasks/stats", headers={"Authorization": f"Bearer {admin}"}
            ).is_success:
                waiting.pop(0)
                continue
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    if waiting:
        servers.stop()
        raise SystemExit("a server did not start within 60 s")
    return servers


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


async def bench_latency(
    enqueue_url: str, poll_url: str, admin: str, agent: str, samples: int, slots: int
) -> list[float]:
    """Tasks enqueued through ``enqueue_url`` one at a time, picked up by one agent long-polling
    ``poll_url`` (another replica's, to measure the wake-up across replicas)."""
    run = uuid.uuid4().hex[:8]
    engine = NullEngine()
    worker = bench_agent(poll_url, agent, "bench-latency", slots, engine)
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=f"{enqueue_url}/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=10
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


async def _enqueue_many(urls: list[str], admin: str, bodies: list[dict[str, Any]]) -> None:
    """Eight concurrent enqueuers per server, the tasks shared out over the servers."""
    clients = [
        httpx.AsyncClient(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        for url in urls
    ]
    queue = list(bodies)

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            await _enqueue(client, queue.pop())

    try:
        await asyncio.gather(*(worker(client) for client in clients for _ in range(8)))
    finally:
        for client in clients:
            await client.aclose()


def _enqueue_in_store(location: str, bodies: list[dict[str, Any]]) -> None:
    """Pre-enqueue straight into the servers' store, in a few big writes: the store is
    process-safe, and its claims see the tasks (the file's readers catch up, the database is
    shared). 10,000 POST /tasks take ~100 s on a loaded 2-core machine, which would make the
    benchmark mostly set-up."""
    from graphium.store.open import open_store

    store = open_store(location)
    try:
        tasks = [Task.model_validate(body) for body in bodies]
        for offset in range(0, len(tasks), 2_000):
            store.create_tasks(tasks[offset : offset + 2_000])
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@contextlib.contextmanager
def profiling(servers: Servers, directory: Path | None) -> Iterator[None]:
    """With a directory: py-spy samples every server process meanwhile (all threads, idle
    included), written as collapsed stacks to ``directory/server-N.txt`` (flamegraph.pl and
    speedscope read them)."""
    if directory is None or not servers.procs:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    directory.mkdir(parents=True, exist_ok=True)
    samplers = [
        subprocess.Popen(
            [
                *(spy, "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "200"),
                *("--threads", "--idle", "--nonblocking", "-o", str(directory / f"server-{n}.txt")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, proc in enumerate(servers.procs)
    ]
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.send_signal(signal.SIGINT)
        for sampler in samplers:
            try:
                sampler.wait(30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait(5)


def bench_throughput(
    servers: Servers, count: int, agents: int, slots: int, profile: Path | None = None
) -> dict[str, Any]:
    """``count`` tasks enqueued (not timed; through the store when the script started the
    servers, else through POST /tasks), then ``agents`` agent processes, spread round-robin
    over the servers, claim and complete them (the servers profiled meanwhile with ``profile``)."""
    run = uuid.uuid4().hex[:8]
    bodies = [noop_task(run, i) for i in range(count)]
    started = time.perf_counter()
    if servers.store is None:
        asyncio.run(_enqueue_many(servers.urls, servers.admin, bodies))
    else:
        _enqueue_in_store(servers.store, bodies)
    enqueue_seconds = time.perf_counter() - started
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=_agent_process,
            args=(servers.urls[i % len(servers.urls)], servers.agent, f"bench-agent-{i}", slots, out, stop),
        )
        for i in range(agents)
    ]
    with (
        httpx.Client(
            base_url=f"{servers.urls[0]}/api/v1",
            headers={"Authorization": f"Bearer {servers.admin}"},
            timeout=60,
        ) as client,
        profiling(servers, profile),
    ):
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


@dataclass(frozen=True)
class Setup:
    """One configuration to measure: a store (``json``, ``postgres`` for a fresh database of the
    lab's throwaway cluster, or a ``postgresql://`` URL) and how many server replicas share it."""

    store: str
    replicas: int

    @classmethod
    def parse(cls, text: str) -> Setup:
        store, _, replicas = text.rpartition(":") if text.rsplit(":", 1)[-1].isdigit() else (text, "", "1")
        return cls(store, int(replicas))

    @property
    def slug(self) -> str:
        return f"{'json' if self.store == 'json' else 'postgres'}-{self.replicas}"

    @property
    def label(self) -> str:
        kind = "JSON file" if self.store == "json" else "PostgreSQL"
        return f"{kind}, {self.replicas} server{'s' if self.replicas > 1 else ''}"


@contextlib.contextmanager
def store_for(setup: Setup, workdir: Path) -> Iterator[str | None]:
    """The store location a setup's servers are given (None: a JSON file in ``workdir``)."""
    if setup.store == "json":
        yield None
    elif setup.store == "postgres":
        from lab.postgres import fresh_database

        with fresh_database("bench_agents") as url:
            yield url
    else:
        yield setup.store


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(setup: Setup, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start the setup's servers, measure pickup latency then throughput, stop them."""
    with store_for(setup, workdir) as store:
        servers = start_servers(workdir, store, setup.replicas)
        try:
            enqueue_url, poll_url = servers.urls[0], servers.urls[-1]
            lat = asyncio.run(
                bench_latency(enqueue_url, poll_url, servers.admin, servers.agent, args.samples, args.slots)
            )
            profile = args.profile / setup.slug if args.profile else None
            tp = bench_throughput(servers, args.tasks, args.agents, args.slots, profile)
        finally:
            servers.stop()
    return {"setup": setup, "latency": lat, "throughput": tp, "cross_replica": enqueue_url != poll_url}


def measure_running(args: argparse.Namespace) -> dict[str, Any]:
    """Measure a server that runs already (``--server`` with its tokens)."""
    if not (args.admin_token and args.agent_token):
        raise SystemExit("--server needs --admin-token and --agent-token")
    url = args.server.rstrip("/")
    servers = Servers([], [url], args.admin_token, args.agent_token, [])
    lat = asyncio.run(bench_latency(url, url, servers.admin, servers.agent, args.samples, args.slots))
    tp = bench_throughput(servers, args.tasks, args.agents, args.slots)
    return {"setup": Setup(url, 1), "latency": lat, "throughput": tp, "cross_replica": False}


def report(result: dict[str, Any], args: argparse.Namespace) -> bool:
    """Print one setup's figures; False if a task was lost, run twice or left unfinished."""
    setup, lat, tp = result["setup"], sorted(result["latency"]), result["throughput"]
    where = (
        "enqueued on replica 1, the agent long-polls replica 2"
        if result["cross_replica"]
        else "enqueued on the agent's server"
    )
    target = "target: median <= 50 ms" if result["cross_replica"] else "target: median <= 100 ms"
    print(f"[{setup.label}]")
    print(
        f"  pickup latency (enqueue -> agent starts it), {where}, {len(lat)} tasks one at a time: median "
        f"{statistics.median(lat) * 1000:.1f} ms, p99 {_percentile(lat, 0.99) * 1000:.1f} ms, max "
        f"{lat[-1] * 1000:.1f} ms ({target})"
    )
    rate = tp["completed_by_agents"] / tp["elapsed"]
    print(
        f"  throughput: {args.agents} agent processes x {args.slots} slots over {setup.replicas} server(s), "
        f"{args.tasks} pre-enqueued tasks (enqueued in {tp['enqueue_seconds']:.1f} s): "
        f"{tp['completed_by_agents']} claimed+completed in {tp['elapsed']:.1f} s (first claim -> last "
        f"completion, server stamps) = {rate:.0f} tasks/s; {tp['wall']:.1f} s from starting the agent "
        f"processes = {tp['completed_by_agents'] / tp['wall']:.0f} tasks/s; per agent {tp['per_agent']}"
    )
    problems = {k: tp[k] for k in ("duplicates", "lost", "foreign", "unreported", "not_completed")}
    ok = not any(problems.values())
    print(f"  integrity {'OK' if ok else 'FAILURE'}: {problems}; server stats for the run {tp['stats']}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--slots", type=int, default=32, help="tasks each agent runs at once")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--setup",
        action="append",
        type=Setup.parse,
        help="STORE[:REPLICAS], STORE json, postgres (a fresh database of the lab's throwaway cluster) "
        "or a postgresql:// URL; repeatable, measured one after the other "
        "(default: json:1 and postgres:2)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the servers with py-spy during the throughput phase: DIR/SETUP/server-N.txt",
    )
    parser.add_argument("--server", help="an already running server (instead of --setup)")
    parser.add_argument("--admin-token", default=os.environ.get("GRAPHIUM_ADMIN_TOKEN"))
    parser.add_argument(
        "--agent-token",
        default=os.environ.get("GRAPHIUM_AGENT_TOKEN"),
        help=f"an agent token for host {HOST}",
    )
    args = parser.parse_args()
    print(
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}; "
        f"agents are graphium.control.agent.Agent with {args.slots} slots and a null engine (no Docker work)"
    )
    if args.server:
        sys.exit(0 if report(measure_running(args), args) else 1)
    ok = True
    rates: dict[str, float] = {}
    for setup in args.setup or [Setup("json", 1), Setup("postgres", 2)]:
        with tempfile.TemporaryDirectory(prefix="graphium-bench-") as tmp:
            result = measure(setup, Path(tmp), args)
        ok = report(result, args) and ok
        done: dict[str, Any] = result["throughput"]
        rates[setup.label] = done["completed_by_agents"] / done["elapsed"]
    if len(rates) > 1:
        (base, base_rate), *others = rates.items()
        for label, rate in others:
            print(f"throughput ratio [{label}] / [{base}]: {rate / base_rate:.2f}x")
    if not ok:
        print("INTEGRITY FAILURE")
        sys.exit(1)


if __name__ == "__main__":
    main()
