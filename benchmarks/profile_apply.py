"""Where a cold apply over SSH spends the control side's CPU: one process, rusage and wall clock.

    .venv/bin/python benchmarks/profile_apply.py [--hosts 3] [--per-host 10] [--rounds 3]
        [--profile OUT.pstats]

Not part of ``make bench`` (``bench_ssh.py`` holds the side-by-side ratios): a tool to measure
one change at a time. Each round, in one process: cold apply (fresh SSH executor, plan + apply of
``--per-host`` containers per lab host, temporary JSON store), no-op re-apply (fresh executor,
plan + apply of the same stack: 0 tasks), teardown (plan_destroy + apply), then the docker-py
floor of each over the same tunnels (hosts in parallel, each host sequential). CPU is
``getrusage(RUSAGE_SELF)`` user + system of this process (all its threads) across the phase.
``--profile`` writes a cProfile of the cold applies (sort by cumulative time to read it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_ssh import stack_document  # noqa: E402  (a sibling script: benchmarks/ is sys.path[0])

import lab  # noqa: E402
from graphium.executors.ssh import SshExecutor  # noqa: E402
from graphium.shortcuts import Deployer  # noqa: E402
from graphium.stack.loader import load_stack_data  # noqa: E402
from graphium.stack.models import Host, Inventory  # noqa: E402
from graphium.store.json_store import JsonTaskStore  # noqa: E402

IMAGE = "graphium-test/web:1"
_T = TypeVar("_T")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measured(fn: Callable[[], Awaitable[_T]]) -> tuple[_T, float, float]:
    """(result, wall s, CPU s) of one phase."""
    cpu, wall = _cpu(), time.perf_counter()
    out = await fn()
    return out, time.perf_counter() - wall, _cpu() - cpu


async def graphium_round(
    doc: Any, inventory: Inventory, state: Path, profiler: cProfile.Profile | None
) -> dict[str, tuple[float, float]]:
    """Cold apply, no-op re-apply, teardown: (wall, CPU) each, every phase with a fresh executor."""
    store = JsonTaskStore(str(state))
    out: dict[str, tuple[float, float]] = {}

    async def phase(name: str, body: Callable[[Deployer], Awaitable[int]], expect: int | None) -> None:
        executor = SshExecutor()
        deployer = Deployer(store, executor, inventory)

        async def run() -> int:
            return await body(deployer)

        try:
            if profiler is not None and name == "cold":
                profiler.enable()
            tasks, wall, cpu = await measured(run)
            if profiler is not None and name == "cold":
                profiler.disable()
        finally:
            await executor.close()
        if expect is not None and tasks != expect:
            raise SystemExit(f"{name}: {tasks} tasks, expected {expect}")
        out[name] = (wall, cpu)

    async def apply(deployer: Deployer) -> int:
        plan = await deployer.plan(doc, {})
        result = await deployer.apply(plan)
        if not result.ok:
            raise SystemExit(f"apply failed: {[t.error for t in result.failed]}")
        return len(plan.tasks)

    async def destroy(deployer: Deployer) -> int:
        plan = await deployer.plan_destroy(doc.stack.name)
        result = await deployer.apply(plan)
        if not result.ok:
            raise SystemExit(f"destroy failed: {[t.error for t in result.failed]}")
        return len(plan.tasks)

    await phase("cold", apply, None)
    await phase("noop", apply, 0)
    await phase("teardown", destroy, None)
    store.close()
    return out


def _floor_apply(url: str, host_id: str, stack: str, names: list[str]) -> None:
    client = docker.APIClient(base_url=url, version="auto")
    try:
        network = f"{stack}-net"
        labels = {"graphium.managed": "true", "graphium.stack": stack}
        client.create_network(network, driver="bridge", labels=labels)
        for name in names:
            created = client.create_container(
                image=IMAGE,
                name=f"{stack}-{name}",
                environment=["INDEX=0"],
                labels={**labels, "graphium.container": name, "graphium.host": host_id},
                host_config=client.create_host_config(network_mode=network, restart_policy={"Name": "no"}),
                networking_config=client.create_networking_config(
                    {network: client.create_endpoint_config(aliases=[name])}
                ),
            )
            client.start(created["Id"])
    finally:
        client.close()


def _floor_noop(url: str, stack: str) -> None:
    client = docker.APIClient(base_url=url, version="auto")
    try:
        for c in client.containers(all=True, filters={"label": f"graphium.stack={stack}"}):
            client.inspect_container(c["Id"])
        client.networks(filters={"label": f"graphium.stack={stack}"})
    finally:
        client.close()


def _floor_teardown(url: str, stack: str) -> None:
    client = docker.APIClient(base_url=url, version="auto")
    try:
        for c in client.containers(all=True, filters={"label": f"graphium.stack={stack}"}):
            client.remove_container(c["Id"], force=True)
        for n in client.networks(filters={"label": f"graphium.stack={stack}"}):
            client.remove_network(n["Id"])
    finally:
        client.close()


async def floor_round(hosts: list[Host], per_host: int) -> dict[str, tuple[float, float]]:
    """The same three phases by plain docker-py over the SSH executor's own forwarded sockets."""
    executor = SshExecutor()
    stack = f"floor{uuid.uuid4().hex[:6]}"
    out: dict[str, tuple[float, float]] = {}
    try:
        urls = {h.id: (await executor.engine(h)).base_url for h in hosts}
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(len(hosts)) as pool:

            def each(
                fn: Callable[..., None], argf: Callable[[Host], tuple[Any, ...]]
            ) -> Callable[[], Awaitable[Any]]:
                return lambda: asyncio.gather(
                    *(loop.run_in_executor(pool, fn, urls[h.id], *argf(h)) for h in hosts)
                )

            names = {h.id: [f"{h.id}-c{i:02}" for i in range(per_host)] for h in hosts}
            _, *out["cold"] = await measured(each(_floor_apply, lambda h: (h.id, stack, names[h.id])))
            _, *out["noop"] = await measured(each(_floor_noop, lambda h: (stack,)))
            _, *out["teardown"] = await measured(each(_floor_teardown, lambda h: (stack,)))
    finally:
        await executor.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--per-host", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the cold applies here")
    args = parser.parse_args()

    info = lab.ensure_lab(hosts=args.hosts)
    inventory = Inventory.model_validate(json.loads(Path(info.inventory).read_text()))
    wanted = {lh.id for lh in info.hosts[: args.hosts]}
    hosts = [h for h in inventory.hosts if h.id in wanted]
    inventory = Inventory(hosts=hosts)
    profiler = cProfile.Profile() if args.profile else None
    ours: dict[str, list[tuple[float, float]]] = {}
    floor: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="profile-apply-") as tmp:
        for r in range(args.rounds):
            name = f"prof{uuid.uuid4().hex[:6]}"
            doc = load_stack_data(stack_document(name, hosts, args.per_host), f"{name}.jsonld")
            first, second = (
                (
                    graphium_round(doc, inventory, Path(tmp) / f"s{r}.json", profiler),
                    floor_round(hosts, args.per_host),
                )
                if r % 2 == 0
                else (
                    floor_round(hosts, args.per_host),
                    graphium_round(doc, inventory, Path(tmp) / f"s{r}.json", profiler),
                )
            )
            a, b = await first, await second
            g, f = (a, b) if r % 2 == 0 else (b, a)
            for k, v in g.items():
                ours.setdefault(k, []).append(v)
            for k, v in f.items():
                floor.setdefault(k, []).append(v)
            print(
                f"round {r + 1}: "
                + "  ".join(
                    f"{k} {g[k][0]:.3f}s/{g[k][1]:.3f}cpu (floor {f[k][0]:.3f}s/{f[k][1]:.3f}cpu)" for k in g
                ),
                flush=True,
            )
    print(
        f"{args.hosts} hosts x {args.per_host} containers, medians of {args.rounds} rounds, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for k in ours:
        wall = statistics.median(w for w, _ in ours[k])
        cpu = statistics.median(c for _, c in ours[k])
        fwall = statistics.median(w for w, _ in floor[k])
        fcpu = statistics.median(c for _, c in floor[k])
        print(
            f"{k:9} wall {wall:.3f}s vs floor {fwall:.3f}s ({wall / fwall:.2f}x)   "
            f"cpu {cpu:.3f}s vs floor {fcpu:.3f}s ({cpu / fcpu:.2f}x)"
        )
    if profiler is not None:
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    asyncio.run(main())
