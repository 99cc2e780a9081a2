"""Benchmark: apply of 20 containers on one engine against the floor, and a no-change re-apply.

Standalone: ``python benchmarks/bench_apply.py [--rounds N] [--containers N]``, with the lab's
root-namespace engine (started if missing). Side by side, alternating in every round:

* floor: a plain docker-py loop creating and starting the same containers (same image, ports,
  env, labels, network), one after the other, with no checks;
* graphium: ``Deployer.plan`` + ``Deployer.apply`` (observe, plan, store every task durably,
  run with the default parallelism, verify each container stays up);
* no-change: plan + apply of the same stack again (observe, plan, zero tasks).

Targets (issue 2): graphium <= 1.2x the floor; no-change re-apply <= 0.5 s. Medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lab
from graphium.executors.local import LocalExecutor
from graphium.run.deployer import Deployer
from graphium.stack.loader import load_stack_data
from graphium.stack.models import Host, Inventory
from graphium.store.json_store import JsonTaskStore

IMAGE = "graphium-test/web:1"
BASE_PORT = 41000


def stack(name: str, count: int) -> dict[str, Any]:
    parts = [
        {
            "name": f"web{i:02}",
            "image": IMAGE,
            "environment": {"INSTANCE": str(i)},
            "ports": [{"containerPort": 80, "hostPort": BASE_PORT + i}],
            "restartPolicy": "unless-stopped",
        }
        for i in range(count)
    ]
    return {
        "@context": "https://schema.org",
        "@graph": [{"@type": "datacenter:Stack", "name": name, "hasPart": parts}],
    }


def clean(client: docker.DockerClient, prefix: str) -> None:
    for c in client.containers.list(all=True, filters={"name": prefix}):
        c.remove(force=True)
    for n in client.networks.list(names=[f"{prefix}-net"]):
        n.remove()


def floor(client: docker.DockerClient, name: str, count: int) -> float:
    start = time.perf_counter()
    client.networks.create(f"{name}-net", driver="bridge")
    for i in range(count):
        client.containers.run(
            IMAGE,
            name=f"{name}-web{i:02}",
            detach=True,
            environment={"INSTANCE": str(i)},
            ports={"80/tcp": BASE_PORT + i},
            labels={"bench": name},
            network=f"{name}-net",
            restart_policy={"Name": "unless-stopped"},
        )
    return time.perf_counter() - start


async def graphium_apply(url: str, name: str, count: int, state: Path) -> tuple[float, float, int]:
    host = Host.model_validate({"@id": "local", "dockerHost": url})
    store = JsonTaskStore(state)
    executor = LocalExecutor()
    deployer = Deployer(store, executor, Inventory(hosts=[host]))
    doc = load_stack_data(stack(name, count), "bench.json")
    try:
        start = time.perf_counter()
        result = await deployer.apply(await deployer.plan(doc, {}))
        applied = time.perf_counter() - start
        assert result.ok, result.failed
        start = time.perf_counter()
        again = await deployer.plan(doc, {})
        await deployer.apply(again)
        noop = time.perf_counter() - start
        return applied, noop, len(again.tasks)
    finally:
        await executor.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--containers", type=int, default=20)
    args = parser.parse_args()
    url = lab.ensure_engine()
    client = docker.DockerClient(base_url=url)
    floors, applies, noops = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            name = f"benchfloor{r}"
            clean(client, name)
            floors.append(floor(client, name, args.containers))
            clean(client, name)
            name = f"benchapply{r}"
            clean(client, name)
            applied, noop, tasks = asyncio.run(
                graphium_apply(url, name, args.containers, Path(tmp) / f"s{r}.json")
            )
            assert tasks == 0, f"no-change re-apply planned {tasks} tasks"
            applies.append(applied)
            noops.append(noop)
            clean(client, name)
    client.close()
    f, a, n = statistics.median(floors), statistics.median(applies), statistics.median(noops)
    print(
        f"# bench_apply: {args.containers} containers, one local engine, {args.rounds} alternating rounds, "
        f"python {platform.python_version()}, {platform.machine()}"
    )
    print(f"floor (plain docker-py loop)  median {f:.3f} s   runs {', '.join(f'{x:.3f}' for x in floors)}")
    print(f"graphium plan+apply           median {a:.3f} s   runs {', '.join(f'{x:.3f}' for x in applies)}")
    print(f"apply / floor ratio           {a / f:.2f}x   (target <= 1.2x)")
    print(f"no-change plan+apply          median {n:.3f} s   (target <= 0.5 s; 0 tasks)")


if __name__ == "__main__":
    main()
