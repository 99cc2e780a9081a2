"""The task-store interface that every backend implements (JSON file today, others later).

Stores hold four kinds of record: stacks (deployment state), stack versions (what each
successful apply applied), tasks and events. Every method is a
complete, durable operation: when it returns, the change survives a crash. ``batch()`` groups
several operations into one durable write. ``on_commit`` hooks run after each durable write, so
whoever they tell (live event subscribers, waiting long-polls) never learns of a change that a
crash could still undo.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, Self

from graphium.plan.model import ObservedHost
from graphium.records.agent import AgentRecord
from graphium.records.event import Event
from graphium.records.stack import StackRecord
from graphium.records.task import Task, TaskStatus
from graphium.records.version import StackVersion

# called after a durable commit with the events committed in it (possibly none)
CommitHook = Callable[[list[Event]], None]


class TaskStore(Protocol):
    """Create, claim, transition, list and count tasks; keep stacks and events. Process-safe."""

    # lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release the store's files or connections; the object is unusable afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    # stacks -------------------------------------------------------------------------------
    def get_stack(self, stack_id: str) -> StackRecord | None: ...

    def list_stacks(self) -> list[StackRecord]: ...

    def save_stack(self, record: StackRecord, *, expected_revision: int | None = None) -> StackRecord:
        """Insert or update; enforces stack status transitions; bumps ``revision``.

        With ``expected_revision``, raises StoreError if the stored revision differs (optimistic lock).
        """
        ...

    def delete_stack(self, stack_id: str) -> None:
        """Remove the stack record and its tasks (the finalisation of a completed destroy)."""
        ...

    # stack versions -----------------------------------------------------------------------
    def save_version(self, version: StackVersion) -> StackVersion:
        """Record a stack version: numbered one past the stack's newest (from 1), stamped now
        unless it carries ``appliedAt``; only the newest ``KEEP_VERSIONS`` of a stack are kept.
        Versions outlive the stack record (a destroyed stack can be rolled back). Returns it as
        stored."""
        ...

    def list_versions(self, stack_id: str) -> list[StackVersion]:
        """The stack's kept versions, oldest first (empty for an unknown stack)."""
        ...

    # tasks --------------------------------------------------------------------------------
    def create_tasks(self, tasks: list[Task]) -> None:
        """Insert tasks (ids must be new) in one durable write."""
        ...

    def get_task(self, task_id: str) -> Task: ...

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        stack_id: str | None = None,
        host_id: str | None = None,
        run_id: str | None = None,
    ) -> list[Task]:
        """Matching tasks in creation order; ``run_id`` selects one run's tasks."""
        ...

    def assign_run(self, task_ids: list[str], run_id: str) -> list[Task]:
        """Stamp existing tasks as the run's (a re-run of a plan resuming its stored tasks), in one
        durable write; returns them as stored. NotFoundError for an unknown id."""
        ...

    def transition(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        agent_id: str | None = None,
        expected: TaskStatus | None = None,
    ) -> Task:
        """Change a task's status (enforced), stamping the matching timestamp; returns the new record."""
        ...

    def claim(self, host_id: str, agent_id: str, lease_seconds: float) -> Task | None:
        """Atomically take the best runnable task for ``host_id``.

        Runnable: pending, every ``dependsOn`` completed. Best: highest priority, then oldest.
        The task becomes ``assigned`` to ``agent_id`` with a lease; None when nothing is runnable.
        """
        ...

    def claim_many(
        self, host_id: str, agent_id: str, lease_seconds: float, limit: int, *, start: bool = False
    ) -> list[Task]:
        """Atomically take up to ``limit`` runnable tasks, best first, in one durable write.

        Same rules as :meth:`claim`; a task whose dependency is taken in the same call is not
        runnable yet. With ``start`` the tasks become ``running`` (``startedAt`` stamped) instead
        of ``assigned``, which saves the agent a status report per task. Empty when nothing is.
        """
        ...

    def heartbeat(self, task_id: str, agent_id: str, lease_seconds: float) -> Task:
        """Extend the lease of a task the agent holds (StoreError if it no longer holds it)."""
        ...

    def requeue_expired(self, now: str | None = None) -> list[Task]:
        """Return tasks whose lease expired to pending (retryCount+1), or fail them past maxRetries."""
        ...

    def stats(self, *, stack_id: str | None = None) -> dict[str, int]:
        """``{"total": n, "pending": n, ...}`` over every status."""
        ...

    # events -------------------------------------------------------------------------------
    def append_events(self, events: list[Event]) -> list[Event]:
        """Store events, assigning ``seq`` and ``time``; returns them as stored. Seq order is
        commit order (a reader paging with ``list_events(after=...)`` never skips one). Inside a
        batch a store may number the events only when the batch commits: the events returned
        then get their ``seq`` at the commit (0 until), and are the ones the commit hooks get."""
        ...

    def list_events(
        self, *, after: int = 0, stack_id: str | None = None, limit: int = 1000
    ) -> list[Event]: ...

    # agents' observations -----------------------------------------------------------------
    def save_observation(self, observed: ObservedHost) -> None:
        """Keep an agent's latest report of its host (replacing the previous one), stamped now."""
        ...

    def get_observation(self, host_id: str) -> tuple[ObservedHost, str] | None:
        """The host's latest agent report and when it was stored (ISO 8601 UTC), or None."""
        ...

    # agents ---------------------------------------------------------------------------------
    def save_agents(self, agents: list[AgentRecord]) -> None:
        """Keep each agent's record (replacing its previous one), in one durable write."""
        ...

    def list_agents(self, *, host_id: str | None = None) -> list[AgentRecord]:
        """The agents' records, of one host or all, ordered by host then agent id."""
        ...

    def forget_agents(self, agent_ids: list[str]) -> None:
        """Drop these agents' records (unknown ids are ignored)."""
        ...

    # grouping -----------------------------------------------------------------------------
    def batch(self) -> AbstractContextManager[None]:
        """Group the operations inside into one lock hold and one durable write."""
        ...

    def on_commit(self, hook: CommitHook) -> Callable[[], None]:
        """Call ``hook(events)`` after each durable commit made through this store object (the
        outermost batch's exit, or a single operation), with the events committed in it, in the
        committing thread; returns a function that removes the hook. Not called for writes made
        by other processes. A hook that raises is logged; the commit stands."""
        ...


__all__ = ["CommitHook", "TaskStore"]
