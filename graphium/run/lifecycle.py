"""The stack lifecycle: what a stack becomes, from its record and the tasks of its current run.

One set of rules for both places that settle stacks: the :class:`~graphium.run.deployer.Deployer`
once its runner finished, and the control server's task monitor for runs whose process is gone.
Pure: no store, no clock (``now`` is passed in), no I/O; the callers apply the :class:`Decision`.

A run is one apply or destroy of one stack. It has an id; its tasks carry it (``Task.run_id``) and
the stack record names the current one (``StackRecord.run_id``), so that tasks an earlier run left
failed or cancelled never count against a later run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from graphium.plan.payloads import DeletePayload, RestorePayload, created_container
from graphium.records.event import Event
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import TERMINAL, Task, TaskStatus, TaskType
from graphium.run.events import EventType, stack_event

# a process running a stack's tasks renews this lease on the stack record; a server's task
# monitor leaves the stack alone while it is live
RUNNER_LEASE_SECONDS = 60.0
# tasks that build a stack up; pending ones must never run once the stack is being deleted
BUILD_TYPES = frozenset(
    {
        TaskType.deploy,
        TaskType.replace,
        TaskType.ensure_network,
        TaskType.ensure_volume,
        TaskType.start,
        TaskType.restart,
        TaskType.restore,
    }
)
SETTLING = frozenset({StackStatus.deploying, StackStatus.deleting})
# desired placements of a plan: instance -> (host id, docker name)
Desired = Mapping[str, tuple[str, str]]


def new_run_id() -> str:
    """A fresh, unique run id."""
    return f"run-{uuid.uuid4().hex[:16]}"


# leases -------------------------------------------------------------------------------------------
def lease_live(record: StackRecord, now: datetime) -> bool:
    """Whether a live process holds the stack's runner lease at ``now``."""
    lease = record.runner_lease_until
    return lease is not None and datetime.fromisoformat(lease) > now


def lease_end(now: datetime) -> str:
    """The expiry of a runner lease taken or renewed at ``now``."""
    return (now + timedelta(seconds=RUNNER_LEASE_SECONDS)).isoformat(timespec="microseconds")


# the current run ----------------------------------------------------------------------------------
def current_run(record: StackRecord, tasks: Iterable[Task]) -> list[Task]:
    """The tasks of the record's current run. For a record that names no run (written before runs
    had ids, or by hand) every task of the stack, less a deletion's builds, which never run."""
    if record.run_id is None:
        if record.status is StackStatus.deleting:
            return [t for t in tasks if t.task_type not in BUILD_TYPES]
        return list(tasks)
    return [t for t in tasks if t.run_id == record.run_id]


def open_builds(tasks: Iterable[Task]) -> list[Task]:
    """Pending tasks that would build the stack up: cancelled once the stack is being deleted."""
    return [t for t in tasks if t.status is TaskStatus.pending and t.task_type in BUILD_TYPES]


def blocked(tasks: Sequence[Task], others: Mapping[str, Task] | None = None) -> dict[str, str]:
    """Pending tasks that can never start, each with the reason: a dependency failed, was
    cancelled or is unknown, directly or through another blocked task. ``others`` are further
    tasks a dependency may name (the rest of the stack's)."""
    known = {t.id: t for t in (others or {}).values()} | {t.id: t for t in tasks}
    status = {i: t.status for i, t in known.items()}
    dead = (TaskStatus.failed, TaskStatus.cancelled)
    out: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for task in tasks:
            if task.id in out or task.status is not TaskStatus.pending:
                continue
            gone = [
                d
                for d in task.depends_on
                if status.get(d, TaskStatus.cancelled) in dead and not (d in known and known[d].passes)
            ]
            if gone:
                out[task.id] = f"not started: dependency {gone[0]} did not complete"
                status[task.id] = TaskStatus.cancelled
                changed = True
    return out


def progress(tasks: Sequence[Task]) -> int:
    """Percent of the run's tasks that ended (a run without tasks has nothing left to do)."""
    if not tasks:
        return 100
    return int(100 * sum(t.status in TERMINAL for t in tasks) / len(tasks))


# what went wrong ----------------------------------------------------------------------------------
def failure_lines(tasks: Iterable[Task]) -> list[str]:
    """One line per failed task (by host: what: why), then how many tasks never started."""
    ended = list(tasks)
    failed = sorted((t for t in ended if t.status is TaskStatus.failed), key=lambda t: t.host_id)
    lines = [f"{t.host_id}: {t.description or t.task_type.value}: {t.error}" for t in failed]
    cancelled = sum(t.status is TaskStatus.cancelled for t in ended)
    if cancelled:
        lines.append(f"{cancelled} task(s) not started")
    return lines


def failure_summary(tasks: Iterable[Task]) -> str:
    """The failure lines on one line: the stack record's ``error``."""
    return "; ".join(failure_lines(tasks)) or "failed"


# where containers run -----------------------------------------------------------------------------
def placements(
    stored: Mapping[str, dict[str, Any]], tasks: Iterable[Task], desired: Desired | None = None
) -> dict[str, dict[str, Any]]:
    """Where each container of the stack runs after the run, written back from task results.

    The stored placements, less the containers a completed delete removed, plus those a completed
    deploy or replace created. With ``desired`` (the plan's instances), exactly those instances:
    one placed on another host than recorded gets a fresh entry without a container id.
    """
    out = dict(stored)
    created: dict[str, dict[str, Any]] = {}
    for task in tasks:
        if task.status is not TaskStatus.completed:
            continue
        container = created_container(task)
        if container is not None:
            created[container.name] = {
                "hostId": task.host_id,
                "containerId": (task.result or {}).get("containerId"),
                "dockerName": container.docker_name,
            }
        elif task.task_type is TaskType.restore:  # a rolled-back rollout: the old container again
            restored = RestorePayload.model_validate(task.payload)
            created[restored.name] = {
                "hostId": task.host_id,
                "containerId": (task.result or {}).get("containerId"),
                "dockerName": restored.docker_name,
            }
        elif task.task_type is TaskType.delete:
            try:
                name = DeletePayload.model_validate(task.payload).docker_name
            except PydanticValidationError:
                continue  # not a payload this stack's planner wrote: it removed nothing
            out = {
                k: v for k, v in out.items() if (v.get("hostId"), v.get("dockerName")) != (task.host_id, name)
            }
    out.update(created)
    if desired is None:
        return out
    placed: dict[str, dict[str, Any]] = {}
    for name, (host, docker_name) in desired.items():
        entry = out.get(name)
        if entry is None or entry.get("hostId") != host:
            entry = {"hostId": host, "containerId": None, "dockerName": docker_name}
        placed[name] = entry
    return placed


def stack_hosts(placed: Mapping[str, dict[str, Any]], tasks: Iterable[Task]) -> list[str]:
    """Hosts the stack has containers on, or a network its run created."""
    hosts = {str(p["hostId"]) for p in placed.values() if p.get("hostId")}
    return sorted(hosts | {t.host_id for t in tasks if t.task_type is TaskType.ensure_network})


# decisions ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What to do to a stack: cancel blocked tasks, then save ``record`` or delete the stack, and
    say ``event`` (set once the run settled)."""

    record: StackRecord | None = None  # to save; None: nothing to save (or the stack is deleted)
    delete: bool = False  # the destroy completed: remove the stack's records
    event: Event | None = None  # stack_running / stack_failed / stack_deleted once settled
    cancel: dict[str, str] = field(default_factory=dict)  # task id -> reason

    @property
    def settled(self) -> bool:
        return self.event is not None


def settle(record: StackRecord, tasks: Sequence[Task], *, desired: Desired | None = None) -> Decision:
    """The end of a run whose tasks all ended: running, error, or (a destroy that completed) gone.

    On failure the progress stays what it was, and the error lists what failed.
    """
    ok = all(t.status is TaskStatus.completed for t in tasks)
    run = record.run_id
    if record.status is StackStatus.deleting:
        if ok:
            return Decision(delete=True, event=stack_event(EventType.stack_deleted, record.id, run_id=run))
        error: str | None = failure_summary(tasks)
        update: dict[str, Any] = {"status": StackStatus.error, "phase": "delete-failed", "error": error}
    else:
        placed = placements(record.placements, tasks, desired)
        error = None if ok else failure_summary(tasks)
        update = {
            "status": StackStatus.running if ok else StackStatus.error,
            "phase": "running" if ok else "failed",
            "progress": 100 if ok else record.progress,
            "placements": placed,
            "hosts": stack_hosts(placed, tasks),
            "error": error,
        }
    kind = EventType.stack_running if ok else EventType.stack_failed
    return Decision(
        record=record.model_copy(update={**update, "runner_lease_until": None, "runner_owner": None}),
        event=stack_event(kind, record.id, run_id=run, error=error),
    )


def decide(record: StackRecord, tasks: Sequence[Task], others: Mapping[str, Task] | None = None) -> Decision:
    """One look at a deploying or deleting stack nobody runs (the server's task monitor): cancel
    what can never start, then settle it once every task of the run ended, or else record the
    progress. ``tasks`` are the current run's; ``others`` every task of the stack."""
    cancel = blocked(tasks, others)
    if cancel:
        tasks = [
            t.model_copy(update={"status": TaskStatus.cancelled, "error": cancel[t.id]})
            if t.id in cancel
            else t
            for t in tasks
        ]
    if any(t.status not in TERMINAL for t in tasks):
        percent = progress(tasks)
        changed = record.model_copy(update={"progress": percent}) if percent != record.progress else None
        return Decision(record=changed, cancel=cancel)
    done = settle(record, tasks)
    return Decision(record=done.record, delete=done.delete, event=done.event, cancel=cancel)


__all__ = [
    "BUILD_TYPES",
    "RUNNER_LEASE_SECONDS",
    "SETTLING",
    "Decision",
    "blocked",
    "current_run",
    "decide",
    "failure_lines",
    "failure_summary",
    "lease_end",
    "lease_live",
    "new_run_id",
    "open_builds",
    "placements",
    "progress",
    "settle",
    "stack_hosts",
]
