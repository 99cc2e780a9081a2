"""Lifecycle events: recorded in the store for later watchers, pushed to live subscribers now.

Event types are the original design's (task_created, task_updated, stack_deploying, stack_running,
stack_failed, stack_deleting, stack_deleted), plus task_waiting: a task waits for a host that has
no live agent. Event data never carries secret values: task
payloads are not part of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum
from typing import Any

from graphium.records.event import Event
from graphium.records.task import Task
from graphium.store.base import TaskStore

EVENT_SCHEMA_VERSION = 1


class EventType(str, Enum):
    task_created = "task_created"
    task_updated = "task_updated"
    task_waiting = "task_waiting"  # a task's host has no live agent: why nothing happens
    stack_deploying = "stack_deploying"
    stack_running = "stack_running"
    stack_failed = "stack_failed"
    stack_deleting = "stack_deleting"
    stack_deleted = "stack_deleted"


Subscriber = Callable[[Event], None]


def task_event(kind: EventType, task: Task) -> Event:
    """An event describing a task's state, without its payload (which may hold secrets)."""
    data: dict[str, Any] = {
        "status": task.status.value,
        "taskType": task.task_type.value,
        "description": task.description,
    }
    if task.error:
        data["error"] = task.error
    if task.result:
        data["result"] = {
            k: v for k, v in task.result.items() if k in ("containerId", "dockerName", "health")
        }
    return Event(
        type=kind.value,
        stack_id=task.stack_id,
        task_id=task.id,
        host_id=task.host_id,
        run_id=task.run_id,
        data=data,
    )


def stack_event(kind: EventType, stack_id: str, *, run_id: str | None = None, **data: Any) -> Event:
    return Event(type=kind.value, stack_id=stack_id, run_id=run_id, data=data)


class EventBus:
    """Stores events (so the server and ``status`` can replay them) and calls live subscribers.

    Subscribers see the events this bus emitted once they are durable: at once for an emit on its
    own, at the end of the store batch it was made in otherwise (through the store's commit hook),
    so a watcher never sees an event that a crash or a failed batch undoes. They are called in the
    committing thread. Without a store, they are called at once.
    """

    def __init__(self, store: TaskStore | None = None) -> None:
        self._store = store
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._local = threading.local()  # per thread: inside our own single-operation append?
        # appended in a batch, not committed yet; keyed by (seq, time) only at the commit, since a
        # store may number a batch's events when it commits (the PostgreSQL store does)
        self._pending: list[Event] = []
        self._unhook: Callable[[], None] | None = None

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        with self._lock:
            self._subscribers = [*self._subscribers, subscriber]
            if self._store is not None and self._unhook is None:
                self._unhook = self._store.on_commit(self._committed)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not subscriber]
                if not self._subscribers and self._unhook is not None:
                    self._unhook()
                    self._unhook = None
                    self._pending.clear()

        return unsubscribe

    def emit(self, *events: Event) -> None:
        if self._store is None:
            self._deliver(list(events))
            return
        if not self._subscribers:
            self._store.append_events(list(events))
            return
        self._local.appending, self._local.delivered = True, False
        try:
            stored = self._store.append_events(list(events))
        finally:
            self._local.appending = False
        if not self._local.delivered:  # inside a batch: delivered when it commits
            with self._lock:
                self._pending.extend(stored)

    def _committed(self, events: list[Event]) -> None:
        if getattr(self._local, "appending", False):  # the commit of our own append
            self._local.delivered = True
            self._deliver(events)
            return
        with self._lock:
            waiting = {(e.seq, e.time) for e in self._pending}
            mine = [e for e in events if (e.seq, e.time) in waiting]
            if mine:
                taken = {(e.seq, e.time) for e in mine}
                self._pending = [e for e in self._pending if (e.seq, e.time) not in taken]
        self._deliver(mine)

    def _deliver(self, events: list[Event]) -> None:
        subscribers = self._subscribers
        for event in events:
            for subscriber in subscribers:
                subscriber(event)


def event_json(event: Event) -> dict[str, Any]:
    """The machine form of an event (``--json`` output, event streams)."""
    return {"schema_version": EVENT_SCHEMA_VERSION, **event.dump()}
