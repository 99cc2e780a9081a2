"""Wake-ups across servers: every commit with events NOTIFYs, every store LISTENs.

Each server tells its own waiters of its own commits through the commit hooks; what the other
replicas commit arrives as a notification on the ``graphium_changes`` channel, sent inside the
committing transaction (so PostgreSQL delivers it only if the transaction commits). The payload
is compact JSON: ``{"o": origin, "h": [hosts], "c": everyone}``: the sending store instance,
the hosts whose tasks the events touch (their long-polling claims wake), and whether a task
completed (which may unblock dependants on any host: everyone wakes), the same rule as the
server's change feed. PostgreSQL caps a payload at 8000 bytes: past that the hosts are dropped
and everyone wakes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from graphium.records.event import Event

CHANNEL = "graphium_changes"
MAX_PAYLOAD = 7900  # bytes; PostgreSQL's limit is 8000

log = logging.getLogger("graphium.store")

Wake = Callable[[frozenset[str], bool], None]


def wake_of(events: list[Event]) -> tuple[frozenset[str], bool]:
    """Whom the events concern: the hosts of the tasks they are about, and whether a task
    completed (then every host's waiters, since dependants anywhere may be runnable now)."""
    hosts = frozenset(e.host_id for e in events if e.task_id is not None and e.host_id)
    everyone = any(e.data.get("status") == "completed" for e in events if e.task_id is not None)
    return hosts, everyone


def payload(origin: str, events: list[Event]) -> str:
    hosts, everyone = wake_of(events)
    text = json.dumps({"o": origin, "h": sorted(hosts), "c": everyone}, separators=(",", ":"))
    if len(text.encode()) > MAX_PAYLOAD:
        text = json.dumps({"o": origin, "h": [], "c": True}, separators=(",", ":"))
    return text


def send(conn: psycopg.Connection[Any], origin: str, events: list[Event]) -> None:
    """Queue the notification in the current transaction (delivered at its commit)."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload(origin, events)))


def parse(text: str) -> tuple[str, frozenset[str], bool] | None:
    """``(origin, hosts, everyone)`` of a payload; None for one this code did not write."""
    try:
        doc = json.loads(text)
        origin, hosts, everyone = doc["o"], doc["h"], doc["c"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(origin, str) or not isinstance(hosts, list) or not isinstance(everyone, bool):
        return None
    return origin, frozenset(h for h in hosts if isinstance(h, str)), everyone


async def listen(
    conninfo: str,
    origin: str,
    wake: Wake,
    describe: Callable[[BaseException], str],
    *,
    listening: asyncio.Event | None = None,
    min_backoff: float = 0.1,
    max_backoff: float = 5.0,
) -> None:
    """Call ``wake(hosts, everyone)`` for every notification of another store instance, until
    cancelled. A dropped connection is reopened with a doubling backoff; after a reconnect
    everyone is woken, since notifications sent meanwhile were lost. ``listening`` is set once
    the first LISTEN is in place."""
    backoff = min_backoff
    connected_before = False
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            log.warning("listening for changes: %s; retrying in %.1fs", describe(exc), backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            if connected_before:
                _call(wake, frozenset(), True)
            connected_before = True
            if listening is not None:
                listening.set()
            backoff = min_backoff
            async for note in conn.notifies():
                parsed = parse(note.payload)
                if parsed is None:
                    _call(wake, frozenset(), True)
                elif parsed[0] != origin:
                    _call(wake, parsed[1], parsed[2])
        except psycopg.Error as exc:
            log.warning("listening for changes: %s; reconnecting", describe(exc))
        finally:
            await conn.close()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff)


def _call(wake: Wake, hosts: frozenset[str], everyone: bool) -> None:
    try:
        wake(hosts, everyone)
    except Exception:
        log.exception("a change listener failed")


__all__ = ["CHANNEL", "MAX_PAYLOAD", "Wake", "listen", "parse", "payload", "send", "wake_of"]
