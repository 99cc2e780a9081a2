"""The PostgreSQL store's tables, as numbered migrations applied when a store opens.

Each step runs once per database, in order, recorded in ``schema_migrations``; all pending steps
and their records commit in one transaction under an advisory lock, so two servers starting on a
new database at once neither race nor half-apply a step. Add a step at the end; never edit an
applied one (databases that ran it will not run it again).

Records are JSONB documents (``doc``) written whole, exactly as the JSON store keeps them, plus
the few columns that indexes and claims need; the documents stay the truth and the columns are
kept equal to their fields by every write. Text keys sort by code point (``COLLATE "C"``), as
Python sorts them, whatever the database's default collation.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from graphium.errors import StoreError

MIGRATION_LOCK = 0x6772_6170_6869_0001  # pg_advisory_xact_lock key of the migrations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE stacks (
            id text COLLATE "C" PRIMARY KEY,
            doc jsonb NOT NULL
        );
        CREATE TABLE versions (
            stack text COLLATE "C" NOT NULL,
            number integer NOT NULL,
            doc jsonb NOT NULL,
            PRIMARY KEY (stack, number)
        );
        CREATE TABLE tasks (
            seq bigint GENERATED ALWAYS AS IDENTITY,
            id text COLLATE "C" PRIMARY KEY,
            stack_id text COLLATE "C",
            host_id text COLLATE "C" NOT NULL,
            run_id text COLLATE "C",
            status text COLLATE "C" NOT NULL,
            priority integer NOT NULL,
            date_created text COLLATE "C" NOT NULL,
            not_before timestamptz,
            lease_expires_at timestamptz,
            depends_on text[] COLLATE "C" NOT NULL,
            doc jsonb NOT NULL
        );
        CREATE UNIQUE INDEX tasks_created ON tasks (seq);
        -- the claim queue: only pending tasks, in claim order per host
        CREATE INDEX tasks_queue ON tasks (host_id, priority DESC, date_created, id)
            WHERE status = 'pending';
        -- leases to requeue: per host (claims) and overall (the task monitor)
        CREATE INDEX tasks_leases_by_host ON tasks (host_id, lease_expires_at)
            WHERE status IN ('assigned', 'running') AND lease_expires_at IS NOT NULL;
        CREATE INDEX tasks_leases ON tasks (lease_expires_at)
            WHERE status IN ('assigned', 'running') AND lease_expires_at IS NOT NULL;
        CREATE INDEX tasks_stack ON tasks (stack_id, seq);
        CREATE INDEX tasks_run ON tasks (run_id, seq);
        CREATE INDEX tasks_host ON tasks (host_id, seq);
        CREATE INDEX tasks_status ON tasks (status, seq);
        CREATE TABLE events (
            seq bigint PRIMARY KEY,
            stack_id text COLLATE "C",
            doc jsonb NOT NULL
        );
        CREATE INDEX events_stack ON events (stack_id, seq);
        -- the last event seq handed out: its row lock orders appends by commit
        CREATE TABLE counters (
            name text PRIMARY KEY,
            value bigint NOT NULL
        );
        INSERT INTO counters VALUES ('events', 0);
        CREATE TABLE observations (
            host text COLLATE "C" PRIMARY KEY,
            doc jsonb NOT NULL,
            reported_at text NOT NULL
        );
        CREATE TABLE agents (
            agent_id text COLLATE "C" PRIMARY KEY,
            host_id text COLLATE "C" NOT NULL,
            doc jsonb NOT NULL
        );
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]


def migrate(conn: psycopg.Connection[tuple[object, ...]], where: str) -> int:
    """Bring the database's schema up to :data:`LATEST` (one transaction); returns the version
    found before. StoreError when the database is newer than this code."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        found = int(row[0]) if row else 0  # type: ignore[call-overload]
        if found > LATEST:
            raise StoreError(
                f"{where}: the database's schema is version {found}, newer than this graphium"
                f" knows ({LATEST}); upgrade graphium"
            )
        for version, statements in MIGRATIONS:
            if version > found:
                conn.execute(sql.SQL(statements))  # our own constant DDL, no values
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
    return found


__all__ = ["LATEST", "MIGRATIONS", "MIGRATION_LOCK", "migrate"]
