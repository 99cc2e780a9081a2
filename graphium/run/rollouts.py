"""Running rolling updates: what a failing batch does to the rest of its rollout.

The planner batched each rollout's replace tasks (:mod:`graphium.plan.rollout`); the runner walks
them like any tasks, and a failed replace has already put its own old container back. What the
failure means for the rest of the rollout is its ``failureAction``:

- ``pause``: nothing new starts (the runner's rule for any failure); the batches already replaced
  keep the new version, the rest the old one; the stack ends in error and a re-apply resumes.
- ``continue``: the failed task does not hold back the batches after it (:func:`passes`); the run
  still ends failed, naming the replicas that kept the old version.
- ``rollback``: once the runner is done, :func:`run` gives every replica the rollout already
  replaced its old container back (a ``restore`` task per replica, which the planner made
  possible by keeping the old containers aside), so the whole service runs the old version.

Each rollout that met a failure gets one line in :attr:`RunResult.notes` saying what happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import ValidationError as PydanticValidationError

from graphium.plan.hashing import digest
from graphium.plan.payloads import ReplacePayload, RestorePayload, RolloutStep
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.run.events import EventBus, EventType, task_event
from graphium.stack.secrets import secret_values
from graphium.store.base import TaskStore

if TYPE_CHECKING:
    from graphium.run.runner import Runner, RunResult

__all__ = ["passes", "run", "step_of"]

RESTORE_TIMEOUT = 120.0


def step_of(task: Task) -> RolloutStep | None:
    """The rollout step a replace task carries out, if it is part of a rolling update."""
    raw = task.payload.get("rollout") if task.task_type is TaskType.replace else None
    if not raw:
        return None
    try:
        return RolloutStep.model_validate(raw)
    except PydanticValidationError:
        return None


def passes(task: Task) -> bool:
    """Whether the dependants of an ended task may start: it completed, or it failed in a rollout
    whose ``failureAction`` is ``continue`` (the store hands agents their tasks by the same rule)."""
    return task.passes


def _rollouts(tasks: Iterable[Task]) -> dict[str, list[tuple[Task, RolloutStep]]]:
    out: dict[str, list[tuple[Task, RolloutStep]]] = {}
    for task in tasks:
        step = step_of(task)
        if step is not None:
            out.setdefault(step.container, []).append((task, step))
    return out


def _instance(task: Task) -> str:
    return f"{ReplacePayload.model_validate(task.payload).container.name} on {task.host_id}"


def _restore_task(task: Task, container: str) -> Task | None:
    """The task that undoes a completed replace which kept its old container, else None."""
    kept = (task.result or {}).get("keptOld")
    if task.status is not TaskStatus.completed or not kept:
        return None
    replaced = ReplacePayload.model_validate(task.payload)
    desired = replaced.container
    payload = RestorePayload(
        name=desired.name,
        docker_name=desired.docker_name,
        old_container_id=str(kept),
        new_container_id=(task.result or {}).get("containerId"),
        stop_timeout=desired.spec.stop_timeout,
        secret_values=replaced.secret_values + sorted(secret_values(desired.spec)),
    )
    return Task(
        id="t-" + digest(f"{task.id}|restore")[:16],
        task_type=TaskType.restore,
        host_id=task.host_id,
        stack_id=task.stack_id,
        run_id=task.run_id,
        payload=payload.dump(),
        timeout_seconds=RESTORE_TIMEOUT + desired.spec.stop_timeout,
        description=f"roll {desired.name} on {task.host_id} back to its previous container "
        f"(the rolling update of {container} failed)",
    )


def _names(tasks: Sequence[Task]) -> str:
    return ", ".join(_instance(t) for t in tasks) or "none"


def _note(container: str, group: Sequence[tuple[Task, RolloutStep]], undone: dict[str, Task]) -> str:
    tasks = [t for t, _ in group]
    failed = [t for t in tasks if t.status is TaskStatus.failed]
    first = min((s.batch for t, s in group if t.status is TaskStatus.failed), default=0)
    action, batches = group[0][1].failure_action, group[0][1].batches
    done = [t for t in tasks if t.status is TaskStatus.completed]
    waiting = [t for t in tasks if t.status is not TaskStatus.completed and t not in failed]
    head = f"rolling update of {container} failed at batch {first} of {batches} ({_names(failed)})"
    if action == "continue":
        return (
            f"{head}; failureAction continue: updated {_names(done)}; "
            f"kept the previous version: {_names(failed)}"
        )
    if action == "pause":
        return (
            f"{head}; failureAction pause: updated {_names(done)}; kept the previous version: "
            f"{_names(failed + waiting)}; apply again to resume the rollout"
        )
    restored = [t for t in undone.values() if t.status is TaskStatus.completed]
    broken = [t for t in undone.values() if t.status is not TaskStatus.completed]
    text = f"{head}; rolled back: every replica runs its previous container again"
    if broken:
        errors = "; ".join(str(t.error) for t in broken)
        text = f"{head}; rolling back {len(broken)} replica(s) failed ({errors}); {len(restored)} restored"
    return text


async def run(runner: Runner, store: TaskStore, events: EventBus, tasks: list[Task]) -> RunResult:
    """Run ``tasks`` with ``runner``, then apply each failed rollout's ``failureAction``."""
    result = await runner.run(tasks)
    groups = {
        name: group
        for name, group in _rollouts(result.tasks.values()).items()
        if any(t.status is TaskStatus.failed for t, _ in group)
    }
    if not groups:
        return result
    restores: dict[str, list[Task]] = {}
    for name, group in groups.items():
        if group[0][1].failure_action == "rollback":
            made = [_restore_task(t, name) for t, _ in group]
            restores[name] = [t for t in made if t is not None]
    todo = [t for ts in restores.values() for t in ts]
    undone: dict[str, Task] = {}
    if todo:
        with store.batch():
            store.create_tasks(todo)
            events.emit(*(task_event(EventType.task_created, t) for t in todo))
        second = await runner.run(todo)
        undone = second.tasks
        result = replace(
            result,
            tasks={**result.tasks, **second.tasks},
            failed=result.failed + second.failed,
            cancelled=result.cancelled + second.cancelled,
            duration=result.duration + second.duration,
        )
    notes = [
        _note(name, group, {t.id: undone[t.id] for t in restores.get(name, []) if t.id in undone})
        for name, group in sorted(groups.items())
    ]
    return replace(result, notes=[*result.notes, *notes])
