"""Placement: which host runs each container instance.

``place(stack, inventory, current)`` picks the stack's strategy (manual, spread or binpack) and
returns ``{instance name: host id}``. Every strategy honours ``locatedInHost`` pins, the stack's
host-label constraints, host-port conflicts and declared capacity, and keeps each instance on its
``current`` host while that host still fits it, so re-planning never moves containers needlessly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from graphium.errors import PlacementError
from graphium.placement.base import HostPort, Instance, PlacementStrategy, expand_instances, instance_names
from graphium.placement.binpack import BinpackStrategy
from graphium.placement.manual import ManualStrategy
from graphium.placement.spread import SpreadStrategy
from graphium.stack.models import Inventory, PlacementStrategyName, StackSpec

__all__ = [
    "BinpackStrategy",
    "HostPort",
    "Instance",
    "ManualStrategy",
    "PlacementStrategy",
    "SpreadStrategy",
    "expand_instances",
    "instance_names",
    "place",
    "place_instances",
    "strategy_for",
]


def strategy_for(stack: StackSpec) -> PlacementStrategy:
    """The strategy the stack's ``deployment.placementStrategy`` names, with its constraints."""
    deployment = stack.deployment
    name = deployment.placement_strategy
    if name is PlacementStrategyName.manual:
        return ManualStrategy(deployment.constraints)
    if stack.located_in_host:
        # a stack-wide pin would leave the strategy nothing to decide: say so rather than ignore one
        raise PlacementError(
            f"{stack.name}: the stack's locatedInHost {stack.located_in_host!r} pins every container to "
            f"one host, which contradicts placementStrategy {name.value!r}; remove one of them"
        )
    if name is PlacementStrategyName.spread:
        return SpreadStrategy(deployment.constraints)
    return BinpackStrategy(deployment.constraints)


def place_instances(
    stack: StackSpec,
    instances: list[Instance],
    inventory: Inventory,
    current: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Place already expanded instances (see :func:`expand_instances`) with the stack's strategy."""
    strategy = strategy_for(stack)
    if stack.deployment.mode == "single-host":
        return _place_on_one_host(strategy, instances, inventory, current or {})
    return strategy.place(instances, inventory.hosts, current or {})


def _place_on_one_host(
    strategy: PlacementStrategy, instances: list[Instance], inventory: Inventory, current: Mapping[str, str]
) -> dict[str, str]:
    """``mode: single-host``: the whole stack on one host: the pinned one, else where it runs now,
    else the first host (by id) that fits every instance."""
    pins = sorted({i.pin for i in instances if i.pin})
    if len(pins) > 1:
        raise PlacementError(
            f"deployment.mode is single-host, but containers are pinned to several hosts: {', '.join(pins)}"
        )
    preferred = pins or [host for host, _ in Counter(current.values()).most_common(1)]
    order = preferred + sorted(h.id for h in inventory.hosts if h.id not in preferred)
    by_id = inventory.by_id()
    reasons = []
    for host_id in order:
        if host_id not in by_id:
            continue
        try:
            return strategy.place(
                instances, [by_id[host_id]], {k: v for k, v in current.items() if v == host_id}
            )
        except PlacementError as exc:
            reasons.append(f"  {host_id}: {exc}")
    raise PlacementError(
        "deployment.mode is single-host, but no single host fits every container:\n" + "\n".join(reasons)
    )


def place(stack: StackSpec, inventory: Inventory, current: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{instance name: host id}`` for every instance of ``stack`` (replicas expanded)."""
    return place_instances(stack, expand_instances(stack), inventory, current)
