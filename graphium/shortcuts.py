"""Blocking plan, apply, destroy, history and rollback for scripts, with the default store and
executors.

Each call opens the JSON-file store, builds the local + SSH + agent executors, runs one
:class:`~graphium.run.deployer.Deployer` operation to the end and closes them again.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from graphium.executors.router import default_executor
from graphium.plan.model import Plan
from graphium.records.version import StackVersion
from graphium.run import versions
from graphium.run.defaults import DEFAULT_PARALLELISM, DEFAULT_PER_HOST
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus, Subscriber
from graphium.run.runner import RunResult
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import StackDocument, load_stack
from graphium.stack.models import Inventory
from graphium.store.base import TaskStore
from graphium.store.open import DEFAULT_STATE

StackSource = str | Path | Mapping[str, Any] | StackDocument  # a file, a document as a dict, or loaded


def _open(
    stack: StackSource | None, inventory: str | Path | Inventory | None, state: str | Path
) -> tuple[StackDocument | None, Inventory, TaskStore]:
    from graphium.store.open import open_store

    doc = stack if stack is None or isinstance(stack, StackDocument) else load_stack(stack)
    if not isinstance(inventory, Inventory):
        inventory = load_inventory(inventory, doc.hosts if doc else [])
    return doc, inventory, open_store(str(state))


async def _with_deployer(
    inventory: Inventory,
    store: TaskStore,
    parallelism: int | None,
    on_event: Subscriber | None,
    work: Callable[[Deployer], Any],
    per_host: int = DEFAULT_PER_HOST,
) -> Any:
    events = EventBus(store)
    if on_event is not None:
        events.subscribe(on_event)
    executor = default_executor(store, notify=events.emit)
    try:
        deployer = Deployer(
            store, executor, inventory, events=events, parallelism=parallelism, per_host=per_host
        )
        return await work(deployer)
    finally:
        await executor.close()


def plan(
    stack: StackSource,
    *,
    inventory: str | Path | Inventory | None = None,
    state: str | Path = DEFAULT_STATE,
    environ: Mapping[str, str] | None = None,
) -> Plan:
    """Load a stack (a file, or a stack document as a dict) and compute its plan against the live
    hosts (changes nothing)."""
    doc, inv, store = _open(stack, inventory, state)
    assert doc is not None
    result: Plan = asyncio.run(
        _with_deployer(inv, store, DEFAULT_PARALLELISM, None, lambda d: d.plan(doc, environ))
    )
    return result


def apply(
    stack_or_plan: StackSource | Plan,
    *,
    inventory: str | Path | Inventory | None = None,
    state: str | Path = DEFAULT_STATE,
    environ: Mapping[str, str] | None = None,
    parallelism: int | None = DEFAULT_PARALLELISM,
    per_host: int = DEFAULT_PER_HOST,
    on_event: Subscriber | None = None,
) -> RunResult:
    """Plan (unless given a plan, which is checked for staleness) and apply; raises nothing on task
    failure: inspect ``RunResult.ok`` (or call :func:`graphium.run.runner.raise_for_result`).

    A plan is applied to the hosts of the inventory it was made with, unless ``inventory`` is given.
    """
    given_plan = stack_or_plan if isinstance(stack_or_plan, Plan) else None
    if given_plan is not None and inventory is None and given_plan.inventory:
        inventory = Inventory.model_validate(given_plan.inventory)
    doc, inv, store = _open(None if given_plan else stack_or_plan, inventory, state)  # type: ignore[arg-type]

    async def work(deployer: Deployer) -> RunResult:
        if given_plan is not None:
            return await deployer.apply(given_plan, verify_fresh=True)
        assert doc is not None
        return await deployer.apply(await deployer.plan(doc, environ))

    result: RunResult = asyncio.run(_with_deployer(inv, store, parallelism, on_event, work, per_host))
    return result


def destroy(
    stack: StackSource,
    *,
    inventory: str | Path | Inventory | None = None,
    state: str | Path = DEFAULT_STATE,
    parallelism: int | None = DEFAULT_PARALLELISM,
    per_host: int = DEFAULT_PER_HOST,
    on_event: Subscriber | None = None,
    volumes: bool = False,
) -> RunResult:
    """Remove every container of the stack from every host, then the stack's records; the
    stack's own named volumes are kept unless ``volumes`` (the plan's notes name them)."""
    doc, inv, store = _open(stack, inventory, state)
    assert doc is not None
    name = doc.stack.name

    async def work(deployer: Deployer) -> RunResult:
        return await deployer.apply(await deployer.plan_destroy(name, volumes=volumes))

    result: RunResult = asyncio.run(_with_deployer(inv, store, parallelism, on_event, work, per_host))
    return result


def _stack_name(stack: StackSource) -> str:
    """A stack's name, from a loaded stack, a document, a stack file, or the name itself."""
    if isinstance(stack, StackDocument):
        return stack.stack.name
    if isinstance(stack, Mapping) or os.path.isfile(stack):
        return load_stack(stack).stack.name
    return str(stack)


def history(stack: StackSource, *, state: str | Path = DEFAULT_STATE) -> list[StackVersion]:
    """The recorded versions of a stack (a name, or a stack as :func:`plan` takes it), oldest first."""
    from graphium.store.open import is_database_url, open_store

    if not is_database_url(str(state)) and not Path(state).exists():
        return []
    with open_store(str(state)) as store:
        return store.list_versions(_stack_name(stack))


def rollback(
    stack: StackSource,
    *,
    to: int | None = None,
    inventory: str | Path | Inventory | None = None,
    state: str | Path = DEFAULT_STATE,
    environ: Mapping[str, str] | None = None,
    parallelism: int | None = DEFAULT_PARALLELISM,
    per_host: int = DEFAULT_PER_HOST,
    on_event: Subscriber | None = None,
) -> RunResult:
    """Apply an earlier version of a stack again: version ``to``, or the one before the running
    version (see :func:`graphium.records.version.rollback_target`). Its recorded variables are
    restored, the others (secrets) read from ``environ`` (default: ``os.environ``); without
    ``inventory``, the hosts are those that version was applied to."""
    from graphium.store.open import open_store

    name = _stack_name(stack)
    store = open_store(str(state))
    target = versions.choose(store, name, to)
    if not isinstance(inventory, Inventory):
        inventory = (
            load_inventory(inventory) if inventory is not None else Inventory.model_validate(target.inventory)
        )

    async def work(deployer: Deployer) -> RunResult:
        return await deployer.apply(await deployer.plan_rollback(target, environ))

    result: RunResult = asyncio.run(_with_deployer(inventory, store, parallelism, on_event, work, per_host))
    return result


__all__ = ["StackSource", "apply", "destroy", "history", "plan", "rollback"]
