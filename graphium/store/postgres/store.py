"""The PostgreSQL task store: the TaskStore protocol on a database several servers share.

Why PostgreSQL: the JSON file allows exactly one server; a database lets several replicas serve
agents at once, with claims that skip each other's rows (``SKIP LOCKED``), wake-ups across
replicas (``LISTEN/NOTIFY``) and leadership for the task monitor (an advisory lock). The task
operations are :mod:`~graphium.store.postgres.tasks`'; connections and transactions
:mod:`~graphium.store.postgres.session`'s; the tables :mod:`~graphium.store.postgres.schema`'s.

Event ``seq`` order is commit order (:mod:`~graphium.store.postgres.events`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from graphium.errors import NotFoundError, StoreError
from graphium.plan.model import ObservedHost
from graphium.records.agent import AgentRecord
from graphium.records.event import Event
from graphium.records.stack import StackRecord, check_stack_transition
from graphium.records.version import KEEP_VERSIONS, StackVersion
from graphium.store.base import CommitHook
from graphium.store.memory import clone, iso, now
from graphium.store.open import mask_url
from graphium.store.postgres import notify
from graphium.store.postgres.events import insert_numbered
from graphium.store.postgres.leadership import Leadership
from graphium.store.postgres.schema import migrate
from graphium.store.postgres.session import Connection, IdleCheck, Sessions, describe
from graphium.store.postgres.tasks import TaskOperations


def _password(url: str) -> str | None:
    try:
        value = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        return None
    return str(value) if value else None


class PostgresTaskStore(TaskOperations):
    """TaskStore on a PostgreSQL database (psycopg 3 and its pool); thread- and process-safe.

    ``retry_backoff_seconds`` and ``max_backoff_seconds`` shape the delay before a task whose
    lease expired may be claimed again (as in the JSON store); ``max_events`` bounds the events
    kept; ``max_connections`` bounds the pool (one connection per concurrent operation or batch);
    a pooled connection idle for ``idle_check_seconds`` is pinged before use, so the store
    outlives a database restart.
    """

    def __init__(
        self,
        url: str,
        *,
        retry_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 300.0,
        max_events: int = 10_000,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        pool_timeout: float = 30.0,
        idle_check_seconds: float = 2.0,
    ) -> None:
        self.retry_backoff_seconds = retry_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_events = max_events
        self.location = mask_url(url)  # for messages: never the password
        self.origin = uuid.uuid4().hex[:16]  # tells this instance's notifications from the others'
        self._url = url
        self._secret = _password(url)
        self._leaderships: list[Leadership] = []
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=int(connect_timeout)) as conn:
                migrate(conn, self.location)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the task store: {self._describe(exc)}") from exc
        idle = IdleCheck(idle_check_seconds)
        pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            check=idle.check,
            reset=idle.reset,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            timeout=pool_timeout,
            open=True,
            name="graphium-store",
        )
        self._sessions = Sessions(pool, self.location, self._secret, self._before_commit)

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, self.location, self._secret)

    def close(self) -> None:
        for leadership in self._leaderships:
            leadership.release()
        self._sessions.closed = True
        self._sessions.pool.close()

    def __enter__(self) -> PostgresTaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresTaskStore({self.location!r})"

    # stacks -------------------------------------------------------------------------------
    def get_stack(self, stack_id: str) -> StackRecord | None:
        with self._sessions.read() as conn:
            row = conn.execute("SELECT doc FROM stacks WHERE id = %s", (stack_id,)).fetchone()
        return StackRecord.model_validate(row[0]) if row else None

    def list_stacks(self) -> list[StackRecord]:
        with self._sessions.read() as conn:
            rows = conn.execute("SELECT doc FROM stacks ORDER BY id").fetchall()
        return [StackRecord.model_validate(r[0]) for r in rows]

    def save_stack(self, record: StackRecord, *, expected_revision: int | None = None) -> StackRecord:
        with self._sessions.write() as frame:
            row = frame.conn.execute(
                "SELECT doc FROM stacks WHERE id = %s FOR UPDATE", (record.id,)
            ).fetchone()
            current = StackRecord.model_validate(row[0]) if row else None
            revision = current.revision if current else 0
            if expected_revision is not None and revision != expected_revision:
                raise StoreError(
                    f"stack {record.id}: stored revision is {revision}, expected {expected_revision}"
                    " (changed by someone else)"
                )
            check_stack_transition(record.id, current.status if current else None, record.status)
            moment = iso(now())
            created = current.created_at if current else (record.created_at or moment)
            stored = clone(record, revision=revision + 1, created_at=created, updated_at=moment)
            if current is not None:
                frame.conn.execute(
                    "UPDATE stacks SET doc = %s WHERE id = %s", (Jsonb(stored.dump()), stored.id)
                )
            else:
                inserted = frame.conn.execute(
                    "INSERT INTO stacks (id, doc) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                    (stored.id, Jsonb(stored.dump())),
                )
                if inserted.rowcount != 1:
                    raise StoreError(f"stack {record.id}: created by someone else meanwhile")
            return stored

    def delete_stack(self, stack_id: str) -> None:
        with self._sessions.write() as frame:
            gone = frame.conn.execute("DELETE FROM stacks WHERE id = %s RETURNING id", (stack_id,)).fetchone()
            if gone is None:
                raise NotFoundError(f"stack {stack_id} not found")
            frame.conn.execute("DELETE FROM tasks WHERE stack_id = %s", (stack_id,))

    # stack versions -----------------------------------------------------------------------
    def save_version(self, version: StackVersion) -> StackVersion:
        with self._sessions.write() as frame:
            conn = frame.conn
            # numbering is max + 1: serialise the stack's writers (rows to lock may not exist yet)
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"version:{version.stack}",)
            )
            row = conn.execute(
                "SELECT max(number) FROM versions WHERE stack = %s", (version.stack,)
            ).fetchone()
            number = int(row[0]) + 1 if row and row[0] is not None else 1
            stored = clone(version, number=number, applied_at=version.applied_at or iso(now()))
            conn.execute(
                "INSERT INTO versions (stack, number, doc) VALUES (%s, %s, %s)",
                (stored.stack, number, Jsonb(stored.dump())),
            )
            conn.execute(
                "DELETE FROM versions WHERE stack = %s AND number <= %s",
                (stored.stack, number - KEEP_VERSIONS),
            )
            return stored

    def list_versions(self, stack_id: str) -> list[StackVersion]:
        with self._sessions.read() as conn:
            rows = conn.execute(
                "SELECT doc FROM versions WHERE stack = %s ORDER BY number", (stack_id,)
            ).fetchall()
        return [StackVersion.model_validate(r[0]) for r in rows]

    # events -------------------------------------------------------------------------------
    def append_events(self, events: list[Event]) -> list[Event]:
        """Stamp the events (the current time unless they carry one) and number them when the
        transaction commits (:meth:`_before_commit`): a single append returns them numbered; one
        inside a batch returns the events the commit numbers (``seq`` 0 until then)."""
        if not events:
            return []
        with self._sessions.write() as frame:
            moment = iso(now())
            stored = [clone(e, seq=0, time=e.time or moment) for e in events]
            frame.events.extend(stored)
        return stored

    def list_events(self, *, after: int = 0, stack_id: str | None = None, limit: int = 1000) -> list[Event]:
        with self._sessions.read() as conn:
            if stack_id is None:
                query = "SELECT doc FROM events WHERE seq > %s ORDER BY seq LIMIT %s"
                rows = conn.execute(query, (after, limit)).fetchall()
            else:
                query = "SELECT doc FROM events WHERE seq > %s AND stack_id = %s ORDER BY seq LIMIT %s"
                rows = conn.execute(query, (after, stack_id, limit)).fetchall()
        return [Event.model_validate(r[0]) for r in rows]

    # agents' observations -----------------------------------------------------------------
    def save_observation(self, observed: ObservedHost) -> None:
        with self._sessions.write() as frame:
            frame.conn.execute(
                "INSERT INTO observations (host, doc, reported_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (host) DO UPDATE SET doc = excluded.doc, reported_at = excluded.reported_at",
                (observed.host, Jsonb(observed.dump()), iso(now())),
            )

    def get_observation(self, host_id: str) -> tuple[ObservedHost, str] | None:
        with self._sessions.read() as conn:
            row = conn.execute(
                "SELECT doc, reported_at FROM observations WHERE host = %s", (host_id,)
            ).fetchone()
        return (ObservedHost.model_validate(row[0]), str(row[1])) if row else None

    # agents ---------------------------------------------------------------------------------
    def save_agents(self, agents: list[AgentRecord]) -> None:
        if not agents:
            return
        with self._sessions.write() as frame, frame.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO agents (agent_id, host_id, doc) VALUES (%s, %s, %s) ON CONFLICT (agent_id)"
                " DO UPDATE SET host_id = excluded.host_id, doc = excluded.doc",
                [(a.agent_id, a.host_id, Jsonb(a.dump())) for a in agents],
            )

    def list_agents(self, *, host_id: str | None = None) -> list[AgentRecord]:
        with self._sessions.read() as conn:
            if host_id is None:
                rows = conn.execute("SELECT doc FROM agents ORDER BY host_id, agent_id").fetchall()
            else:
                query = "SELECT doc FROM agents WHERE host_id = %s ORDER BY agent_id"
                rows = conn.execute(query, (host_id,)).fetchall()
        return [AgentRecord.model_validate(r[0]) for r in rows]

    def forget_agents(self, agent_ids: list[str]) -> None:
        if not agent_ids:
            return
        with self._sessions.write() as frame:
            frame.conn.execute("DELETE FROM agents WHERE agent_id = ANY(%s)", (agent_ids,))

    # grouping -----------------------------------------------------------------------------
    def batch(self) -> AbstractContextManager[None]:
        """One transaction for everything the thread does inside (nested batches join it); a
        raise rolls it all back; an operation that fails inside undoes only itself."""
        return self._batch()

    @contextmanager
    def _batch(self) -> Iterator[None]:
        with self._sessions.batch():
            yield

    def on_commit(self, hook: CommitHook) -> Callable[[], None]:
        """As the protocol says: after each commit this instance makes that wrote, in the
        committing thread. Other replicas' commits arrive through :meth:`listen`."""
        return self._sessions.add_hook(hook)

    def _before_commit(self, conn: Connection, events: list[Event]) -> None:
        """Number and insert the transaction's events, last thing before COMMIT
        (:mod:`~graphium.store.postgres.events`), and queue their NOTIFY."""
        with conn.pipeline():
            notify.send(conn, self.origin, events)
            insert_numbered(conn, events, self.max_events)

    # replicas -----------------------------------------------------------------------------
    async def listen(self, wake: notify.Wake, *, listening: asyncio.Event | None = None) -> None:
        """Until cancelled: ``wake(hosts, everyone)`` for each commit of another store instance
        on this database (:mod:`~graphium.store.postgres.notify`); reconnects by itself."""
        await notify.listen(self._url, self.origin, wake, self._describe, listening=listening)

    def leadership(self, name: str) -> Leadership:
        """A session-level advisory lock named ``name`` on a connection of its own; released
        when the store closes."""
        leadership = Leadership(self._url, name, self._describe)
        self._leaderships.append(leadership)
        return leadership


__all__ = ["PostgresTaskStore"]
