"""graphium: declarative multi-host container deployment from JSON-LD stacks.

Load a stack, plan it against live hosts, apply or destroy it::

    import graphium

    plan = graphium.plan("stack.jsonld", inventory="hosts.json")
    result = graphium.apply("stack.jsonld", inventory="hosts.json")
    assert result.ok
    graphium.rollback("stack.jsonld")  # back to the version applied before

For async code and custom stores or executors, build a :class:`graphium.Deployer`.
"""

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
    from graphium.errors import (
        ExecutionError,
        GraphiumError,
        PlacementError,
        PlanError,
        Problem,
        StackError,
        StalePlanError,
        StoreError,
        ValidationError,
    )
    from graphium.executors.router import default_executor
    from graphium.plan.model import Action, ActionKind, Plan
    from graphium.records.task import Task, TaskStatus, TaskType
    from graphium.records.version import StackVersion
    from graphium.run.deployer import Deployer
    from graphium.run.runner import RunResult
    from graphium.shortcuts import apply, destroy, history, plan, rollback
    from graphium.stack.inventory import load_inventory
    from graphium.stack.loader import StackDocument, load_stack
    from graphium.stack.models import ContainerSpec, Host, Inventory, StackSpec
    from graphium.store.open import DEFAULT_STATE

__all__ = [
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

# Where each public name lives. They are imported on first use (PEP 562), so that ``import
# graphium`` (which every ``graphium-run`` command does, as the CLI is a sub-package) costs
# nothing: the deployer alone would bring in docker-py, asyncssh and asyncio.
_HOMES = {
    "DEFAULT_STATE": "graphium.store.open",
    "Action": "graphium.plan.model",
    "ActionKind": "graphium.plan.model",
    "ContainerSpec": "graphium.stack.models",
    "Deployer": "graphium.run.deployer",
    "ExecutionError": "graphium.errors",
    "GraphiumError": "graphium.errors",
    "Host": "graphium.stack.models",
    "Inventory": "graphium.stack.models",
    "PlacementError": "graphium.errors",
    "Plan": "graphium.plan.model",
    "PlanError": "graphium.errors",
    "Problem": "graphium.errors",
    "RunResult": "graphium.run.runner",
    "StackDocument": "graphium.stack.loader",
    "StackError": "graphium.errors",
    "StackSpec": "graphium.stack.models",
    "StackVersion": "graphium.records.version",
    "StalePlanError": "graphium.errors",
    "StoreError": "graphium.errors",
    "Task": "graphium.records.task",
    "TaskStatus": "graphium.records.task",
    "TaskType": "graphium.records.task",
    "ValidationError": "graphium.errors",
    "apply": "graphium.shortcuts",
    "default_executor": "graphium.executors.router",
    "destroy": "graphium.shortcuts",
    "history": "graphium.shortcuts",
    "load_inventory": "graphium.stack.inventory",
    "load_stack": "graphium.stack.loader",
    "plan": "graphium.shortcuts",
    "rollback": "graphium.shortcuts",
}


# ``graphium.plan`` is both a sub-package and the public function ``plan``. Importing the package
# binds its name here; imported now (it is only a docstring) and unbound again, a later import of
# ``graphium.plan.*`` cannot shadow the function, which __getattr__ then gives, as before.
_importlib.import_module("graphium.plan")
del globals()["plan"]


def __getattr__(name: str) -> _Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'graphium' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value  # resolved once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
