"""Task records: the unit of work every executor runs and every store keeps.

The field names keep the original design's vocabulary (``taskType``, ``hostId``, ``dependsOn``…)
so that its task API stays familiar. Status changes go through :func:`check_transition`, the one
place that knows the lifecycle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from graphium.errors import TransitionError
from graphium.stack.masking import MaskedRepr


class TaskType(str, Enum):
    deploy = "deploy"  # pull if needed, create and start a container
    replace = "replace"  # type: ignore[assignment]  # swap a container, rolling back if the new one fails
    delete = "delete"  # stop and remove a container; one already gone counts as removed
    start = "start"  # start a stopped container (drift)
    stop = "stop"
    restart = "restart"
    restore = "restore"  # undo a replace of a rolling update: give the kept old container back
    ensure_network = "ensure-network"  # create the stack's bridge network on a host if missing
    remove_network = "remove-network"  # remove it once the stack has left the host
    ensure_volume = "ensure-volume"  # create a stack-owned named volume on a host if missing
    remove_volume = "remove-volume"  # remove it (only ``destroy --volumes`` plans this)


class TaskStatus(str, Enum):
    pending = "pending"
    assigned = "assigned"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = frozenset({TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled})

_ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.pending: frozenset({TaskStatus.assigned, TaskStatus.running, TaskStatus.cancelled}),
    # assigned/running may fall back to pending when a lease expires or an agent gives a task back
    TaskStatus.assigned: frozenset(
        {TaskStatus.running, TaskStatus.pending, TaskStatus.failed, TaskStatus.cancelled}
    ),
    TaskStatus.running: frozenset(
        {TaskStatus.completed, TaskStatus.failed, TaskStatus.pending, TaskStatus.cancelled}
    ),
    TaskStatus.completed: frozenset(),
    # a failed or cancelled task may be retried explicitly
    TaskStatus.failed: frozenset({TaskStatus.pending}),
    TaskStatus.cancelled: frozenset({TaskStatus.pending}),
}


def check_transition(task_id: str, current: TaskStatus, new: TaskStatus) -> None:
    """Raise :class:`TransitionError` unless ``current -> new`` is a legal task status change."""
    if new not in _ALLOWED[current]:
        raise TransitionError(f"task {task_id}: cannot go from {current.value} to {new.value}")


def utcnow() -> str:
    """Timestamps are ISO 8601 UTC strings: sortable, and JSON as they are."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Task(MaskedRepr, BaseModel):
    """One task record, serialised with camelCase keys as in the original task API."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    id: str
    task_type: TaskType
    status: TaskStatus = TaskStatus.pending
    host_id: str
    agent_id: str | None = None
    stack_id: str | None = None
    run_id: str | None = None  # the run that created (or resumed) it; a stack record names its current one
    priority: int = 5
    payload: dict[str, Any] = {}
    depends_on: list[str] = []
    date_created: str = Field(default_factory=utcnow)
    assigned_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    lease_expires_at: str | None = None
    not_before: str | None = None  # retry backoff: not claimable before this time
    error: str | None = None
    result: dict[str, Any] | None = None
    retry_count: int = 0
    max_retries: int = 2  # re-runs after a lost lease (an agent died); task execution is idempotent
    timeout_seconds: float = 300.0
    description: str = ""

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def passes(self) -> bool:
        """Whether the tasks depending on this one may start: it completed, or it failed as a step
        of a rolling update whose ``failureAction`` is ``continue`` (:mod:`graphium.run.rollouts`)."""
        if self.status is TaskStatus.completed:
            return True
        if self.status is not TaskStatus.failed or self.task_type is not TaskType.replace:
            return False
        step = self.payload.get("rollout")
        return isinstance(step, dict) and step.get("failureAction") == "continue"
