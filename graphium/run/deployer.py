"""The Deployer: plans a stack against live hosts and applies plans, owning the stack while it runs.

Built from a store, an executor and an inventory; the CLI, the server and the blocking shortcuts
for scripts (:mod:`graphium.shortcuts`) all drive stacks through it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from graphium.errors import NotFoundError, PlanError, StalePlanError
from graphium.executors.base import Executor
from graphium.plan import planner
from graphium.plan.model import ActionKind, Plan
from graphium.plan.payloads import DeployPayload, ReplacePayload
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import Task, TaskStatus, TaskType, utcnow
from graphium.run.events import EventBus, EventType, stack_event, task_event
from graphium.run.runner import DEFAULT_PARALLELISM, DEFAULT_PER_HOST, Runner, RunResult
from graphium.stack.loader import StackDocument, check_hosts
from graphium.stack.models import Connection, Inventory
from graphium.stack.variables import resolve_variables
from graphium.store.base import TaskStore

RUNNER_LEASE_SECONDS = 60.0


class Deployer:
    """Plans and applies stacks against one inventory, one store and one executor."""

    def __init__(
        self,
        store: TaskStore,
        executor: Executor,
        inventory: Inventory,
        *,
        events: EventBus | None = None,
        parallelism: int = DEFAULT_PARALLELISM,
        per_host: int = DEFAULT_PER_HOST,
    ) -> None:
        self.store = store
        self.executor = executor
        self.inventory = inventory
        self.events = events or EventBus(store)
        self.parallelism = parallelism
        self.per_host = per_host

    # planning -----------------------------------------------------------------------------
    async def plan(self, doc: StackDocument, environ: Mapping[str, str] | None = None) -> Plan:
        """Desired state (``${VAR}`` filled from ``environ``) against what the hosts run now."""
        check_hosts(doc, self.inventory)
        environ = os.environ if environ is None else environ
        spec = resolve_variables(doc.stack, environ, str(doc.path), path_of=doc.path_of)
        observed = await self.executor.observe(self.inventory.hosts, spec.name)
        result = planner.plan_apply(spec, self.inventory, observed, self.store.get_stack(spec.name))
        result.inventory = self.inventory.dump()
        return result

    async def plan_destroy(self, stack_name: str) -> Plan:
        observed = await self.executor.observe(self.inventory.hosts, stack_name)
        result = planner.plan_destroy(stack_name, observed, self.store.get_stack(stack_name))
        result.inventory = self.inventory.dump()
        return result

    async def check_fresh(self, plan: Plan) -> None:
        """Refuse a saved plan if the hosts or the store changed since it was computed."""
        hosts = [h for h in self.inventory.hosts if h.id in set(plan.hosts)]
        missing = sorted(set(plan.hosts) - {h.id for h in hosts})
        if missing:
            raise StalePlanError(f"the plan uses hosts no longer in the inventory: {', '.join(missing)}")
        observed = await self.executor.observe(hosts, plan.stack)
        now = planner.fingerprint(plan.stack, observed, self.store.get_stack(plan.stack))
        if now != plan.fingerprint:
            raise StalePlanError(
                f"the saved plan for stack {plan.stack} is stale: containers on its hosts or its stored "
                "state changed since it was made; run plan again"
            )

    # applying -----------------------------------------------------------------------------
    async def apply(self, plan: Plan, *, verify_fresh: bool = False, wait: bool = True) -> RunResult:
        """Run a plan; the stack ends ``running`` (or, for a destroy, its records are removed).

        ``wait=False`` only enqueues (every task must be an agent host's): the agents run the tasks
        and the server's task monitor settles the stack.
        """
        if verify_fresh:
            await self.check_fresh(plan)
        stored = self.store.get_stack(plan.stack)
        if not wait:
            return self._enqueue_only(plan, stored)
        if plan.destroy:
            return await self._run_destroy(plan, stored)
        return await self._run_deploy(plan, stored)

    def _enqueue_only(self, plan: Plan, stored: StackRecord | None) -> RunResult:
        hosts = self.inventory.by_id()
        direct = sorted(
            {
                t.host_id
                for t in plan.tasks
                if t.host_id not in hosts or hosts[t.host_id].connection is not Connection.agent
            }
        )
        if direct:
            raise PlanError(
                f"cannot return before the work is done: hosts {', '.join(direct)} are not agent hosts, "
                "so this process must run their tasks; apply without --no-wait"
            )
        if not plan.tasks:
            return RunResult(tasks={}, duration=0.0)
        status, kind = (
            (StackStatus.deleting, EventType.stack_deleting)
            if plan.destroy
            else (StackStatus.deploying, EventType.stack_deploying)
        )
        now = utcnow()
        record = (
            stored or StackRecord(id=plan.stack, name=plan.stack, status=status, created_at=now)
        ).model_copy(
            update={"status": status, "phase": "waiting-for-agents", "progress": 0, "updated_at": now}
        )
        if not plan.destroy:
            record = record.model_copy(update={"spec": plan.stack_spec})
        self._begin(plan, record, kind, lease=False)
        return RunResult(tasks={t.id: t for t in plan.tasks}, duration=0.0)

    async def _run_deploy(self, plan: Plan, stored: StackRecord | None) -> RunResult:
        now = utcnow()
        record = StackRecord(
            id=plan.stack,
            name=plan.stack,
            status=StackStatus.deploying,
            phase="applying",
            progress=0,
            placements=stored.placements if stored else {},
            spec=plan.stack_spec,
            hosts=sorted(set(stored.hosts if stored else []) | set(plan.placements.values())),
            created_at=stored.created_at if stored else now,
            updated_at=now,
            revision=stored.revision if stored else 0,
        )
        if not plan.tasks and stored is not None and stored.status is StackStatus.running:
            return RunResult(tasks={}, duration=0.0)  # nothing to do, nothing to write
        record = self._begin(plan, record, EventType.stack_deploying, lease=True)
        result = await self._run_owned(plan, record)
        record = self.store.get_stack(plan.stack) or record
        placements = _placements(plan, record, result)
        ok = result.ok
        with self.store.batch():
            record = record.model_copy(
                update={
                    "status": StackStatus.running if ok else StackStatus.error,
                    "phase": "running" if ok else "failed",
                    "progress": 100 if ok else record.progress,
                    "placements": placements,
                    "hosts": sorted(
                        {p["hostId"] for p in placements.values()} | _network_hosts(plan, result)
                    ),
                    "error": None if ok else _failure_summary(result),
                    "updated_at": utcnow(),
                    "runner_lease_until": None,
                }
            )
            self.store.save_stack(record)
            kind = EventType.stack_running if ok else EventType.stack_failed
            self.events.emit(stack_event(kind, plan.stack, error=record.error))
        return result

    async def _run_destroy(self, plan: Plan, stored: StackRecord | None) -> RunResult:
        if stored is None and not plan.tasks:
            return RunResult(tasks={}, duration=0.0)
        record = stored or StackRecord(
            id=plan.stack, name=plan.stack, status=StackStatus.deleting, created_at=utcnow()
        )
        deleting = record.model_copy(
            update={"status": StackStatus.deleting, "phase": "deleting", "progress": 0}
        )
        record = self._begin(plan, deleting, EventType.stack_deleting, lease=True)
        result = await self._run_owned(plan, record)
        with self.store.batch():
            if result.ok:
                if self.store.get_stack(plan.stack) is not None:  # a server's monitor may have settled it
                    self.store.delete_stack(plan.stack)
                    self.events.emit(stack_event(EventType.stack_deleted, plan.stack))
            else:
                current = self.store.get_stack(plan.stack) or record
                self.store.save_stack(
                    current.model_copy(
                        update={
                            "status": StackStatus.error,
                            "phase": "delete-failed",
                            "error": _failure_summary(result),
                            "updated_at": utcnow(),
                            "runner_lease_until": None,
                        }
                    )
                )
                self.events.emit(
                    stack_event(EventType.stack_failed, plan.stack, error=_failure_summary(result))
                )
        return result

    async def _run_owned(self, plan: Plan, record: StackRecord) -> RunResult:
        """Run the plan's tasks while renewing the stack's runner lease, so that a server's task
        monitor sharing this store leaves the stack to this process while it is alive."""
        done = asyncio.Event()

        async def renew() -> None:
            while not done.is_set():
                try:
                    await asyncio.wait_for(done.wait(), RUNNER_LEASE_SECONDS / 3)
                except TimeoutError:
                    current = self.store.get_stack(plan.stack)
                    if current is not None:
                        self.store.save_stack(current.model_copy(update={"runner_lease_until": _lease_end()}))

        renewer = asyncio.create_task(renew())
        try:
            return await self._runner(plan, record).run(plan.tasks)
        except asyncio.CancelledError:  # interrupted, or stopped by a server: free the stack at once
            current = self.store.get_stack(plan.stack)
            if current is not None:
                self.store.save_stack(current.model_copy(update={"runner_lease_until": None}))
            raise
        finally:
            done.set()
            await renewer

    def _begin(self, plan: Plan, record: StackRecord, kind: EventType, *, lease: bool) -> StackRecord:
        """Start a run, atomically (one store batch, under its lock): refuse a stack that another
        live process is running, settle what an earlier run left unfinished, save the record, say
        so, and store the tasks."""
        with self.store.batch():
            current = self.store.get_stack(plan.stack)
            if current is not None and _lease_live(current):
                raise PlanError(
                    f"stack {plan.stack} is being applied by another process; wait for it to finish "
                    f"(if that process died, its lease expires at {current.runner_lease_until}), then "
                    "plan again"
                )
            self._supersede(plan)
            saved = self.store.save_stack(
                record.model_copy(update={"runner_lease_until": _lease_end() if lease else None})
            )
            self.events.emit(stack_event(kind, plan.stack, totalTasks=len(plan.tasks)))
            self._enqueue(plan)
        return saved

    def _supersede(self, plan: Plan) -> None:
        """Tasks of the stack's earlier runs that will never finish: pending ones are cancelled (no
        agent may pick up stale work); ones a direct executor was running when its process died
        are failed. An agent's task in flight is left to finish and report."""
        hosts = self.inventory.by_id()
        current = {t.id for t in plan.tasks}
        for task in self.store.list_tasks(stack_id=plan.stack):
            if task.terminal or task.id in current:
                continue
            if task.status is TaskStatus.pending:
                ended = self.store.transition(
                    task.id, TaskStatus.cancelled, error="superseded by a newer run"
                )
            elif task.host_id in hosts and hosts[task.host_id].connection is Connection.agent:
                continue
            else:
                ended = self.store.transition(
                    task.id, TaskStatus.failed, error="abandoned: the process running it stopped"
                )
            self.events.emit(task_event(EventType.task_updated, ended))

    def _enqueue(self, plan: Plan) -> None:
        """Store the plan's tasks (a re-run of the same plan resumes the ones already stored)."""
        new = []
        for task in plan.tasks:
            try:
                self.store.get_task(task.id)
            except NotFoundError:
                new.append(task.model_copy(update={"stack_id": plan.stack}))
        if new:
            self.store.create_tasks(new)
            self.events.emit(*(task_event(EventType.task_created, t) for t in new))
        plan.tasks = [self.store.get_task(t.id) for t in plan.tasks]

    def _runner(self, plan: Plan, record: StackRecord) -> Runner:
        hosts = self.inventory.by_id()
        total = len(plan.tasks) or 1
        ended = 0

        def progress(task: Task) -> None:
            nonlocal ended
            if task.terminal:
                ended += 1
                current = self.store.get_stack(plan.stack)
                if current is not None:
                    self.store.save_stack(current.model_copy(update={"progress": int(100 * ended / total)}))

        return Runner(
            self.store,
            self.executor,
            hosts,
            events=self.events,
            parallelism=self.parallelism,
            per_host=self.per_host,
            on_task_end=progress,
        )


def _placements(plan: Plan, record: StackRecord, result: RunResult) -> dict[str, dict[str, Any]]:
    """Where each container of the stack now runs, written back from task results."""
    placements: dict[str, dict[str, Any]] = {}
    created: dict[str, dict[str, Any]] = {}
    for task in result.tasks.values():
        if task.task_type in (TaskType.deploy, TaskType.replace) and task.status is TaskStatus.completed:
            payload = (DeployPayload if task.task_type is TaskType.deploy else ReplacePayload).model_validate(
                task.payload
            )
            created[payload.container.name] = {
                "hostId": task.host_id,
                "containerId": (task.result or {}).get("containerId"),
                "dockerName": payload.container.docker_name,
            }
    for action in plan.actions:
        if action.kind is ActionKind.remove:
            continue
        entry = created.get(action.name) or record.placements.get(action.name)
        if entry is None or entry.get("hostId") != action.host:
            entry = {"hostId": action.host, "containerId": None, "dockerName": action.docker_name}
        placements[action.name] = entry
    return placements


def _lease_live(record: StackRecord) -> bool:
    lease = record.runner_lease_until
    return lease is not None and datetime.fromisoformat(lease) > datetime.now(UTC)


def _lease_end() -> str:
    return (datetime.now(UTC) + timedelta(seconds=RUNNER_LEASE_SECONDS)).isoformat(timespec="microseconds")


def _network_hosts(plan: Plan, result: RunResult) -> set[str]:
    return {t.host_id for t in result.tasks.values() if t.task_type is TaskType.ensure_network}


def _failure_summary(result: RunResult) -> str:
    parts = [f"{t.host_id}: {t.description or t.task_type.value}: {t.error}" for t in result.failed]
    if result.cancelled:
        parts.append(f"{len(result.cancelled)} task(s) not started")
    return "; ".join(parts) or "failed"


__all__ = ["Deployer"]
