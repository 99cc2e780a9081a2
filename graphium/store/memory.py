"""The JSON store's in-memory state: every record, plus the indexes that make claims cheap.

Each :class:`~graphium.store.json_store.JsonTaskStore` keeps the whole state in memory and
replays journal operations into it (:meth:`StoreState.apply`); the claim queue per host and the
set of leased tasks per host are kept up to date by every put and drop.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticValidationError

from graphium.errors import NotFoundError, StoreError, TransitionError
from graphium.plan.model import ObservedHost
from graphium.records.agent import AgentRecord
from graphium.records.event import Event
from graphium.records.stack import StackRecord
from graphium.records.task import Task, TaskStatus, check_transition
from graphium.records.version import KEEP_VERSIONS, StackVersion

FORMAT_VERSION = 1  # of the main file's document
LEASED = frozenset({TaskStatus.assigned, TaskStatus.running})
QueueKey = tuple[int, str, str]  # (-priority, dateCreated, id): claim order


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_Model = TypeVar("_Model", Task, StackRecord, Event, StackVersion)


def clone(model: _Model, **update: Any) -> _Model:
    """An independent, validated copy. A JSON round trip is several times cheaper than
    ``deepcopy``, and it checks that ``update`` holds valid, JSON-able values."""
    source = model.model_copy(update=update) if update else model
    return type(model).model_validate(source.dump())


def queue_key(task: Task) -> QueueKey:
    return (-task.priority, task.date_created, task.id)


def brief(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class StoreState:
    """Stacks, tasks, events and observations, with the claim indexes."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self.tasks: dict[str, Task] = {}
        self.stacks: dict[str, StackRecord] = {}
        self.events: list[Event] = []
        self.observations: dict[str, dict[str, Any]] = {}  # host -> {host, observed, reportedAt}
        self.agents: dict[str, AgentRecord] = {}  # agent id -> record
        self.versions: dict[str, list[StackVersion]] = {}  # stack id -> kept versions, oldest first
        self.seq = 0
        self.queue: dict[str, list[QueueKey]] = {}  # host -> pending tasks in claim order
        self.leased: dict[str, set[str]] = {}  # host -> assigned/running tasks with a lease

    # replay ---------------------------------------------------------------------------------
    def apply(self, ops: list[Any]) -> None:
        """Replay one journal entry; ValueError (or a pydantic error) when it is not valid."""
        for kind, value in ops:
            if kind == "task":
                self.put_task(Task.model_validate(value))
            elif kind == "task~":  # every field but the payload, kept from the stored task
                payload = self.tasks[value["id"]].payload
                self.put_task(Task.model_validate({**value, "payload": payload}))
            elif kind == "task-":
                self.drop_task(value)
            elif kind == "stack":
                self.stacks[value["id"]] = StackRecord.model_validate(value)
            elif kind == "stack~":  # the fields that changed, over the stored record
                stored = self.stacks[value["id"]]
                self.stacks[stored.id] = StackRecord.model_validate({**stored.dump(), **value})
            elif kind == "stack-":
                self.stacks.pop(value, None)
            elif kind == "observed":
                self.put_observation(value)
            elif kind == "agent":
                agent = AgentRecord.model_validate(value)
                self.agents[agent.agent_id] = agent
            elif kind == "agent-":
                self.agents.pop(value, None)
            elif kind == "version":
                self.put_version(StackVersion.model_validate(value))
            elif kind == "events":
                self.add_events([Event.model_validate(v) for v in value])
            else:
                raise ValueError(f"unknown operation {kind!r}")

    def snapshot(self, generation: int) -> dict[str, dict[str, Any]]:
        """The whole state as a TinyDB document (tables meta, stacks, tasks, events, observations,
        agents, versions)."""
        return {
            "meta": {"1": {"format": FORMAT_VERSION, "generation": generation, "seq": self.seq}},
            "stacks": {str(i): s.dump() for i, s in enumerate(self.stacks.values(), start=1)},
            "tasks": {str(i): t.dump() for i, t in enumerate(self.tasks.values(), start=1)},
            "events": {str(e.seq): e.dump() for e in self.events},
            "observations": {str(i): o for i, o in enumerate(self.observations.values(), start=1)},
            "agents": {str(i): a.dump() for i, a in enumerate(self.agents.values(), start=1)},
            "versions": {f"{v.stack}/{v.number}": v.dump() for kept in self.versions.values() for v in kept},
        }

    def restore(self, doc: dict[str, dict[str, Any]]) -> None:
        """Load a TinyDB document written by :meth:`snapshot` (meta aside)."""
        for value in doc.get("observations", {}).values():
            self.put_observation(value)
        for value in doc.get("agents", {}).values():
            agent = AgentRecord.model_validate(value)
            self.agents[agent.agent_id] = agent
        for value in doc.get("stacks", {}).values():
            record = StackRecord.model_validate(value)
            self.stacks[record.id] = record
        for value in doc.get("tasks", {}).values():
            self.put_task(Task.model_validate(value))
        versions = (StackVersion.model_validate(v) for v in doc.get("versions", {}).values())
        for version in sorted(versions, key=lambda v: (v.stack, v.number)):
            self.put_version(version)
        events = sorted(
            (Event.model_validate(v) for v in doc.get("events", {}).values()), key=lambda e: e.seq
        )
        self.add_events(events)

    # records ----------------------------------------------------------------------------------
    def put_task(self, task: Task) -> None:
        old = self.tasks.get(task.id)
        if old is not None:
            self._unindex(old)
        self.tasks[task.id] = task
        if task.status == TaskStatus.pending:
            bisect.insort(self.queue.setdefault(task.host_id, []), queue_key(task))
        elif task.status in LEASED and task.lease_expires_at is not None:
            self.leased.setdefault(task.host_id, set()).add(task.id)

    def drop_task(self, task_id: str) -> None:
        old = self.tasks.pop(task_id, None)
        if old is not None:
            self._unindex(old)

    def _unindex(self, task: Task) -> None:
        if task.status == TaskStatus.pending:
            queue = self.queue[task.host_id]
            del queue[bisect.bisect_left(queue, queue_key(task))]
        else:
            leased = self.leased.get(task.host_id)
            if leased is not None:
                leased.discard(task.id)

    def put_observation(self, entry: Any) -> None:
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str) or "reportedAt" not in entry:
            raise ValueError("an observation needs 'host', 'observed' and 'reportedAt'")
        try:
            ObservedHost.model_validate(entry.get("observed"))
        except PydanticValidationError as exc:
            raise ValueError(f"observation of {entry['host']}: {brief(exc)}") from exc
        self.observations[entry["host"]] = entry

    def put_version(self, version: StackVersion) -> None:
        """Keep a version (replayed in number order), dropping the stack's oldest past the limit."""
        kept = self.versions.setdefault(version.stack, [])
        kept[:] = [v for v in kept if v.number != version.number] + [version]
        del kept[:-KEEP_VERSIONS]

    def add_events(self, events: list[Event]) -> None:
        self.events.extend(events)
        if events:
            self.seq = max(self.seq, events[-1].seq)
        excess = len(self.events) - self.max_events
        if excess > 0:
            del self.events[:excess]

    def task(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        return task

    def completed(self, task_id: str) -> bool:
        task = self.tasks.get(task_id)
        return task is not None and task.passes  # completed (or a rollout continues past it)


def stamped(
    current: Task,
    status: TaskStatus,
    moment: str,
    *,
    agent_id: str | None,
    error: str | None,
    result: dict[str, Any] | None,
) -> dict[str, Any]:
    """The fields a status change sets: the status, the matching timestamp, and what it clears."""
    update: dict[str, Any] = {"status": status}
    if agent_id is not None:
        update["agent_id"] = agent_id
    if status == TaskStatus.assigned:
        update["assigned_at"] = moment
    elif status == TaskStatus.running:
        update["started_at"] = moment
    elif status == TaskStatus.pending:
        update |= {
            "agent_id": None,
            "assigned_at": None,
            "started_at": None,
            "completed_at": None,
            "lease_expires_at": None,
            "not_before": None,
        }
    else:  # completed, failed, cancelled
        update |= {"completed_at": moment, "lease_expires_at": None}
    if error is not None:
        update["error"] = error
    elif status == TaskStatus.completed:
        update["error"] = None
    if result is not None:
        update["result"] = result
    return update


def transitioned(
    current: Task,
    status: TaskStatus,
    *,
    error: str | None,
    result: dict[str, Any] | None,
    agent_id: str | None,
    expected: TaskStatus | None,
) -> Task:
    """``current`` after a status change, by every backend's rules: compare-and-set with
    ``expected``, the allowed transitions, and refused for an agent other than the one holding an
    assigned or running task (one whose lease was taken over cannot overwrite its successor)."""
    task_id = current.id
    if expected is not None and current.status != expected:
        raise TransitionError(f"task {task_id}: is {current.status.value}, expected {expected.value}")
    check_transition(task_id, current.status, status)
    if (
        agent_id is not None
        and current.status in LEASED
        and current.agent_id is not None
        and current.agent_id != agent_id
    ):
        raise StoreError(f"task {task_id}: held by agent {current.agent_id}, not {agent_id}")
    update = stamped(current, status, iso(now()), agent_id=agent_id, error=error, result=result)
    return clone(current, **update)


def expired(task: Task, moment: datetime, backoff: float, max_backoff: float) -> dict[str, Any]:
    """What a task whose lease expired becomes: pending after a doubling backoff, or failed once
    it used its retries."""
    holder = f"agent {task.agent_id}" if task.agent_id else "its agent"
    retries = task.retry_count + 1
    if retries > task.max_retries:
        return {
            "status": TaskStatus.failed,
            "completed_at": iso(moment),
            "lease_expires_at": None,
            "error": f"lease of {holder} expired; no retries left"
            f" ({task.retry_count} of {task.max_retries} used)",
        }
    delay = min(backoff * 2 ** (retries - 1), max_backoff)
    return {
        "status": TaskStatus.pending,
        "retry_count": retries,
        "not_before": iso(moment + timedelta(seconds=delay)),
        "agent_id": None,
        "assigned_at": None,
        "started_at": None,
        "lease_expires_at": None,
        "error": f"lease of {holder} expired (retry {retries} of {task.max_retries})",
    }


__all__ = [
    "FORMAT_VERSION",
    "LEASED",
    "StoreState",
    "brief",
    "clone",
    "expired",
    "iso",
    "now",
    "parse_time",
    "queue_key",
    "stamped",
    "transitioned",
]
