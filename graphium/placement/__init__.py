"""Placement: which host runs each container instance.

``place(stack, inventory, current)`` picks the stack's strategy (manual, spread or binpack) and
returns ``{instance name: host id}``. Every strategy honours ``locatedInHost`` pins, the stack's
host-label constraints, host-port conflicts and declared capacity, and keeps each instance on its
``current`` host while that host still fits it, so re-planning never moves containers needlessly.
"""

from __future__ import annotations

from collections.abc import Mapping

from graphium.errors import PlacementError
from graphium.models import Inventory, PlacementStrategyName, StackSpec
from graphium.placement.base import HostPort, Instance, PlacementStrategy, expand_instances, instance_names
from graphium.placement.binpack import BinpackStrategy
from graphium.placement.manual import ManualStrategy
from graphium.placement.spread import SpreadStrategy

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
    return strategy_for(stack).place(instances, inventory.hosts, current or {})


def place(stack: StackSpec, inventory: Inventory, current: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{instance name: host id}`` for every instance of ``stack`` (replicas expanded)."""
    return place_instances(stack, expand_instances(stack), inventory, current)
