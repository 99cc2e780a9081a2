"""Runs: every task carries its run's id, and only the current run decides a stack's outcome.

The deployer drives a scripted executor (no engine: this is the lifecycle's bookkeeping), the
server's monitor pass runs against a real JSON store, and live event subscribers hear of events
only once they are durable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from graphium.control.server.auth import TokenRegistry, create_token
from graphium.control.server.changes import ChangeFeed
from graphium.control.server.monitor import monitor_once
from graphium.control.server.presence import AgentRegistry
from graphium.control.server.state import Server
from graphium.errors import ExecutionError
from graphium.executors.agent import AgentExecutor
from graphium.plan.model import ObservedHost, Plan
from graphium.records.event import Event
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus
from graphium.stack.models import Host, Inventory
from graphium.store.json_store import JsonTaskStore

HOST = Host.model_validate({"@id": "a"})


class Scripted:
    """Completes every task but those it is told to fail."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.fail = fail

    async def observe(self, hosts: list[Host], stack: str | None) -> dict[str, ObservedHost]:
        return {h.id: ObservedHost(host=h.id) for h in hosts}

    async def run(self, task: Task, host: Host) -> dict[str, Any]:
        await asyncio.sleep(0)
        if task.id in self.fail:
            raise ExecutionError("boom", host=host.id, task=task.id)
        return {}

    async def close(self) -> None:
        return None


def plan(*ids: str) -> Plan:
    """A chain: each task depends on the one before it."""
    tasks = [
        Task(id=i, task_type=TaskType.stop, host_id="a", description=i, depends_on=list(ids[:n][-1:]))
        for n, i in enumerate(ids)
    ]
    return Plan(stack="web", tasks=tasks, fingerprint="f")


@pytest.fixture
def store(tmp_path: Path) -> JsonTaskStore:
    return JsonTaskStore(tmp_path / "state.json")


def deployer(store: JsonTaskStore, fail: set[str] = frozenset()) -> Deployer:
    return Deployer(store, Scripted(fail), Inventory(hosts=[HOST]))


async def test_an_earlier_failed_run_does_not_count_against_the_next(store: JsonTaskStore) -> None:
    first = await deployer(store, fail={"x1"}).apply(plan("x1", "x2"))
    assert not first.ok
    failed = store.get_stack("web")
    assert failed is not None and failed.status is StackStatus.error and failed.run_id
    assert {t.run_id for t in store.list_tasks()} == {failed.run_id}

    second = await deployer(store).apply(plan("y1", "y2"))
    assert second.ok
    record = store.get_stack("web")
    assert record is not None and record.status is StackStatus.running
    assert record.run_id != failed.run_id and record.progress == 100 and record.error is None
    assert [t.id for t in store.list_tasks(run_id=record.run_id)] == ["y1", "y2"]
    earlier = store.list_tasks(run_id=failed.run_id)
    assert [(t.id, t.status) for t in earlier] == [("x1", TaskStatus.failed), ("x2", TaskStatus.cancelled)]
    started = [e for e in store.list_events(stack_id="web") if e.type == "stack_deploying"]
    assert [e.run_id for e in started] == [failed.run_id, record.run_id]


async def test_a_rerun_of_the_same_plan_resumes_its_stored_tasks_in_the_new_run(store: JsonTaskStore) -> None:
    assert (await deployer(store).apply(plan("a1", "a2"))).ok
    first = store.get_stack("web")
    assert first is not None
    assert (await deployer(store).apply(plan("a1", "a2"))).ok  # same content-derived ids
    again = store.get_stack("web")
    assert again is not None and again.run_id != first.run_id
    assert [(t.id, t.run_id) for t in store.list_tasks()] == [("a1", again.run_id), ("a2", again.run_id)]
    assert again.status is StackStatus.running and again.progress == 100


def test_the_monitor_settles_from_the_current_run_only(tmp_path: Path, store: JsonTaskStore) -> None:
    tokens = tmp_path / "tokens.json"
    create_token(tokens, "admin", None)
    srv = Server(store, ChangeFeed(), TokenRegistry(tokens), None, AgentExecutor(store), AgentRegistry(store))
    store.create_tasks(
        [
            Task(id="old", task_type=TaskType.stop, host_id="a", stack_id="web", run_id="r1"),
            Task(id="new", task_type=TaskType.stop, host_id="a", stack_id="web", run_id="r2"),
        ]
    )
    store.transition("old", TaskStatus.running)
    store.transition("old", TaskStatus.failed, error="boom")
    store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying, run_id="r2"))

    monitor_once(srv, set())
    record = store.get_stack("web")
    assert record is not None and record.status is StackStatus.deploying and record.progress == 0

    store.transition("new", TaskStatus.running)
    store.transition("new", TaskStatus.completed)
    monitor_once(srv, set())
    record = store.get_stack("web")
    assert record is not None and record.status is StackStatus.running
    assert record.progress == 100 and record.error is None
    settled = [e for e in store.list_events(stack_id="web") if e.type == "stack_running"]
    assert [e.run_id for e in settled] == ["r2"]


# live events on durable commit ----------------------------------------------------------------------
def test_subscribers_hear_of_events_once_they_are_durable(store: JsonTaskStore) -> None:
    bus, other = EventBus(store), EventBus(store)
    heard: list[str] = []
    bus.subscribe(lambda e: heard.append(e.type))
    bus.emit(Event(type="alone"))
    assert heard == ["alone"]  # a single operation is its own commit
    with store.batch():
        bus.emit(Event(type="in-batch"))
        other.emit(Event(type="someone-else"))
        assert heard == ["alone"]  # not durable yet
    assert heard == ["alone", "in-batch"]  # only this bus's own events
    with pytest.raises(RuntimeError), store.batch():
        bus.emit(Event(type="undone"))
        raise RuntimeError("abort")
    bus.emit(Event(type="after"))
    assert heard == ["alone", "in-batch", "after"]


def test_an_unsubscribed_bus_stops_hearing(store: JsonTaskStore) -> None:
    bus = EventBus(store)
    heard: list[str] = []
    unsubscribe = bus.subscribe(lambda e: heard.append(e.type))
    unsubscribe()
    bus.emit(Event(type="unheard"))
    assert heard == [] and [e.type for e in store.list_events()] == ["unheard"]
