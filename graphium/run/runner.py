"""Walks a plan's task DAG with bounded parallelism and records every outcome in the store.

A task starts once every task it depends on has completed (deploy tasks complete only when their
container runs and, if it declares a health check, is healthy), so ``dependsOn`` is honoured
across hosts. On the first failure no new task starts; tasks in flight finish; tasks never started
are cancelled with the reason. Every task ends in a terminal status in the store, so a later run
sees exactly what happened and converges. :meth:`Runner.drain` (the first Ctrl-C) stops the run the
same way: nothing new starts, what is in flight finishes or rolls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphium.errors import ExecutionError, GraphiumError, TransitionError
from graphium.executors.base import Executor
from graphium.records.task import Task, TaskStatus
from graphium.run import rollouts
from graphium.run.commits import GroupCommit
from graphium.run.defaults import DEFAULT_PARALLELISM, DEFAULT_PER_HOST
from graphium.run.events import EventBus, EventType, task_event
from graphium.run.lifecycle import failure_lines
from graphium.stack.models import Connection, Host
from graphium.store.base import TaskStore

# an agent-run task may wait in the queue and be retried after a lost lease before it ends
AGENT_QUEUE_GRACE = 300.0


@dataclass
class RunResult:
    """What happened to every task of one run."""

    tasks: dict[str, Task]
    duration: float
    failed: list[Task] = field(default_factory=list)
    cancelled: list[Task] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what failures did to rolling updates
    interrupted: bool = False  # drained (SIGINT/SIGTERM): the cancelled tasks are what is left

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled and not self.interrupted

    def failures_by_host(self) -> dict[str, list[Task]]:
        out: dict[str, list[Task]] = {}
        for task in self.failed:
            out.setdefault(task.host_id, []).append(task)
        return out


class Runner:
    """Executes tasks already stored (status pending) through an executor."""

    def __init__(
        self,
        store: TaskStore,
        executor: Executor,
        hosts: Mapping[str, Host],
        *,
        events: EventBus | None = None,
        parallelism: int | None = DEFAULT_PARALLELISM,
        per_host: int = DEFAULT_PER_HOST,
        on_tasks_end: Callable[[list[Task]], None] | None = None,
    ) -> None:
        """``per_host``: tasks at once on one host; ``parallelism``: tasks at once in all (None: no
        cap but the hosts' own, so the work at once grows with the hosts); ``on_tasks_end``: called
        with tasks that ended, inside the store batch that records them (several at a time: task
        starts and ends close together share one batch, see :mod:`.commits`)."""
        if (parallelism is not None and parallelism < 1) or per_host < 1:
            raise ValueError("parallelism must be at least 1")
        self._store = store
        self._executor = executor
        self._hosts = hosts
        self._events = events or EventBus(None)
        self._global = asyncio.Semaphore(parallelism) if parallelism is not None else None
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._per_host_limit = per_host
        self._on_tasks_end = on_tasks_end
        self._writes = GroupCommit(store, after=self._batch_written)
        self._draining = False

    def drain(self) -> None:
        """Start no further task: those in flight finish (or roll back), the rest are cancelled as
        left by an interrupt. Safe to call from a signal handler on the loop, at any time."""
        self._draining = True

    @property
    def draining(self) -> bool:
        return self._draining

    async def run(self, tasks: list[Task]) -> RunResult:
        started = time.monotonic()
        by_id = {t.id: t for t in tasks}
        final: dict[str, Task] = {}
        for task in tasks:  # resuming: what already ended stays as it ended
            if task.terminal:
                final[task.id] = task
        failure: list[Task] = [t for t in final.values() if t.status is not TaskStatus.completed]
        waiting = {t.id for t in tasks if t.id not in final}
        in_flight: dict[asyncio.Task[Task], str] = {}

        def ready(task: Task) -> bool:
            for dep in task.depends_on:
                if dep in by_id and (dep not in final or not rollouts.passes(final[dep])):
                    return False
            return True

        while waiting or in_flight:
            # a rollout may continue past a failure; a drain starts nothing new
            if not self._draining and all(rollouts.passes(t) for t in failure):
                runnable = sorted(
                    (by_id[i] for i in waiting if ready(by_id[i])), key=lambda t: (-t.priority, t.id)
                )
                for task in runnable:
                    waiting.discard(task.id)
                    in_flight[asyncio.create_task(self._run_one(task))] = task.id
            if not in_flight:
                break  # nothing runs and nothing can start: a failure or a drain blocks the rest
            done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                in_flight.pop(fut)
                ended = fut.result()
                final[ended.id] = ended
                if ended.status is not TaskStatus.completed:
                    failure.append(ended)

        unstarted = [by_id[i] for i in sorted(waiting)]
        cancelled = self._cancel_unstarted(unstarted, failure, by_id, interrupted=self._draining)
        final.update({t.id: t for t in cancelled})
        return RunResult(
            tasks=final,
            duration=time.monotonic() - started,
            failed=[t for t in failure if t.status is TaskStatus.failed],
            cancelled=cancelled,
            interrupted=self._draining,
        )

    async def _run_one(self, task: Task) -> Task:
        host = self._hosts.get(task.host_id)
        per_host = self._per_host.setdefault(task.host_id, asyncio.Semaphore(self._per_host_limit))
        async with self._global or contextlib.nullcontext(), per_host:
            if host is None:
                return await self._finish(task, error=f"host {task.host_id} is not in the inventory")
            reports_itself = host.connection is Connection.agent
            if not reports_itself:
                task = await self._writes.write(lambda: self._started(task))
            try:
                result = await asyncio.wait_for(self._executor.run(task, host), task.timeout_seconds)
            except TimeoutError:
                return await self._finish(
                    task, error=f"timed out after {task.timeout_seconds:g} s", store=not reports_itself
                )
            except GraphiumError as exc:
                return await self._finish(task, error=str(exc), store=not reports_itself)
            except Exception as exc:  # an executor bug must not leave the task running forever
                return await self._finish(
                    task, error=f"unexpected {type(exc).__name__}: {exc}", store=not reports_itself
                )
            if reports_itself:
                ended = self._store.get_task(task.id)
                if self._on_tasks_end is not None:
                    self._on_tasks_end([ended])
                return ended
            return await self._finish(task, result=result)

    def _started(self, task: Task) -> Task:
        started = self._store.transition(task.id, TaskStatus.running)
        self._events.emit(task_event(EventType.task_updated, started))
        return started

    async def _finish(
        self,
        task: Task,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        store: bool = True,
    ) -> Task:
        if not store:  # an agent reported it; re-read what the store holds
            current = self._store.get_task(task.id)
            if current.terminal:
                return current
        return await self._writes.write(lambda: self._ended(task, result, error))

    def _ended(self, task: Task, result: dict[str, Any] | None, error: str | None) -> Task:
        status = TaskStatus.failed if error is not None else TaskStatus.completed
        if self._store.get_task(task.id).status is TaskStatus.pending:
            self._store.transition(task.id, TaskStatus.running)
        ended = self._store.transition(task.id, status, result=result, error=error)
        self._events.emit(task_event(EventType.task_updated, ended))
        return ended

    def _batch_written(self, outcomes: list[Any]) -> None:
        """Once per group commit, inside its batch: the tasks that ended in it, to the callback."""
        ended = [t for t in outcomes if isinstance(t, Task) and t.terminal]
        if ended and self._on_tasks_end is not None:
            self._on_tasks_end(ended)

    def _cancel_unstarted(
        self, tasks: list[Task], failure: list[Task], by_id: dict[str, Task], *, interrupted: bool
    ) -> list[Task]:
        """Cancel what a failure (or an interrupt) kept from starting, each naming the failed task
        it waited for (its own dependency where it has one, else the failure that stopped the run)."""
        out = []
        with self._store.batch():
            for task in tasks:
                reason = _not_started(task, failure, by_id)
                if interrupted and not failure:
                    reason = "not started: the run was interrupted; apply again to finish"
                try:
                    ended = self._store.transition(task.id, TaskStatus.cancelled, error=reason)
                except TransitionError:
                    continue  # an agent took it at this very moment; it reports its own outcome
                self._events.emit(task_event(EventType.task_updated, ended))
                out.append(ended)
        return out


def _not_started(task: Task, failure: list[Task], by_id: dict[str, Task]) -> str:
    failed = {t.id: t for t in failure}
    seen: set[str] = set()
    todo = list(task.depends_on)
    while todo:  # the first failed task among its (transitive) dependencies
        dep = todo.pop(0)
        if dep in failed:
            cause = failed[dep]
            what = cause.description or cause.task_type.value
            return (
                f"not started: it needs task {cause.id} ({what}) on {cause.host_id}, which did not complete"
            )
        if dep not in seen and dep in by_id:
            seen.add(dep)
            todo += by_id[dep].depends_on
    if not failure:
        return "not started: its dependencies did not complete"
    first = failure[0]
    return (
        f"not started: task {first.id} ({first.description or first.task_type.value}) "
        f"on {first.host_id} did not complete"
    )


def raise_for_result(result: RunResult) -> None:
    """Turn a failed run into an ExecutionError whose message lists every failure by host."""
    if result.ok:
        return
    lines = (failure_lines(result.tasks.values()) or ["failed"]) + result.notes
    raise ExecutionError("apply failed:\n" + "\n".join(f"  {line}" for line in lines))
