"""Records to rows and back: the JSONB document plus the columns kept beside it.

A task's columns (status, priority, host, lease, ...) are derived from its document at every
write, here and only here, so they can never disagree with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from graphium.errors import StoreError
from graphium.records.task import Task
from graphium.store.memory import parse_time

TASK_COLUMNS = (
    "id",
    "stack_id",
    "host_id",
    "run_id",
    "status",
    "priority",
    "date_created",
    "not_before",
    "lease_expires_at",
    "depends_on",
    "doc",
)

INSERT_TASK = sql.SQL("INSERT INTO tasks ({}) VALUES ({})").format(
    sql.SQL(", ").join(map(sql.Identifier, TASK_COLUMNS)),
    sql.SQL(", ").join(map(sql.Placeholder, TASK_COLUMNS)),
)

UPDATE_TASK = sql.SQL("UPDATE tasks SET {} WHERE id = %(id)s").format(
    sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in TASK_COLUMNS if c != "id"
    )
)


def moment_of(task: Task, field: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise StoreError(f"task {task.id}: {field} {value!r} is not an ISO 8601 time") from None


def task_row(task: Task) -> dict[str, Any]:
    """The row of a task: its document and the columns derived from it."""
    return {
        "id": task.id,
        "stack_id": task.stack_id,
        "host_id": task.host_id,
        "run_id": task.run_id,
        "status": task.status.value,
        "priority": task.priority,
        "date_created": task.date_created,
        "not_before": moment_of(task, "notBefore", task.not_before),
        "lease_expires_at": moment_of(task, "leaseExpiresAt", task.lease_expires_at),
        "depends_on": list(task.depends_on),
        "doc": Jsonb(task.dump()),
    }


def tasks_of(rows: list[tuple[Any, ...]]) -> list[Task]:
    return [Task.model_validate(row[0]) for row in rows]


__all__ = ["INSERT_TASK", "TASK_COLUMNS", "UPDATE_TASK", "moment_of", "task_row", "tasks_of"]
