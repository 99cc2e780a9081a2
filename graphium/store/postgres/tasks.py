"""The PostgreSQL store's task operations (create, read, transition, claim, lease, count).

Each write locks the rows it changes (``SELECT ... FOR UPDATE``) and checks them with the same
rules as the JSON store (:func:`graphium.records.task.check_transition`, the stamping of
:func:`graphium.store.memory.stamped`), so both backends refuse and record exactly the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import sql

from graphium.errors import NotFoundError, StoreError
from graphium.graph import cycles
from graphium.records.task import Task, TaskStatus
from graphium.store.memory import LEASED, clone, iso, now, parse_time, transitioned
from graphium.store.postgres import claims
from graphium.store.postgres.rows import INSERT_TASK, UPDATE_TASK, task_row, tasks_of
from graphium.store.postgres.session import Connection, Sessions

_LOCK_TASK = "SELECT doc FROM tasks WHERE id = %s FOR UPDATE"


def _locked(conn: Connection, task_id: str) -> Task:
    row = conn.execute(_LOCK_TASK, (task_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"task {task_id} not found")
    return Task.model_validate(row[0])


def _put(conn: Connection, task: Task) -> None:
    conn.execute(UPDATE_TASK, task_row(task))


class TaskOperations:
    """Mixin of :class:`~graphium.store.postgres.store.PostgresTaskStore`: its task methods."""

    _sessions: Sessions
    retry_backoff_seconds: float
    max_backoff_seconds: float

    def create_tasks(self, tasks: list[Task]) -> None:
        with self._sessions.write() as frame:
            names = {t.id for t in tasks} | {d for t in tasks for d in t.depends_on}
            rows = frame.conn.execute("SELECT id FROM tasks WHERE id = ANY(%s)", (list(names),))
            known = {r[0] for r in rows.fetchall()}
            new_ids: set[str] = set()
            for task in tasks:
                if task.id in known or task.id in new_ids:
                    raise StoreError(f"task {task.id} already exists")
                new_ids.add(task.id)
            for task in tasks:
                unknown = [d for d in task.depends_on if d not in new_ids and d not in known]
                if unknown:
                    raise StoreError(f"task {task.id}: dependsOn names unknown task(s) {', '.join(unknown)}")
            found = cycles({t.id: t.depends_on for t in tasks})
            if found:
                raise StoreError(f"tasks form a dependency cycle: {' -> '.join(found[0])}")
            if tasks:
                with frame.conn.cursor() as cur:
                    cur.executemany(INSERT_TASK, [task_row(t) for t in tasks])

    def get_task(self, task_id: str) -> Task:
        with self._sessions.read() as conn:
            row = conn.execute("SELECT doc FROM tasks WHERE id = %s", (task_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"task {task_id} not found")
        return Task.model_validate(row[0])

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        stack_id: str | None = None,
        host_id: str | None = None,
        run_id: str | None = None,
    ) -> list[Task]:
        """Matching tasks in creation order."""
        wanted = {"status": status.value if status else None, "stack_id": stack_id}
        wanted |= {"host_id": host_id, "run_id": run_id}
        terms = [
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k))
            for k, v in wanted.items()
            if v is not None
        ]
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(terms) if terms else sql.SQL("")
        query = sql.SQL("SELECT doc FROM tasks{} ORDER BY seq").format(where)
        with self._sessions.read() as conn:
            return tasks_of(conn.execute(query, wanted).fetchall())

    def assign_run(self, task_ids: list[str], run_id: str) -> list[Task]:
        """Stamp existing tasks as the run's (a re-run resuming them), whatever their status."""
        with self._sessions.write() as frame:
            rows = frame.conn.execute(
                "SELECT doc FROM tasks WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (task_ids,)
            ).fetchall()
            current = {t.id: t for t in tasks_of(rows)}
            out: list[Task] = []
            for task_id in task_ids:
                task = current.get(task_id)
                if task is None:
                    raise NotFoundError(f"task {task_id} not found")
                if task.run_id != run_id:
                    task = current[task_id] = clone(task, run_id=run_id)
                    _put(frame.conn, task)
                out.append(task)
            return [clone(t) for t in out]

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
        """Change a task's status as the JSON store does: compare-and-set with ``expected``,
        refused for an agent other than the one holding the task."""
        with self._sessions.write() as frame:
            current = _locked(frame.conn, task_id)
            stored = transitioned(
                current, status, error=error, result=result, agent_id=agent_id, expected=expected
            )
            _put(frame.conn, stored)
            return stored

    def claim(self, host_id: str, agent_id: str, lease_seconds: float) -> Task | None:
        taken = self.claim_many(host_id, agent_id, lease_seconds, 1)
        return taken[0] if taken else None

    def claim_many(
        self, host_id: str, agent_id: str, lease_seconds: float, limit: int, *, start: bool = False
    ) -> list[Task]:
        """The host's expired leases go back first, then one statement takes the best runnable
        tasks (:mod:`graphium.store.postgres.claims`)."""
        with self._sessions.write() as frame:
            moment = now()
            claims.requeue(
                frame.conn, moment, self.retry_backoff_seconds, self.max_backoff_seconds, host_id=host_id
            )
            return claims.take(frame.conn, host_id, agent_id, moment, lease_seconds, limit, start=start)

    def heartbeat(self, task_id: str, agent_id: str, lease_seconds: float) -> Task:
        """Extend a lease; refused once it expired, even if nobody has requeued the task yet."""
        with self._sessions.write() as frame:
            current = _locked(frame.conn, task_id)
            moment = now()
            if current.status not in LEASED or current.agent_id != agent_id:
                holder = f" by agent {current.agent_id}" if current.agent_id else ""
                raise StoreError(
                    f"task {task_id}: not held by agent {agent_id} (it is {current.status.value}{holder})"
                )
            if current.lease_expires_at is not None and parse_time(current.lease_expires_at) <= moment:
                raise StoreError(f"task {task_id}: the lease of agent {agent_id} expired")
            stored = clone(current, lease_expires_at=iso(moment + timedelta(seconds=lease_seconds)))
            _put(frame.conn, stored)
            return stored

    def requeue_expired(self, now: str | None = None) -> list[Task]:
        moment: datetime = parse_time(now) if now else _now()
        with self._sessions.write() as frame:
            return claims.requeue(frame.conn, moment, self.retry_backoff_seconds, self.max_backoff_seconds)

    def stats(self, *, stack_id: str | None = None) -> dict[str, int]:
        counts = {"total": 0} | {s.value: 0 for s in TaskStatus}
        where = sql.SQL(" WHERE stack_id = %(stack)s") if stack_id is not None else sql.SQL("")
        query = sql.SQL("SELECT status, count(*) FROM tasks{} GROUP BY status").format(where)
        with self._sessions.read() as conn:
            rows = conn.execute(query, {"stack": stack_id}).fetchall()
        for status, count in rows:
            counts[status] = int(count)
            counts["total"] += int(count)
        return counts


def _now() -> datetime:
    return now()


__all__ = ["TaskOperations"]
