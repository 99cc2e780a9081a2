"""Benchmark: load + validate + plan of a 1,000-container stack on 100 hosts (target: <= 1 s total).

Standalone: ``python benchmarks/bench_plan.py [--runs N]``. It writes a JSON-LD stack (the
``"@context": "https://schema.org"`` form of the upstream examples) and an inventory of 100 hosts
to a temporary directory, then times, each as the median of several runs:

* load: ``graphium.stack.loader.load_stack`` (JSON-LD processing and validation) plus the inventory;
* plan: ``graphium.plan.planner.plan_apply`` against 100 empty hosts (1,000 creations, full DAG);
* re-plan: the same against hosts that already run exactly that (1,000 keeps, zero tasks).

If the loader is not importable, load is skipped and the figure says so.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from graphium.plan.model import DesiredContainer, LiveConfig, ObservedContainer, ObservedHost
from graphium.plan.planner import expand, plan_apply
from graphium.stack.models import Inventory, StackSpec

HOSTS = 100
SERVICES = 100  # replicated: 5 replicas each, a fixed host port, spread across hosts
SINGLES = 500  # one instance each, with a dependency on a service
T = TypeVar("T")


def stack_document() -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    for i in range(SERVICES):
        parts.append(
            {
                "@type": "SoftwareApplication",
                "name": f"svc{i:03}",
                "image": f"registry.local/svc{i % 7}:1.{i % 5}",
                "replicas": 5,
                "ports": [{"containerPort": 8080, "hostPort": 20000 + i, "protocol": "tcp"}],
                "environment": {"SERVICE": f"svc{i:03}", "LOG_LEVEL": "info"},
                "resources": {"limits": {"cpus": 0.5, "memory": "256M"}},
                "healthCheck": {"http": {"port": 8080, "path": "/health"}, "interval": "10s", "retries": 3},
                "restartPolicy": "unless-stopped",
                "labels": {"tier": "service"},
            }
        )
    for i in range(SINGLES):
        parts.append(
            {
                "@type": "SoftwareApplication",
                "name": f"job{i:03}",
                "image": "registry.local/worker:2",
                "command": ["worker", "--queue", f"q{i % 20}"],
                "environment": {"QUEUE": f"q{i % 20}", "WORKER": str(i)},
                "dependsOn": [f"svc{i % SERVICES:03}"],
                "resources": {"reservations": {"cpus": 0.1, "memory": "64M"}},
                "restartPolicy": "on-failure",
            }
        )
    return {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@id": "https://graphium.local/stacks/bench",
                "@type": ["datacenter:Stack", "SoftwareApplication"],
                "name": "bench",
                "description": "1,000 containers on 100 hosts",
                "deployment": {
                    "placementStrategy": "spread",
                    "constraints": [{"label": "pool", "value": "apps"}],
                },
                "hasPart": parts,
            }
        ],
    }


def inventory_document() -> dict[str, Any]:
    return {
        "hosts": [
            {
                "@id": f"node{i:03}",
                "address": f"10.0.{i // 250}.{i % 250 + 1}",
                "connection": "ssh",
                "labels": {"pool": "apps", "rack": f"r{i % 10}"},
                "capacity": {"cpus": 16, "memory": "64G"},
            }
            for i in range(HOSTS)
        ]
    }


def applied(desired: list[DesiredContainer], hosts: list[str]) -> dict[str, ObservedHost]:
    """What observing the hosts would return once ``desired`` runs (for the no-op re-plan)."""
    observed = {h: ObservedHost(host=h, networks=["bench-net"]) for h in hosts}
    for d in desired:
        spec = d.spec
        observed[d.host].containers.append(
            ObservedContainer(
                id=f"{d.host}-{d.name}",
                docker_name=d.docker_name,
                host=d.host,
                stack=d.stack,
                name=d.name,
                spec_hash=d.spec_hash,
                field_hashes=d.field_hashes,
                live=LiveConfig(
                    state="running",
                    env=[f"{k}={v}" for k, v in spec.environment.items()],
                    port_bindings=[
                        f"{p.container_port}/{p.protocol.value}->:{p.host_port}" for p in spec.ports
                    ],
                    restart_policy=spec.restart_policy,
                    nano_cpus=round((spec.resources.limits.cpus or 0) * 1e9),
                    memory=spec.resources.limits.memory or 0,
                    networks=["bench-net"],
                ),
            )
        )
    return observed


def timed(fn: Callable[[], T], runs: int) -> tuple[float, T]:
    samples: list[float] = []
    result: T | None = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(samples), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    try:
        from graphium.stack.inventory import load_inventory
        from graphium.stack.loader import load_stack
    except ImportError:
        load_stack = None  # type: ignore[assignment]

    with tempfile.TemporaryDirectory() as tmp:
        stack_file = Path(tmp) / "bench.jsonld"
        inventory_file = Path(tmp) / "inventory.json"
        stack_file.write_text(json.dumps(stack_document(), indent=1))
        inventory_file.write_text(json.dumps(inventory_document(), indent=1))

        if load_stack is not None:

            def load() -> tuple[StackSpec, Inventory]:
                doc = load_stack(stack_file)
                return doc.stack, load_inventory(inventory_file, doc.hosts, stack_file=str(stack_file))

            load_s, (stack, inventory) = timed(load, args.runs)
        else:
            load_s = float("nan")
            raw = stack_document()["@graph"][0]
            containers = [{k: v for k, v in p.items() if k != "@type"} for p in raw["hasPart"]]
            stack = StackSpec.model_validate(
                {"name": raw["name"], "deployment": raw["deployment"], "containers": containers}
            )
            inventory = Inventory.model_validate(inventory_document())

        hosts = [h.id for h in inventory.hosts]
        empty = {h: ObservedHost(host=h) for h in hosts}
        plan_s, plan = timed(lambda: plan_apply(stack, inventory, empty, None), args.runs)
        observed = applied(expand(stack, inventory, plan.placements), hosts)
        replan_s, replan = timed(lambda: plan_apply(stack, inventory, observed, None), args.runs)

    instances = len(plan.placements)
    assert instances == SERVICES * 5 + SINGLES, instances
    assert replan.tasks == [] and replan.counts()["keep"] == instances
    edges = sum(len(t.depends_on) for t in plan.tasks)
    print(
        f"conditions: Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{instances} containers ({SERVICES}x5 replicated with host ports + {SINGLES} single, dependsOn), "
        f"{len(hosts)} hosts, spread with a label constraint; median of {args.runs} runs"
    )
    if load_stack is None:
        print("load + validate: not measured (graphium.stack.loader not importable); plan timed alone")
    else:
        print(f"load + validate (JSON-LD stack + inventory): {load_s * 1000:7.1f} ms")
    print(f"plan, fresh ({len(plan.tasks)} tasks, {edges} edges):        {plan_s * 1000:7.1f} ms")
    print(f"re-plan, no change (0 tasks, {instances} keeps):       {replan_s * 1000:7.1f} ms")
    total = (0.0 if load_s != load_s else load_s) + plan_s
    verdict = "OK" if total <= 1 else "SLOW"
    print(f"total load + validate + plan: {total * 1000:.1f} ms (target <= 1000 ms): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
