"""Stack records: a stack's deployment state and the lifecycle it moves through.

The planner reads the record (placements, the spec it last applied, its revision) to diff against;
the stack lifecycle writes it back from task results.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from graphium.errors import TransitionError
from graphium.stack.masking import MaskedRepr


class StackStatus(str, Enum):
    deploying = "deploying"
    running = "running"
    error = "error"
    deleting = "deleting"


_STACK_ALLOWED: dict[StackStatus | None, frozenset[StackStatus]] = {
    None: frozenset({StackStatus.deploying, StackStatus.deleting}),
    StackStatus.deploying: frozenset(
        {StackStatus.running, StackStatus.error, StackStatus.deploying, StackStatus.deleting}
    ),
    StackStatus.running: frozenset({StackStatus.running, StackStatus.deploying, StackStatus.deleting}),
    StackStatus.error: frozenset({StackStatus.error, StackStatus.deploying, StackStatus.deleting}),
    # a destroy whose process died leaves ``deleting``: a later apply may deploy the stack again
    StackStatus.deleting: frozenset({StackStatus.error, StackStatus.deleting, StackStatus.deploying}),
}


def check_stack_transition(stack_id: str, current: StackStatus | None, new: StackStatus) -> None:
    """Raise :class:`TransitionError` unless the stack may move from ``current`` to ``new``."""
    if new not in _STACK_ALLOWED[current]:
        was = current.value if current else "absent"
        raise TransitionError(f"stack {stack_id}: cannot go from {was} to {new.value}")


class StackRecord(MaskedRepr, BaseModel):
    """A stack's deployment state, written back from task results."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    id: str  # the stack name
    name: str
    status: StackStatus
    phase: str = ""
    progress: int = 0  # percent of the current run's tasks that ended
    placements: dict[str, dict[str, Any]] = {}  # instance -> {hostId, containerId, dockerName}
    # the resolved StackSpec dump; left out of repr, since it holds resolved values, secrets included
    spec: dict[str, Any] = Field(default={}, repr=False)
    hosts: list[str] = []  # hosts the stack has containers or networks on
    error: str | None = None
    run_id: str | None = None  # the current run: its tasks carry the same runId
    revision: int = 0  # bumped on every change; part of a plan's fingerprint
    # a process running this stack's tasks holds this lease; a server's task monitor leaves the
    # stack to it until the lease expires (the process died) and settles it otherwise
    runner_lease_until: str | None = None
    # who holds that lease (graphium.executors.owner): a dead holder on this machine is taken over
    runner_owner: str | None = None
    created_at: str = ""
    updated_at: str = ""

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def public_dump(self) -> dict[str, Any]:
        """The record for people and API clients: without ``spec``, which holds resolved
        environment values, secrets included."""
        return self.model_dump(mode="json", by_alias=True, exclude={"spec"})
