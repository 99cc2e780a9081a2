"""Leadership among servers sharing one database: a session-level advisory lock.

The task monitor must run on one replica at a time. Each replica's :class:`Leadership` keeps a
dedicated connection and tries ``pg_try_advisory_lock``; PostgreSQL releases the lock the moment
that session ends, so when the leader's process dies (or its connection drops) another replica's
next :meth:`Leadership.try_acquire` takes over. A leader whose connection died learns it at its
next call (False), and may lead again later.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

log = logging.getLogger("graphium.store")


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (the same in every process)."""
    digest = hashlib.sha256(f"graphium.leadership:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """Whether this process leads ``name``; thread-safe."""

    def __init__(self, conninfo: str, name: str, describe: Callable[[BaseException], str]) -> None:
        self.name = name
        self.key = lock_key(name)
        self._conninfo = conninfo
        self._describe = describe
        self._conn: psycopg.Connection[Any] | None = None
        self._held = False
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._held

    def try_acquire(self) -> bool:
        """True while this process holds the lock (checking the connection still lives); takes it
        when free. False when another process leads or the database cannot be reached."""
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._held = False
                    self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
                if self._held:
                    self._conn.execute("SELECT 1")
                    return True
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                self._held = bool(row and row[0])
                return self._held
            except psycopg.Error as exc:
                if self._held:
                    log.warning("leadership of %s lost: %s", self.name, self._describe(exc))
                self._drop()
                return False

    def release(self) -> None:
        """Give leadership up: unlocked before the connection closes, since a closed connection's
        backend lets go of its locks only once it has exited, which another process may not
        see yet when it tries next."""
        with self._lock:
            if self._held and self._conn is not None and not self._conn.closed:
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            self._drop()

    def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def __repr__(self) -> str:
        return f"Leadership({self.name!r}, held={self._held})"


__all__ = ["Leadership", "lock_key"]
