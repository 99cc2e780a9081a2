"""Claims and lease expiry in SQL: the hot path of every agent's long-poll.

A claim is one UPDATE over a ``FOR UPDATE SKIP LOCKED`` pick: concurrent claimers (threads,
replicas) skip each other's rows instead of queueing behind them, and never take one task twice.
The pick walks the partial index of pending tasks (per host, in claim order: priority, then
age) and stops at the limit, so its cost does not grow with the completed tasks in the table.
Runnable: pending, ``notBefore`` passed, every dependency completed (or failed as a rollout step
that continues), judged on the statement's snapshot, so a task whose dependency is claimed in
the same call is not runnable.

Expired leases are found in SQL (a partial index of leased tasks); what they become (pending
after a doubling backoff, or failed) is :func:`graphium.store.memory.expired`, the JSON store's
own rule.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import sql

from graphium.records.task import Task, TaskStatus, check_transition
from graphium.store.memory import clone, expired, iso, queue_key
from graphium.store.postgres.rows import UPDATE_TASK, task_row, tasks_of
from graphium.store.postgres.session import Connection

_PICK_AND_TAKE = sql.SQL(
    """
    WITH picked AS (
        SELECT t.id FROM tasks t
        WHERE t.host_id = %(host)s AND t.status = 'pending'
          AND (t.not_before IS NULL OR t.not_before <= %(now)s)
          AND NOT EXISTS (
              SELECT 1 FROM unnest(t.depends_on) AS d(id)
              LEFT JOIN tasks dep ON dep.id = d.id
              WHERE dep.id IS NULL OR NOT (
                  dep.status = 'completed'
                  OR (dep.status = 'failed' AND dep.doc->>'taskType' = 'replace'
                      AND dep.doc #>> '{payload,rollout,failureAction}' = 'continue')))
        ORDER BY t.priority DESC, t.date_created, t.id
        LIMIT %(limit)s
        FOR UPDATE OF t SKIP LOCKED
    )
    UPDATE tasks t
    SET status = %(status)s, lease_expires_at = %(lease)s,
        doc = t.doc || jsonb_build_object(
            'status', %(status)s::text, 'agentId', %(agent)s::text,
            'assignedAt', %(stamp)s::text, 'startedAt', %(started)s::text,
            'completedAt', NULL, 'leaseExpiresAt', %(lease_text)s::text)
    FROM picked WHERE t.id = picked.id
    RETURNING t.doc
    """
)

_LEASED = sql.SQL(
    "status IN ('assigned', 'running') AND lease_expires_at IS NOT NULL AND lease_expires_at <= %(now)s"
)
_EXPIRED_OF_HOST = sql.SQL(
    "SELECT doc FROM tasks WHERE host_id = %(host)s AND {} ORDER BY id FOR UPDATE SKIP LOCKED"
).format(_LEASED)
_EXPIRED = sql.SQL("SELECT doc FROM tasks WHERE {} ORDER BY host_id, id FOR UPDATE SKIP LOCKED").format(
    _LEASED
)


def take(
    conn: Connection,
    host_id: str,
    agent_id: str,
    moment: datetime,
    lease_seconds: float,
    limit: int,
    *,
    start: bool,
) -> list[Task]:
    """Take up to ``limit`` runnable tasks of the host (one statement), best first."""
    if limit <= 0:
        return []
    lease = moment + timedelta(seconds=lease_seconds)
    stamp = iso(moment)
    params: dict[str, Any] = {
        "host": host_id,
        "now": moment,
        "limit": limit,
        "status": (TaskStatus.running if start else TaskStatus.assigned).value,
        "lease": lease,
        "lease_text": iso(lease),
        "agent": agent_id,
        "stamp": stamp,
        "started": stamp if start else None,
    }
    taken = tasks_of(conn.execute(_PICK_AND_TAKE, params).fetchall())
    return sorted(taken, key=queue_key)


def requeue(
    conn: Connection,
    moment: datetime,
    backoff: float,
    max_backoff: float,
    *,
    host_id: str | None = None,
) -> list[Task]:
    """Give back the expired leases (of one host, or all): pending after a backoff, or failed
    once out of retries. Rows another transaction holds are left for the next call."""
    query = _EXPIRED if host_id is None else _EXPIRED_OF_HOST
    found = tasks_of(conn.execute(query, {"host": host_id, "now": moment}).fetchall())
    changed: list[Task] = []
    for task in found:
        update = expired(task, moment, backoff, max_backoff)
        check_transition(task.id, task.status, update["status"])
        changed.append(clone(task, **update))
    if changed:
        with conn.cursor() as cur:
            cur.executemany(UPDATE_TASK, [task_row(t) for t in changed])
    return changed


__all__ = ["requeue", "take"]
