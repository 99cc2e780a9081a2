"""The default task store: a TinyDB JSON file plus an append-only journal beside it.

Why a journal: rewriting a multi-megabyte file for every status change caps a store at a few
dozen changes per second, while agents and runners need individually durable updates by the
thousand. So every operation (or ``batch()``) appends one fsynced JSON line to
``<path>.journal``; the TinyDB file ``<path>`` is rewritten, atomically, only when the journal has
grown as large as it ("compaction"). Files:

- ``<path>``: a TinyDB database (tables ``meta``, ``stacks``, ``versions``, ``tasks``, ``events``,
  ``observations``, ``agents``), readable with plain ``TinyDB(path)``; ``meta`` holds the format,
  the compaction generation and the last event seq. Written only as
  temp file + fsync + rename + directory fsync.
- ``<path>.journal``: one JSON line per durable operation (:mod:`graphium.store.journal`).
- ``<path>.lock``: a file lock held for every operation, reads included, so several processes
  share the store safely.

Each instance keeps the whole state in memory and, under the lock, catches up with other
processes' changes: the journal is read incrementally from the last offset seen, and the main
file is reloaded only when its identity (inode, size, mtime) changed. The state and its claim
indexes are :mod:`graphium.store.memory`'s; this module holds the operations and transactions.
Hooks registered with :meth:`JsonTaskStore.on_commit` run after each durable commit.
"""

from __future__ import annotations

import bisect
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import filelock
from tinydb import TinyDB
from tinydb.storages import Storage

from graphium.errors import NotFoundError, StoreError
from graphium.graph import cycles
from graphium.plan.model import ObservedHost
from graphium.records.agent import AgentRecord
from graphium.records.event import Event
from graphium.records.stack import StackRecord, check_stack_transition
from graphium.records.task import Task, TaskStatus, check_transition
from graphium.records.version import StackVersion
from graphium.store.files import FileIdentity, atomic_write, identity_of
from graphium.store.journal import JournalledStore
from graphium.store.memory import (
    LEASED,
    clone,
    expired,
    iso,
    now,
    parse_time,
    transitioned,
)
from graphium.store.open import DEFAULT_STATE


class _AtomicJSONStorage(Storage):
    """TinyDB storage whose every write is atomic and durable (temp file, fsync, rename)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.identity: FileIdentity | None = None  # of the file last read or written

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            with open(self.path, "rb") as fh:
                self.identity = identity_of(os.fstat(fh.fileno()))
                raw = fh.read()
        except FileNotFoundError:
            self.identity = None
            return None
        if not raw.strip():
            return None
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("top level is not a JSON object")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.identity = atomic_write(self.path, json.dumps(data, separators=(",", ":")).encode())

    def close(self) -> None:
        pass


class JsonTaskStore(JournalledStore):
    """TaskStore over a TinyDB JSON file and a journal; safe for several processes at once.

    ``retry_backoff_seconds`` and ``max_backoff_seconds`` shape the delay before a task whose
    lease expired may be claimed again (doubling per retry). ``compact_bytes`` is the least journal
    size that triggers compaction (it also waits for the journal to outgrow the main file, so
    compaction costs O(1) amortised per operation). ``max_events`` bounds event retention.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retry_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 300.0,
        max_events: int = 10_000,
        compact_bytes: int = 1 << 20,
        lock_timeout: float = 30.0,
    ) -> None:
        self.retry_backoff_seconds = retry_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        db = TinyDB(str(path), storage=_AtomicJSONStorage)
        storage = db.storage
        assert isinstance(storage, _AtomicJSONStorage)
        lock = filelock.FileLock(
            str(path) + ".lock", timeout=lock_timeout, thread_local=False, preserve_lock_file=True
        )
        super().__init__(Path(path), storage, lock, max_events=max_events, compact_bytes=compact_bytes)

    def __enter__(self) -> JsonTaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonTaskStore({str(self.path)!r})"

    # stacks -------------------------------------------------------------------------------
    def get_stack(self, stack_id: str) -> StackRecord | None:
        with self._txn():
            record = self._state.stacks.get(stack_id)
            return clone(record) if record else None

    def list_stacks(self) -> list[StackRecord]:
        with self._txn():
            stacks = self._state.stacks
            return [clone(stacks[k]) for k in sorted(stacks)]

    def save_stack(self, record: StackRecord, *, expected_revision: int | None = None) -> StackRecord:
        with self._txn():
            current = self._state.stacks.get(record.id)
            revision = current.revision if current else 0
            if expected_revision is not None and revision != expected_revision:
                raise StoreError(
                    f"stack {record.id}: stored revision is {revision}, expected {expected_revision}"
                    " (changed by someone else)"
                )
            check_stack_transition(record.id, current.status if current else None, record.status)
            moment = iso(now())
            created = current.created_at if current else (record.created_at or moment)
            stamps = {"revision": revision + 1, "created_at": created, "updated_at": moment}
            if current is not None and record.spec == current.spec:
                stored = self._stage_stack_patch(record, current, stamps)
            else:
                stored = clone(record, **stamps)
                self._staged.append(["stack", stored.dump()])
            self._state.stacks[stored.id] = stored
            return clone(stored)

    def _stage_stack_patch(
        self, record: StackRecord, current: StackRecord, stamps: dict[str, Any]
    ) -> StackRecord:
        """A save that keeps the stored spec (progress, phase, lease, placements): journal only
        the fields that changed, which the replay lays over the record it patches. The spec and
        the placements are most of a record's size, and runs save their stack at every few task
        ends."""
        head = clone(record.model_copy(update={"spec": {}}), **stamps)
        changed = {
            name
            for name in StackRecord.model_fields
            if name == "id" or (name != "spec" and getattr(head, name) != getattr(current, name))
        }
        self._staged.append(["stack~", head.model_dump(mode="json", by_alias=True, include=changed)])
        return head.model_copy(update={"spec": current.spec})

    def delete_stack(self, stack_id: str) -> None:
        with self._txn():
            state = self._state
            if stack_id not in state.stacks:
                raise NotFoundError(f"stack {stack_id} not found")
            for task_id in [t.id for t in state.tasks.values() if t.stack_id == stack_id]:
                state.drop_task(task_id)
                self._staged.append(["task-", task_id])
            state.stacks.pop(stack_id, None)
            self._staged.append(["stack-", stack_id])

    # stack versions -----------------------------------------------------------------------
    def save_version(self, version: StackVersion) -> StackVersion:
        with self._txn():
            kept = self._state.versions.get(version.stack, [])
            number = kept[-1].number + 1 if kept else 1
            stored = clone(version, number=number, applied_at=version.applied_at or iso(now()))
            self._state.put_version(stored)
            self._staged.append(["version", stored.dump()])
            return clone(stored)

    def list_versions(self, stack_id: str) -> list[StackVersion]:
        with self._txn():
            return [clone(v) for v in self._state.versions.get(stack_id, [])]

    # tasks --------------------------------------------------------------------------------
    def create_tasks(self, tasks: list[Task]) -> None:
        with self._txn():
            known = self._state.tasks
            new_ids: set[str] = set()
            for task in tasks:
                if task.id in known or task.id in new_ids:
                    raise StoreError(f"task {task.id} already exists")
                new_ids.add(task.id)
            for task in tasks:
                unknown = [d for d in task.depends_on if d not in new_ids and d not in known]
                if unknown:
                    raise StoreError(f"task {task.id}: dependsOn names unknown task(s) {', '.join(unknown)}")
            _check_acyclic(tasks)
            for task in tasks:
                self._stage_task(clone(task))

    def get_task(self, task_id: str) -> Task:
        with self._txn():
            return clone(self._state.task(task_id))

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        stack_id: str | None = None,
        host_id: str | None = None,
        run_id: str | None = None,
    ) -> list[Task]:
        """Matching tasks in creation order."""
        with self._txn():
            return [
                clone(t)
                for t in self._state.tasks.values()
                if (status is None or t.status == status)
                and (stack_id is None or t.stack_id == stack_id)
                and (host_id is None or t.host_id == host_id)
                and (run_id is None or t.run_id == run_id)
            ]

    def assign_run(self, task_ids: list[str], run_id: str) -> list[Task]:
        """Stamp existing tasks as the run's (a re-run resuming them), whatever their status."""
        with self._txn():
            current = [self._state.task(i) for i in task_ids]
            out = []
            for task in current:
                stored = task if task.run_id == run_id else clone(task, run_id=run_id)
                if stored is not task:
                    self._stage_task(stored)
                out.append(clone(stored))
            return out

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
        """Change a task's status, stamping its timestamps.

        ``expected`` makes the change conditional on the current status (compare-and-set). An
        ``agent_id`` that differs from the agent holding an assigned or running task is refused,
        so an agent whose lease was taken over cannot overwrite its successor's work.
        """
        with self._txn():
            current = self._state.task(task_id)
            stored = transitioned(
                current, status, error=error, result=result, agent_id=agent_id, expected=expected
            )
            self._stage_task(stored)
            return clone(stored)

    def claim(self, host_id: str, agent_id: str, lease_seconds: float) -> Task | None:
        """Take the best runnable task of ``host_id`` (see the protocol), after first returning
        that host's expired leases to the queue."""
        taken = self.claim_many(host_id, agent_id, lease_seconds, 1)
        return taken[0] if taken else None

    def claim_many(
        self, host_id: str, agent_id: str, lease_seconds: float, limit: int, *, start: bool = False
    ) -> list[Task]:
        """Take up to ``limit`` runnable tasks in claim order, in one lock hold and one journal
        line, so an agent with several slots pays one durable write per claim, not per task.
        A host with nothing queued or leased, in a store no other process wrote since, is
        answered without the file lock (an idle long-poll's re-check)."""
        if self._idle_host(host_id):
            return []
        with self._txn():
            moment = now()
            self._requeue_host(host_id, moment)
            state = self._state
            chosen: list[Task] = []
            for _, _, task_id in state.queue.get(host_id, ()):
                if len(chosen) >= limit:
                    break
                task = state.tasks[task_id]
                if task.not_before is not None and parse_time(task.not_before) > moment:
                    continue
                if all(state.completed(dep) for dep in task.depends_on):
                    chosen.append(task)
            stamp = iso(moment)
            taken: list[Task] = []
            for task in chosen:  # staging re-indexes the queue: only after the scan
                stored = clone(
                    task,
                    status=TaskStatus.running if start else TaskStatus.assigned,
                    agent_id=agent_id,
                    assigned_at=stamp,
                    started_at=stamp if start else None,
                    completed_at=None,
                    lease_expires_at=iso(moment + timedelta(seconds=lease_seconds)),
                )
                self._stage_task(stored)
                taken.append(clone(stored))
            return taken

    def _idle_host(self, host_id: str) -> bool:
        with self._mutex:
            state = self._state
            if state.queue.get(host_id) or state.leased.get(host_id):
                return False
            return not self.changed_elsewhere()

    def heartbeat(self, task_id: str, agent_id: str, lease_seconds: float) -> Task:
        """Extend a lease; refused once it expired, even if nobody has requeued the task yet."""
        with self._txn():
            current = self._state.task(task_id)
            moment = now()
            if current.status not in LEASED or current.agent_id != agent_id:
                holder = f" by agent {current.agent_id}" if current.agent_id else ""
                raise StoreError(
                    f"task {task_id}: not held by agent {agent_id} (it is {current.status.value}{holder})"
                )
            if current.lease_expires_at is not None and parse_time(current.lease_expires_at) <= moment:
                raise StoreError(f"task {task_id}: the lease of agent {agent_id} expired")
            stored = clone(current, lease_expires_at=iso(moment + timedelta(seconds=lease_seconds)))
            self._stage_task(stored)
            return clone(stored)

    def requeue_expired(self, now: str | None = None) -> list[Task]:
        with self._txn():
            moment = parse_time(now) if now else _now()
            changed: list[Task] = []
            for host_id in list(self._state.leased):
                changed += self._requeue_host(host_id, moment)
            return [clone(t) for t in changed]

    def stats(self, *, stack_id: str | None = None) -> dict[str, int]:
        with self._txn():
            counts = {"total": 0} | {s.value: 0 for s in TaskStatus}
            for task in self._state.tasks.values():
                if stack_id is None or task.stack_id == stack_id:
                    counts["total"] += 1
                    counts[task.status.value] += 1
            return counts

    # events -------------------------------------------------------------------------------
    def append_events(self, events: list[Event]) -> list[Event]:
        """Assign each event the next ``seq``, and the current time unless it carries one."""
        with self._txn():
            state = self._state
            moment = iso(now())
            stored = [
                clone(e, seq=state.seq + i, time=e.time or moment) for i, e in enumerate(events, start=1)
            ]
            if stored:
                state.add_events(stored)
                self._staged.append(["events", [e.dump() for e in stored]])
                self._staged_events.extend(stored)
            return [clone(e) for e in stored]

    def list_events(self, *, after: int = 0, stack_id: str | None = None, limit: int = 1000) -> list[Event]:
        with self._txn():
            events = self._state.events
            start = bisect.bisect_right(events, after, key=lambda e: e.seq)
            found: list[Event] = []
            for event in events[start:]:
                if len(found) >= limit:
                    break
                if stack_id is None or event.stack_id == stack_id:
                    found.append(clone(event))
            return found

    # agents' observations -----------------------------------------------------------------
    def save_observation(self, observed: ObservedHost) -> None:
        with self._txn():
            entry = {"host": observed.host, "observed": observed.dump(), "reportedAt": iso(now())}
            self._state.observations[observed.host] = entry
            self._staged.append(["observed", entry])

    def get_observation(self, host_id: str) -> tuple[ObservedHost, str] | None:
        with self._txn():
            entry = self._state.observations.get(host_id)
            if entry is None:
                return None
            return ObservedHost.model_validate(entry["observed"]), str(entry["reportedAt"])

    # agents ---------------------------------------------------------------------------------
    def save_agents(self, agents: list[AgentRecord]) -> None:
        with self._txn():
            for record in agents:
                self._state.agents[record.agent_id] = record.model_copy()
                self._staged.append(["agent", record.dump()])

    def list_agents(self, *, host_id: str | None = None) -> list[AgentRecord]:
        with self._txn():
            found = [a for a in self._state.agents.values() if host_id is None or a.host_id == host_id]
            return [a.model_copy() for a in sorted(found, key=lambda a: (a.host_id, a.agent_id))]

    def forget_agents(self, agent_ids: list[str]) -> None:
        with self._txn():
            for agent_id in agent_ids:
                if self._state.agents.pop(agent_id, None) is not None:
                    self._staged.append(["agent-", agent_id])

    # staging --------------------------------------------------------------------------------
    def _stage_task(self, task: Task) -> None:
        """Journal a task; a change that keeps its payload (a status change, a lease) leaves the
        payload out (``task~``: the replay keeps the stored one), since it is most of a task."""
        old = self._state.tasks.get(task.id)
        self._state.put_task(task)
        record = task.dump()
        if old is not None and old.payload == task.payload:
            del record["payload"]
            self._staged.append(["task~", record])
        else:
            self._staged.append(["task", record])

    def _requeue_host(self, host_id: str, moment: datetime) -> list[Task]:
        """Give back tasks whose lease expired: pending after a backoff, or failed when out of retries."""
        changed: list[Task] = []
        for task_id in sorted(self._state.leased.get(host_id, ())):
            task = self._state.tasks[task_id]
            if task.lease_expires_at is None or parse_time(task.lease_expires_at) > moment:
                continue
            update = expired(task, moment, self.retry_backoff_seconds, self.max_backoff_seconds)
            check_transition(task.id, task.status, update["status"])
            stored = clone(task, **update)
            self._stage_task(stored)
            changed.append(stored)
        return changed


def _now() -> datetime:
    return now()


def _check_acyclic(tasks: list[Task]) -> None:
    """A dependency cycle would leave its tasks pending forever: refuse it up front."""
    found = cycles({t.id: t.depends_on for t in tasks})
    if found:
        raise StoreError(f"tasks form a dependency cycle: {' -> '.join(found[0])}")


__all__ = ["DEFAULT_STATE", "JsonTaskStore"]
