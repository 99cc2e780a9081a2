"""The Deployer: plans a stack against live hosts and applies plans, owning the stack while it runs.

Built from a store, an executor and an inventory; the CLI, the server and the blocking shortcuts
for scripts (:mod:`graphium.shortcuts`) all drive stacks through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

from graphium.errors import InterruptedRunError, LockedError, NotFoundError, PlanError, StalePlanError
from graphium.executors.base import Executor
from graphium.executors.host_lock import host_locks
from graphium.executors.owner import Owner, current_owner, provably_dead
from graphium.plan import planner, rollback
from graphium.plan.conflicts import refuse_conflicts
from graphium.plan.model import ActionKind, Plan
from graphium.plan.payloads import created_container
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import Task, TaskStatus, utcnow
from graphium.records.version import StackVersion
from graphium.run import lifecycle, rollouts, versions
from graphium.run.defaults import DEFAULT_PARALLELISM, DEFAULT_PER_HOST
from graphium.run.events import EventBus, EventType, stack_event, task_event
from graphium.run.runner import Runner, RunResult
from graphium.stack.loader import StackDocument, check_hosts
from graphium.stack.models import Connection, Inventory
from graphium.stack.variables import resolve
from graphium.store.base import TaskStore


class Deployer:
    """Plans and applies stacks against one inventory, one store and one executor."""

    def __init__(
        self,
        store: TaskStore,
        executor: Executor,
        inventory: Inventory,
        *,
        events: EventBus | None = None,
        parallelism: int | None = DEFAULT_PARALLELISM,
        per_host: int = DEFAULT_PER_HOST,
    ) -> None:
        self.store = store
        self.executor = executor
        self.inventory = inventory
        self.events = events or EventBus(store)
        self.parallelism = parallelism
        self.per_host = per_host
        self.owner = current_owner()
        self._draining = False
        self._runners: list[Runner] = []

    # holding the stack ----------------------------------------------------------------------
    def drain(self) -> None:
        """The first interrupt: a run in progress starts nothing new (its tasks in flight finish or
        roll back), and a run not yet begun never begins."""
        self._draining = True
        for runner in self._runners:
            runner.drain()

    @property
    def draining(self) -> bool:
        return self._draining

    def holder(self, record: StackRecord, now: datetime | None = None) -> str | None:
        """Who else holds the stack's runner lease (for people), or None when it is free: expired,
        ours, or held by a process of this machine that is provably dead."""
        if not lifecycle.lease_live(record, now or datetime.now(UTC)):
            return None
        if record.runner_owner == str(self.owner) or provably_dead(record.runner_owner):
            return None
        owner = Owner.parse(record.runner_owner)
        return owner.describe() if owner else "another process"

    def check_unlocked(self, stack_name: str) -> None:
        """Refuse (LockedError) a stack another live process is running: before planning, so that
        nobody confirms a plan that cannot be applied."""
        current = self.store.get_stack(stack_name)
        who = self.holder(current) if current is not None else None
        if current is not None and who is not None:
            raise LockedError(
                f"stack {stack_name} is being applied by {who}; wait for it to finish (its lease "
                f"expires at {current.runner_lease_until}). If that process is gone, run "
                f"`graphium-run unlock {stack_name}`"
            )

    @contextlib.asynccontextmanager
    async def hold(self, stack_name: str, *, lock_wait: float = 0.0) -> AsyncIterator[None]:
        """Hold the stack for one plan and apply: its lock on every host (waiting up to
        ``lock_wait`` seconds for another run to end), then no live runner lease in the store."""
        hosts = self.inventory.hosts
        async with host_locks(self.executor, hosts, stack_name, str(self.owner), wait=lock_wait):
            self.check_unlocked(stack_name)
            yield

    # planning -----------------------------------------------------------------------------
    async def plan(self, doc: StackDocument, environ: Mapping[str, str] | None = None) -> Plan:
        """Desired state (``${VAR}`` filled from ``environ``) against what the hosts run now."""
        check_hosts(doc, self.inventory)
        environ = os.environ if environ is None else environ
        resolved = resolve(doc.stack, environ, str(doc.path), path_of=doc.path_of)
        spec = resolved.spec
        observed = await self.executor.observe(self.inventory.hosts, spec.name)
        stored = self.store.get_stack(spec.name)
        result = planner.plan_apply(
            spec, self.inventory, observed, stored, secret_values=resolved.secret_values()
        )
        result.inventory = self.inventory.dump()
        result.secret_variables = dict(resolved.secrets)
        result.definition = doc.stack.dump()  # as written: recorded as the stack's version once applied
        result.variables = versions.recordable_variables(doc.stack, environ)
        return result

    async def plan_rollback(self, version: StackVersion, environ: Mapping[str, str] | None = None) -> Plan:
        """An earlier version of a stack (see :func:`graphium.run.versions.choose`) against what the
        hosts run now: its recorded variables restored, the others (secrets) filled from
        ``environ`` again, its placements pinned."""
        resolved = versions.definition(version, os.environ if environ is None else environ)
        spec = resolved.spec
        observed = await self.executor.observe(self.inventory.hosts, spec.name)
        stored = self.store.get_stack(spec.name)
        result = rollback.plan_rollback(
            spec, self.inventory, observed, stored, version.placements, secret_values=resolved.secret_values()
        )
        result.inventory = self.inventory.dump()
        result.secret_variables = dict(resolved.secrets)
        result.definition = version.definition
        result.variables = version.variables
        result.rollback_of = version.number
        return result

    async def plan_destroy(self, stack_name: str, *, volumes: bool = False) -> Plan:
        """Remove the stack's containers and networks; its volumes too with ``volumes``."""
        observed = await self.executor.observe(self.inventory.hosts, stack_name)
        stored = self.store.get_stack(stack_name)
        result = planner.plan_destroy(stack_name, observed, stored, volumes=volumes)
        result.inventory = self.inventory.dump()
        return result

    async def check_fresh(self, plan: Plan) -> None:
        """Refuse a saved plan if the hosts or the store changed since it was computed."""
        hosts = [h for h in self.inventory.hosts if h.id in set(plan.hosts)]
        missing = sorted(set(plan.hosts) - {h.id for h in hosts})
        if missing:
            raise StalePlanError(f"the plan uses hosts no longer in the inventory: {', '.join(missing)}")
        observed = await self.executor.observe(hosts, plan.stack)
        planner.check_fresh(plan, observed, self.store.get_stack(plan.stack))
        creating = [c for c in map(created_container, plan.tasks) if c is not None]
        refuse_conflicts(plan.stack, creating, observed)  # appeared since: refused before any change

    # applying -----------------------------------------------------------------------------
    async def apply(self, plan: Plan, *, verify_fresh: bool = False, wait: bool = True) -> RunResult:
        """Run a plan; the stack ends ``running`` (or, for a destroy, its records are removed).

        ``wait=False`` only enqueues (every task must be an agent host's): the agents run the tasks
        and the server's task monitor settles the stack.
        """
        if verify_fresh:
            await self.check_fresh(plan)
        if self._draining:
            raise InterruptedRunError(f"stack {plan.stack}: interrupted before anything was changed")
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
            versions.record(self.store, plan, stored.run_id, if_new=True)  # a new definition, same containers
            return RunResult(tasks={}, duration=0.0)  # nothing to do on the hosts
        record = self._begin(plan, record, EventType.stack_deploying, lease=True)
        result = await self._run_owned(plan, record)
        self._settle(plan, record, result)
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
        self._settle(plan, record, result)
        return result

    def _settle(self, plan: Plan, record: StackRecord, result: RunResult) -> None:
        """Write back what the run made of the stack (see :func:`lifecycle.settle`), and say so."""
        desired = {a.name: (a.host, a.docker_name) for a in plan.actions if a.kind is not ActionKind.remove}
        with self.store.batch():
            current = self.store.get_stack(plan.stack)
            if current is None and plan.destroy:
                return  # a server's monitor settled it already
            base = current or record
            if plan.destroy:  # still this destroy's outcome, whatever a monitor wrote meanwhile
                base = base.model_copy(update={"status": StackStatus.deleting})
            decision = lifecycle.settle(
                base, list(result.tasks.values()), desired=None if plan.destroy else desired
            )
            record_ = decision.record
            if record_ is not None and result.interrupted and not decision.delete:
                record_ = record_.model_copy(update={"phase": "interrupted"})
            if decision.delete:
                self.store.delete_stack(plan.stack)
            elif record_ is not None:
                self.store.save_stack(record_)
                if record_.status is StackStatus.running:  # never a failed apply
                    versions.record(self.store, plan, record_.run_id)
            if decision.event is not None:
                self.events.emit(decision.event)

    async def _run_owned(self, plan: Plan, record: StackRecord) -> RunResult:
        """Run the plan's tasks while renewing the stack's runner lease, so that a server's task
        monitor sharing this store leaves the stack to this process while it is alive."""
        done = asyncio.Event()

        async def renew() -> None:
            while not done.is_set():
                try:
                    await asyncio.wait_for(done.wait(), lifecycle.RUNNER_LEASE_SECONDS / 3)
                except TimeoutError:
                    current = self.store.get_stack(plan.stack)
                    if current is not None:
                        lease = lifecycle.lease_end(datetime.now(UTC))
                        self.store.save_stack(current.model_copy(update={"runner_lease_until": lease}))

        renewer = asyncio.create_task(renew())
        try:
            return await rollouts.run(self._runner(plan, record), self.store, self.events, plan.tasks)
        except asyncio.CancelledError:  # interrupted, or stopped by a server: free the stack at once
            current = self.store.get_stack(plan.stack)
            if current is not None:
                free = {"runner_lease_until": None, "runner_owner": None}
                self.store.save_stack(current.model_copy(update=free))
            raise
        finally:
            done.set()
            await renewer

    def _begin(self, plan: Plan, record: StackRecord, kind: EventType, *, lease: bool) -> StackRecord:
        """Start a run with a fresh id, atomically (one store batch, under its lock): refuse a stack
        that another live process is running, settle what an earlier run left unfinished, save the
        record naming the run, say so, and store the tasks as the run's."""
        run_id = lifecycle.new_run_id()
        with self.store.batch():
            now = datetime.now(UTC)
            self.check_unlocked(plan.stack)
            self._supersede(plan)
            saved = self.store.save_stack(
                record.model_copy(
                    update={
                        "run_id": run_id,
                        "runner_lease_until": lifecycle.lease_end(now) if lease else None,
                        "runner_owner": str(self.owner) if lease else None,
                    }
                )
            )
            self.events.emit(stack_event(kind, plan.stack, run_id=run_id, totalTasks=len(plan.tasks)))
            self._enqueue(plan, run_id)
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

    def _enqueue(self, plan: Plan, run_id: str) -> None:
        """Store the plan's tasks as the run's. A re-run of the same plan resumes the ones already
        stored (their ids derive from their content): they join the new run as they are."""
        new: list[Task] = []
        stored: list[str] = []
        for task in plan.tasks:
            try:
                self.store.get_task(task.id)
            except NotFoundError:
                new.append(task.model_copy(update={"stack_id": plan.stack, "run_id": run_id}))
            else:
                stored.append(task.id)
        if stored:
            self.store.assign_run(stored, run_id)
        if new:
            self.store.create_tasks(new)
            self.events.emit(*(task_event(EventType.task_created, t) for t in new))
        plan.tasks = [self.store.get_task(t.id) for t in plan.tasks]

    def _runner(self, plan: Plan, record: StackRecord) -> Runner:
        hosts = self.inventory.by_id()
        total = len(plan.tasks)
        ended = {t.id for t in plan.tasks if t.terminal}  # resumed tasks that had ended count too

        def progress(tasks: list[Task]) -> None:
            before = len(ended)
            ended.update(t.id for t in tasks if t.terminal)
            if len(ended) == before:
                return
            current = self.store.get_stack(plan.stack)
            percent = min(100, int(100 * len(ended) / total))  # rollbacks add tasks
            if current is not None and current.progress != percent:
                self.store.save_stack(current.model_copy(update={"progress": percent}))

        runner = Runner(
            self.store,
            self.executor,
            hosts,
            events=self.events,
            parallelism=self.parallelism,
            per_host=self.per_host,
            on_tasks_end=progress,
        )
        if self._draining:
            runner.drain()
        self._runners.append(runner)
        return runner


__all__ = ["Deployer"]
