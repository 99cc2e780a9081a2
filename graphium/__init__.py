"""graphium: declarative multi-host container deployment from JSON-LD stacks.

Load a stack, plan it against live hosts, apply or destroy it::

    import graphium

    plan = graphium.plan("stack.jsonld", inventory="hosts.json")
    result = graphium.apply("stack.jsonld", inventory="hosts.json")
    assert result.ok

For async code and custom stores or executors, build a :class:`graphium.Deployer`.
"""

from graphium.api import DEFAULT_STATE, Deployer, apply, default_executor, destroy, plan
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
from graphium.inventory import load_inventory
from graphium.loader import StackDocument, load_stack
from graphium.models import ContainerSpec, Host, Inventory, StackSpec
from graphium.plan import Action, ActionKind, Plan
from graphium.runner import RunResult
from graphium.tasks import Task, TaskStatus, TaskType

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
    "StalePlanError",
    "StoreError",
    "Task",
    "TaskStatus",
    "TaskType",
    "ValidationError",
    "apply",
    "default_executor",
    "destroy",
    "load_inventory",
    "load_stack",
    "plan",
]
