"""What the dashboard shows of a stack, read from its record and tasks: no payload leaves here.

Task payloads carry resolved environment values (secrets among them), so a container's row is
built from the few fields a person needs (name, host, image, Docker name) and never from the
payload's environment; the templates see only these view objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphium.plan.payloads import created_container
from graphium.records.stack import StackRecord
from graphium.records.task import Task, TaskStatus, TaskType

_DEPLOYING = {
    TaskStatus.pending: "pending",
    TaskStatus.assigned: "pending",
    TaskStatus.running: "starting",
    TaskStatus.completed: "running",
    TaskStatus.failed: "failed",
    TaskStatus.cancelled: "not started",
}
_REMOVING = {
    TaskStatus.pending: "to remove",
    TaskStatus.assigned: "to remove",
    TaskStatus.running: "removing",
    TaskStatus.completed: "removed",
    TaskStatus.failed: "removal failed",
    TaskStatus.cancelled: "kept",
}
_CREATES = (TaskType.deploy, TaskType.replace, TaskType.start, TaskType.restart)
_REMOVES = (TaskType.delete, TaskType.stop)


@dataclass
class ContainerRow:
    name: str  # the instance name in the stack
    host: str
    docker_name: str
    image: str = ""
    status: str = "running"
    container_id: str = ""
    error: str | None = None


@dataclass
class TaskRow:
    id: str
    task_type: str
    status: str
    host: str
    description: str
    error: str | None
    current: bool  # part of the stack's current run


@dataclass
class StackView:
    """One stack as its page shows it."""

    id: str
    status: str
    phase: str
    progress: int
    error: str | None
    hosts: list[str]
    updated_at: str
    created_at: str
    run_id: str | None
    active: bool
    containers: list[ContainerRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)  # "no live agent for vm2, last seen 45 s ago"


@dataclass
class StackRow:
    """One line of the stacks list."""

    id: str
    status: str
    phase: str
    progress: int
    hosts: list[str]
    containers: int
    updated_at: str
    error: str | None


def stack_row(record: StackRecord) -> StackRow:
    return StackRow(
        id=record.id,
        status=record.status.value,
        phase=record.phase,
        progress=record.progress,
        hosts=list(record.hosts),
        containers=len(record.placements),
        updated_at=record.updated_at,
        error=record.error,
    )


def stack_view(record: StackRecord, tasks: list[Task], *, active: bool, stats: dict[str, int]) -> StackView:
    view = StackView(
        id=record.id,
        status=record.status.value,
        phase=record.phase,
        progress=record.progress,
        error=record.error,
        hosts=list(record.hosts),
        updated_at=record.updated_at,
        created_at=record.created_at,
        run_id=record.run_id,
        active=active,
        stats=stats,
    )
    view.containers = containers(record, tasks)
    view.tasks = [
        TaskRow(
            id=t.id,
            task_type=t.task_type.value,
            status=t.status.value,
            host=t.host_id,
            description=t.description,
            error=t.error,
            current=t.run_id == record.run_id,
        )
        for t in tasks
    ]
    return view


def containers(record: StackRecord, tasks: list[Task]) -> list[ContainerRow]:
    """Every container of the stack: where the record places it, then what its latest task did."""
    rows: dict[str, ContainerRow] = {}
    for instance, placed in record.placements.items():
        docker_name = str(placed.get("dockerName") or f"{record.id}-{instance}")
        rows[docker_name] = ContainerRow(
            name=instance,
            host=str(placed.get("hostId", "")),
            docker_name=docker_name,
            container_id=str(placed.get("containerId") or "")[:12],
        )
    for task in tasks:  # creation order: the latest task of a container decides its status
        _apply_task(rows, record.id, task)
    return sorted(rows.values(), key=lambda r: (r.name, r.host))


def _apply_task(rows: dict[str, ContainerRow], stack_id: str, task: Task) -> None:
    if task.task_type in (TaskType.deploy, TaskType.replace):
        desired = created_container(task)
        if desired is None:
            return
        row = rows.setdefault(
            desired.docker_name,
            ContainerRow(name=desired.name, host=desired.host, docker_name=desired.docker_name),
        )
        row.host, row.image = desired.host, desired.spec.image
        row.status = _DEPLOYING[task.status]
    elif task.task_type in _CREATES or task.task_type in _REMOVES:
        docker_name = _docker_name(task.payload)
        row_or_none = rows.get(docker_name) if docker_name else None
        if row_or_none is None:
            return
        row = row_or_none
        row.status = (_REMOVING if task.task_type in _REMOVES else _DEPLOYING)[task.status]
    else:
        return
    row.error = task.error if task.status is TaskStatus.failed else None
    result_id = (task.result or {}).get("containerId")
    if isinstance(result_id, str) and result_id:
        row.container_id = result_id[:12]


def _docker_name(payload: dict[str, Any]) -> str | None:
    """Only the Docker name is read from these payloads (they hold no environment)."""
    value = payload.get("dockerName")
    return value if isinstance(value, str) else None


__all__ = ["ContainerRow", "StackRow", "StackView", "TaskRow", "containers", "stack_row", "stack_view"]
