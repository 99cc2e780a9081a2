"""Placement tests: the table in tests/data/placement/cases.json plus properties of every strategy.

Each case gives a stack (canonical StackSpec form), an inventory, optionally the current
placements, and either the expected ``{instance: host}`` or the fragments the error must contain.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from graphium.errors import PlacementError
from graphium.placement import place
from graphium.stack.models import Inventory, StackSpec

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "placement" / "cases.json").read_text()
)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_placement_case(case: dict[str, Any]) -> None:
    stack = StackSpec.model_validate(case["stack"])
    inventory = Inventory.model_validate(case["inventory"])
    current = case.get("current", {})
    if "error" in case:
        with pytest.raises(PlacementError) as info:
            place(stack, inventory, current)
        for fragment in case["error"]:
            assert fragment in str(info.value)
        return
    assert place(stack, inventory, current) == case["expected"]


def _stack(strategy: str, count: int = 30) -> StackSpec:
    containers = [
        {
            "name": f"c{i}",
            "image": "img",
            "replicas": 1 + i % 3,
            "resources": {"reservations": {"cpus": 0.5 * (i % 4)}},
            "ports": [{"containerPort": 80, "hostPort": 9000 + i % 5}] if i % 2 else [],
        }
        for i in range(count)
    ]
    return StackSpec.model_validate(
        {"name": "s", "deployment": {"placementStrategy": strategy}, "containers": containers}
    )


def _hosts(n: int, cpus: float = 16) -> Inventory:
    return Inventory.model_validate(
        {"hosts": [{"@id": f"h{i:02}", "capacity": {"cpus": cpus}} for i in range(n)]}
    )


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_deterministic_whatever_the_host_order(strategy: str) -> None:
    stack, inventory = _stack(strategy), _hosts(8)
    expected = place(stack, inventory, {})
    shuffled = list(inventory.hosts)
    random.Random(7).shuffle(shuffled)
    assert place(stack, Inventory(hosts=shuffled), {}) == expected


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_replanning_keeps_every_instance_where_it_is(strategy: str) -> None:
    stack, inventory = _stack(strategy), _hosts(8)
    first = place(stack, inventory, {})
    assert place(stack, inventory, first) == first


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_adding_a_host_moves_nothing(strategy: str) -> None:
    stack = _stack(strategy)
    first = place(stack, _hosts(8), {})
    second = place(stack, _hosts(9), first)
    assert second == first


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_removing_a_host_moves_only_its_instances(strategy: str) -> None:
    stack = _stack(strategy)
    first = place(stack, _hosts(8), {})
    fewer = Inventory(hosts=[h for h in _hosts(8).hosts if h.id != "h00"])
    second = place(stack, fewer, first)
    assert {k: v for k, v in second.items() if first[k] != "h00"} == {
        k: v for k, v in first.items() if v != "h00"
    }
    assert "h00" not in second.values()


def test_spread_respects_ports_and_capacity_and_balances() -> None:
    stack, inventory = _stack("spread"), _hosts(8)
    result = place(stack, inventory, {})
    by_host: dict[str, list[str]] = {}
    for name, host in result.items():
        by_host.setdefault(host, []).append(name)
    counts = sorted(len(v) for v in by_host.values())
    assert counts[-1] - counts[0] <= 1
    specs = {c.name: c for c in stack.containers}
    for host, names in by_host.items():
        ports = [
            p.host_port for n in names for p in specs[n.rsplit("-", 1)[0] if n not in specs else n].ports
        ]
        assert len(ports) == len(set(ports)), host


def test_large_placement_spreads_over_every_host() -> None:
    # speed is measured by benchmarks/bench_plan.py, never asserted in a test
    containers = [
        {
            "name": f"c{i}",
            "image": "img",
            "replicas": 10,
            "ports": [{"containerPort": 80, "hostPort": 10000 + i}],
        }
        for i in range(100)
    ]
    stack = StackSpec.model_validate(
        {"name": "big", "deployment": {"placementStrategy": "spread"}, "containers": containers}
    )
    inventory = Inventory.model_validate({"hosts": [{"@id": f"h{i:03}"} for i in range(100)]})
    result = place(stack, inventory, {})
    assert len(result) == 1000 and len(set(result.values())) == 100


def _single_host_stack(containers: list[dict[str, Any]], **deployment: Any) -> StackSpec:
    return StackSpec.model_validate(
        {"name": "s", "deployment": {"mode": "single-host", **deployment}, "containers": containers}
    )


def test_single_host_mode_keeps_the_stack_together() -> None:
    inventory = Inventory.model_validate({"hosts": [{"@id": h} for h in ("h1", "h2", "h3")]})
    stack = _single_host_stack(
        [{"name": n, "image": "x"} for n in ("a", "b", "c")], placementStrategy="spread"
    )
    placed = place(stack, inventory)
    assert len(set(placed.values())) == 1
    pinned = _single_host_stack(
        [{"name": "a", "image": "x", "locatedInHost": "h2"}, {"name": "b", "image": "x"}]
    )
    assert set(place(pinned, inventory).values()) == {"h2"}
    # it stays where it runs now
    assert set(place(stack, inventory, {"a": "h3", "b": "h3"}).values()) == {"h3"}


def test_single_host_mode_refuses_what_cannot_share_a_host() -> None:
    inventory = Inventory.model_validate({"hosts": [{"@id": h} for h in ("h1", "h2")]})
    clash = _single_host_stack(
        [{"name": n, "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]} for n in ("a", "b")],
        placementStrategy="spread",
    )
    with pytest.raises(PlacementError, match=r"single-host.*\n.*8080"):
        place(clash, inventory)
    split = _single_host_stack(
        [
            {"name": "a", "image": "x", "locatedInHost": "h1"},
            {"name": "b", "image": "x", "locatedInHost": "h2"},
        ]
    )
    with pytest.raises(PlacementError, match="pinned to several hosts: h1, h2"):
        place(split, inventory)
