"""The public namespace is curated and pinned, as httpx pins its own: a name added to or dropped
from ``graphium.__all__`` is a deliberate change to this list, and nothing public leaks besides."""

from __future__ import annotations

import types

import graphium

PUBLIC = [
    "DEFAULT_STATE",
    "Action",
    "ActionKind",
    "ContainerSpec",
    "Deployer",
    "ExecutionError",
    "GraphiumError",
    "Host",
    "Inventory",
    "PlacementError",
    "Plan",
    "PlanError",
    "Problem",
    "RunResult",
    "StackDocument",
    "StackError",
    "StackSpec",
    "StackVersion",
    "StalePlanError",
    "StoreError",
    "Task",
    "TaskStatus",
    "TaskType",
    "ValidationError",
    "apply",
    "default_executor",
    "destroy",
    "history",
    "load_inventory",
    "load_stack",
    "plan",
    "rollback",
]


def test_all_is_pinned() -> None:
    assert graphium.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in graphium.__all__:
        assert getattr(graphium, name) is not None, name


def test_nothing_public_outside_all() -> None:
    """Sub-packages are reachable as attributes once imported; any other public name is a leak."""
    leaked = {
        name
        for name, value in vars(graphium).items()
        if not name.startswith("_")
        and name not in graphium.__all__
        and not isinstance(value, types.ModuleType)
    }
    assert leaked == set()


def test_errors_share_one_root() -> None:
    for name in graphium.__all__:
        value = getattr(graphium, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, graphium.GraphiumError), name
