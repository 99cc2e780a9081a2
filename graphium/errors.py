"""One error tree for the whole library.

Every failure a user can cause or meet derives from :class:`GraphiumError`, so callers (the CLI
above all) can map errors to exit codes and clean messages in one place. Third-party exceptions
are translated at the adapter that calls the third party.
"""

from __future__ import annotations

from dataclasses import dataclass


class GraphiumError(Exception):
    """Base of every error graphium raises on purpose."""

    exit_code: int = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where it is and what was expected there."""

    file: str
    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 0}"
        return f"{where}: {self.path}: {self.message}"


class ValidationError(GraphiumError):
    """An input file (stack, inventory, plan) is invalid; carries every problem found at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StackError(ValidationError):
    """A stack document is invalid."""


class InventoryError(ValidationError):
    """An inventory is invalid."""


class PlacementError(GraphiumError):
    """No host satisfies a container's constraints."""


class PlanError(GraphiumError):
    """A plan cannot be made or used (for example a saved plan whose state went stale)."""


class StalePlanError(PlanError):
    """The live or stored state changed since the saved plan was computed."""


class ConflictError(PlanError):
    """Something on a host that graphium does not own stands in the plan's way (a container of
    the same name, a published host port, a missing external volume)."""


class StoreError(GraphiumError):
    """The task store refused an operation (unknown record, forbidden transition, corrupt file)."""


class NotFoundError(StoreError):
    """A record does not exist."""


class TransitionError(StoreError):
    """A status change that the task or stack lifecycle does not allow."""


class WaitTimeoutError(GraphiumError):
    """``--timeout`` ran out before the stack settled; its tasks stay queued."""

    exit_code = 4


class ExecutionError(GraphiumError):
    """A task failed on a host."""

    def __init__(self, message: str, *, host: str | None = None, task: str | None = None) -> None:
        self.detail = message  # without the host/task prefix, for re-raising with more context
        self.host = host
        self.task = task
        prefix = ", ".join(p for p in (f"host {host}" if host else "", f"task {task}" if task else "") if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class EngineError(ExecutionError):
    """The Docker engine refused or failed a call."""


class HostUnreachableError(ExecutionError):
    """A host could not be reached (connection refused, timeout, host key mismatch)."""


class HostKeyError(HostUnreachableError):
    """A host's SSH key is unknown or does not match known_hosts."""


class LockedError(PlanError):
    """Another live process (or operator) holds the stack: its runner lease or a host lock."""


class ApplyCancelled(GraphiumError):
    """The operator did not approve the plan at the confirmation prompt; nothing was touched."""


class InterruptedRunError(GraphiumError):
    """A run stopped early on SIGINT/SIGTERM: tasks in flight ended, the rest never started.

    Exit 130, as shells report a process ended by Ctrl-C; the next apply picks up what is left.
    """

    exit_code = 130
