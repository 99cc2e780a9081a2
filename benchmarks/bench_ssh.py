"""Benchmark: apply of 3 hosts x 10 containers over SSH, against the floor, and a no-change plan.

    .venv/bin/python benchmarks/bench_ssh.py [--rounds 3] [--per-host 10] [--parallelism 10]

Needs the lab (``python -m lab up``; started here if missing). Each round, in this order:

* apply: a fresh :class:`~graphium.executors.ssh.SshExecutor` (so the SSH connections are part of
  the figure), then :class:`graphium.run.deployer.Deployer` ``plan`` + ``apply`` of a stack pinning
  ``--per-host`` containers (``graphium-test/web:1``, preloaded) to each lab host, with the
  runner's default parallelism, and a temporary JSON state file. Ends when every container runs
  and has stayed up for the engine adapter's settle time (0.3 s), as any deploy task does.
* no-change plan: the same ``Deployer.plan`` again (the connections are open, as in one
  ``graphium-run plan`` process after connecting), and once more with a fresh executor
  (connections included), both expected to yield zero tasks.
* floor: the same containers (same names, labels, network, aliases) created and started by plain
  docker-py ``APIClient`` calls over the very same forwarded sockets, hosts in parallel, each host
  sequential (network, then create + start per container), without graphium, without waiting.

Between phases everything is removed (not timed). Rounds alternate apply-first and floor-first;
figures are medians over the rounds. The machine's load average is printed with them: on a shared
2-core machine the engines are CPU-bound and both figures move with the load.
Targets: apply <= 1.25 x floor; no-change plan <= 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lab  # noqa: E402
from graphium.executors.ssh import SshExecutor  # noqa: E402
from graphium.shortcuts import Deployer  # noqa: E402
from graphium.stack.loader import load_stack_data  # noqa: E402
from graphium.stack.models import Host, Inventory  # noqa: E402
from graphium.store.json_store import JsonTaskStore  # noqa: E402

IMAGE = "graphium-test/web:1"


def stack_document(name: str, hosts: list[Host], per_host: int) -> dict[str, Any]:
    parts = [
        {
            "@type": "SoftwareApplication",
            "name": f"{h.id}-c{i:02}",
            "image": IMAGE,
            "locatedInHost": {"@id": h.id},
            "environment": {"INDEX": str(i)},
        }
        for h in hosts
        for i in range(per_host)
    ]
    return {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@id": f"https://graphium.local/stacks/{name}",
                "@type": ["datacenter:Stack", "SoftwareApplication"],
                "name": name,
                "deployment": {"placementStrategy": "manual"},
                "hasPart": parts,
            }
        ],
    }


async def _destroy(deployer: Deployer, name: str) -> None:
    result = await deployer.apply(await deployer.plan_destroy(name))
    if not result.ok:
        raise SystemExit(f"destroy failed: {result.failed}")


async def time_apply(
    doc: Any, inventory: Inventory, state: Path, parallelism: int
) -> tuple[float, float, float, int]:
    """(apply s, warm no-change plan s, cold no-change plan s, tasks) for one round."""
    executor = SshExecutor()
    store = JsonTaskStore(str(state))
    deployer = Deployer(store, executor, inventory, parallelism=parallelism)
    try:
        started = time.perf_counter()
        plan = await deployer.plan(doc, {})
        result = await deployer.apply(plan)
        apply_s = time.perf_counter() - started
        if not result.ok:
            raise SystemExit(f"apply failed: {[t.error for t in result.failed]}")
        started = time.perf_counter()
        again = await deployer.plan(doc, {})
        warm_s = time.perf_counter() - started
        if again.tasks:
            raise SystemExit(f"no-change plan has {len(again.tasks)} tasks")
    finally:
        await executor.close()
    cold_executor = SshExecutor()
    try:
        cold = Deployer(store, cold_executor, inventory, parallelism=parallelism)
        started = time.perf_counter()
        again = await cold.plan(doc, {})
        cold_s = time.perf_counter() - started
        if again.tasks:
            raise SystemExit(f"no-change plan has {len(again.tasks)} tasks")
        await _destroy(cold, doc.stack.name)
    finally:
        await cold_executor.close()
    return apply_s, warm_s, cold_s, len(plan.tasks)


def _floor_host(url: str, host_id: str, stack: str, names: list[str]) -> None:
    """One host, sequential: the network, then create + start each container, as docker-py does."""
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


def _floor_cleanup(url: str, stack: str) -> None:
    client = docker.APIClient(base_url=url, version="auto")
    try:
        for c in client.containers(all=True, filters={"label": f"graphium.stack={stack}"}):
            client.remove_container(c["Id"], force=True)
        for n in client.networks(filters={"label": f"graphium.stack={stack}"}):
            client.remove_network(n["Id"])
    finally:
        client.close()


async def time_floor(hosts: list[Host], per_host: int) -> float:
    """Plain docker-py over the SSH executor's own forwarded sockets (connected before timing)."""
    executor = SshExecutor()
    stack = f"floor{uuid.uuid4().hex[:6]}"
    try:
        urls = {h.id: (await executor.engine(h)).base_url for h in hosts}
        names = {h.id: [f"{h.id}-c{i:02}" for i in range(per_host)] for h in hosts}
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(len(hosts)) as pool:
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    loop.run_in_executor(pool, _floor_host, urls[h.id], h.id, stack, names[h.id])
                    for h in hosts
                )
            )
            floor_s = time.perf_counter() - started
            await asyncio.gather(
                *(loop.run_in_executor(pool, _floor_cleanup, urls[h.id], stack) for h in hosts)
            )
    finally:
        await executor.close()
    return floor_s


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-host", type=int, default=10)
    parser.add_argument("--parallelism", type=int, default=10, help="the runner's (default: the CLI's)")
    args = parser.parse_args()

    info = lab.ensure_lab(hosts=3)
    inventory = Inventory.model_validate(json.loads(Path(info.inventory).read_text()))
    hosts = [h for h in inventory.hosts if h.id in {lh.id for lh in info.hosts[:3]}]
    inventory = Inventory(hosts=hosts)

    applies, warms, colds, floors = [], [], [], []
    tasks = 0
    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as tmp:
        for r in range(args.rounds):
            name = f"bench{uuid.uuid4().hex[:6]}"
            doc = load_stack_data(stack_document(name, hosts, args.per_host), f"{name}.jsonld")
            state = Path(tmp) / f"state-{r}.json"
            if r % 2:  # alternate the order, so a load change on the machine hits both alike
                floor_s = await time_floor(hosts, args.per_host)
                apply_s, warm_s, cold_s, tasks = await time_apply(doc, inventory, state, args.parallelism)
            else:
                apply_s, warm_s, cold_s, tasks = await time_apply(doc, inventory, state, args.parallelism)
                floor_s = await time_floor(hosts, args.per_host)
            applies.append(apply_s)
            warms.append(warm_s)
            colds.append(cold_s)
            floors.append(floor_s)
            print(
                f"round {r + 1}: apply {apply_s:.3f}s  floor {floor_s:.3f}s  "
                f"no-change plan {warm_s:.3f}s (connected) / {cold_s:.3f}s (incl. connect)",
                flush=True,
            )

    apply_m, floor_m = statistics.median(applies), statistics.median(floors)
    warm_m, cold_m = statistics.median(warms), statistics.median(colds)
    containers = len(hosts) * args.per_host
    print()
    print(
        f"conditions: {len(hosts)} lab hosts (netns + sshd + dockerd 20.10 on one machine), "
        f"{containers} containers ({args.per_host}/host, {IMAGE} preloaded, no health checks), "
        f"{tasks} tasks, runner parallelism {args.parallelism}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, medians of {args.rounds} rounds, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"apply (plan + apply, incl. SSH connect): {apply_m:.3f}s   "
        f"floor (docker-py, same tunnels): {floor_m:.3f}s   "
        f"ratio {apply_m / floor_m:.2f}x (target <= 1.25x)"
    )
    print(f"no-change plan: {warm_m:.3f}s connected, {cold_m:.3f}s incl. SSH connect (target <= 0.5s)")


if __name__ == "__main__":
    asyncio.run(main())
