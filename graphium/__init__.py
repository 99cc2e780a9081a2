"""graphium: declarative multi-host container deployment from JSON-LD stacks.

Load a stack, plan it against live hosts, apply or destroy it::

    import graphium

    plan = graphium.plan("stack.jsonld", inventory="hosts.json")
    result = graphium.apply("stack.jsonld", inventory="hosts.json")
    assert result.ok
    graphium.rollback("stack.jsonld")  # back to the version applied before

For async code and custom stores or executors, build a :class:`graphium.Deployer`.
"""

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
from graphium.store.json_store import DEFAULT_STATE

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
