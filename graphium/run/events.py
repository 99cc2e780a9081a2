"""Lifecycle events: recorded in the store for later watchers, pushed to live subscribers now.

Event types are the original design's (task_created, task_updated, stack_deploying, stack_running,
stack_failed, stack_deleting, stack_deleted). Event data never carries secret values: task
payloads are not part of it.
"""

from __future__ import annotations

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
    return Event(type=kind.value, stack_id=task.stack_id, task_id=task.id, host_id=task.host_id, data=data)


def stack_event(kind: EventType, stack_id: str, **data: Any) -> Event:
    return Event(type=kind.value, stack_id=stack_id, data=data)


class EventBus:
    """Stores events (so the server and ``status`` can replay them) and calls live subscribers."""

    def __init__(self, store: TaskStore | None = None) -> None:
        self._store = store
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, *events: Event) -> None:
        stored = self._store.append_events(list(events)) if self._store is not None else list(events)
        for event in stored:
            for subscriber in self._subscribers:
                subscriber(event)


def event_json(event: Event) -> dict[str, Any]:
    """The machine form of an event (``--json`` output, event streams)."""
    return {"schema_version": EVENT_SCHEMA_VERSION, **event.dump()}
