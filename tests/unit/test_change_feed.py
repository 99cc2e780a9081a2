"""The server's change feed wakes waiters by topic, from a real store's commit hook."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from graphium.control.server.changes import ChangeFeed
from graphium.records.agent import AgentRecord
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.run.events import EventBus, EventType, task_event
from graphium.store.json_store import JsonTaskStore


def task(task_id: str, host: str) -> Task:
    return Task(id=task_id, task_type=TaskType.deploy, host_id=host, stack_id="web")


async def woken(wait: asyncio.Task[None]) -> bool:
    """Whether ``wait`` ended by itself within a moment (it waits 30 s otherwise)."""
    for _ in range(50):
        await asyncio.sleep(0.01)
        if wait.done():
            return True
    wait.cancel()
    return False


@pytest.fixture
def store(tmp_path: Path) -> JsonTaskStore:
    return JsonTaskStore(tmp_path / "state.json")


async def test_a_commit_wakes_the_claims_of_its_tasks_hosts_only(store: JsonTaskStore) -> None:
    feed = ChangeFeed()
    feed.bind(asyncio.get_running_loop())
    feed.attach(store)
    bus = EventBus(store)
    vm1 = asyncio.create_task(feed.wait_host("vm1", feed.host_version("vm1"), 30))
    vm2 = asyncio.create_task(feed.wait_host("vm2", feed.host_version("vm2"), 30))
    with store.batch():
        store.create_tasks([task("t1", "vm1")])
        bus.emit(task_event(EventType.task_created, store.get_task("t1")))
    assert await woken(vm1)
    assert not await woken(vm2)


async def test_a_completion_wakes_every_host_and_no_events_wake_nobody(store: JsonTaskStore) -> None:
    feed = ChangeFeed()
    feed.bind(asyncio.get_running_loop())
    feed.attach(store)
    store.create_tasks([task("t1", "vm1")])
    store.transition("t1", TaskStatus.running)

    quiet = [asyncio.create_task(feed.wait_host("vm2", feed.host_version("vm2"), 30))]
    quiet.append(asyncio.create_task(feed.wait(feed.version, 30)))
    store.save_agents([AgentRecord(agent_id="a", host_id="vm2")])  # a write without events
    assert [await woken(w) for w in quiet] == [False, False]

    dependant = asyncio.create_task(feed.wait_host("vm2", feed.host_version("vm2"), 30))
    streams = asyncio.create_task(feed.wait(feed.version, 30))
    with store.batch():
        done = store.transition("t1", TaskStatus.completed)
        EventBus(store).emit(task_event(EventType.task_updated, done))
    assert await woken(dependant) and await woken(streams)


async def test_a_version_taken_before_a_change_is_never_missed(store: JsonTaskStore) -> None:
    feed = ChangeFeed()
    feed.bind(asyncio.get_running_loop())
    since = feed.host_version("vm1")
    feed.notify(everyone=True)  # before anyone waits: the host's version still moves
    await asyncio.sleep(0)
    assert feed.host_version("vm1") != since
    await asyncio.wait_for(feed.wait_host("vm1", since, 30), 1)


async def test_another_process_write_is_told_from_our_own(store: JsonTaskStore, tmp_path: Path) -> None:
    store.create_tasks([task("mine", "vm1")])
    assert not store.changed_elsewhere()
    other = JsonTaskStore(tmp_path / "state.json")
    other.create_tasks([task("theirs", "vm1")])
    assert store.changed_elsewhere()
    store.list_tasks()
    assert not store.changed_elsewhere()  # told once, not again when read
    other.create_tasks([task("again", "vm1")])
    store.get_task("again")  # a read catches up before the watcher asks: the write is still told
    assert store.changed_elsewhere()
    assert not store.changed_elsewhere()
