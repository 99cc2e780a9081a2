"""Event numbering: ``seq`` order is commit order, so readers paging with ``after`` skip nothing.

A plain sequence hands numbers out in call order: a transaction that took seq 10 and commits
after another took 11 and committed would be skipped by a reader already past 11. So events are
numbered at the very end of their transaction, just before COMMIT, under the row lock of the
``events`` counter, which the transaction keeps until it commits: the next appender gets its
numbers only after this one is visible. Taking that lock last means it is never held while
waiting for another row (no deadlock with the rows the transaction locked earlier) and only for
one statement plus the commit: event-writing commits serialise on that window, nothing else.
"""

from __future__ import annotations

from psycopg.types.json import Jsonb

from graphium.records.event import Event
from graphium.store.postgres.session import Connection

_NUMBER_AND_INSERT = """
    WITH counter AS (
        UPDATE counters SET value = value + %(n)s WHERE name = 'events' RETURNING value - %(n)s AS base
    )
    INSERT INTO events (seq, stack_id, doc)
    SELECT counter.base + e.ord, e.stack_id, e.doc || jsonb_build_object('seq', counter.base + e.ord)
    FROM counter, unnest(%(stacks)s::text[], %(docs)s::jsonb[]) WITH ORDINALITY AS e(stack_id, doc, ord)
    RETURNING seq
"""

_TRIM_EVERY = 100  # appends crossing a multiple of this drop the events past retention


def insert_numbered(conn: Connection, events: list[Event], keep: int) -> None:
    """Number ``events`` (in place, in order) and insert them; one round trip in a pipeline."""
    params = {
        "n": len(events),
        "stacks": [e.stack_id for e in events],
        "docs": [Jsonb(e.dump()) for e in events],
    }
    rows = conn.execute(_NUMBER_AND_INSERT, params).fetchall()  # the fetch syncs the pipeline
    first = min(int(r[0]) for r in rows)
    for offset, event in enumerate(events):
        event.seq = first + offset
    last = first + len(events) - 1
    if last // _TRIM_EVERY != (first - 1) // _TRIM_EVERY:
        conn.execute("DELETE FROM events WHERE seq <= %s", (last - keep,))


__all__ = ["insert_numbered"]
