"""Connections and transactions of the PostgreSQL store: a pool, batches pinned to their thread.

The server calls one store from several threads at once (``asyncio.to_thread``), so every
operation takes its own pooled connection, except inside ``batch()``, where the thread's
operations all join the batch's transaction (``threading.local``, not a contextvar: a copied
context must never share a connection with another thread). An operation inside a batch runs
in a savepoint, so one that fails (a refused transition the caller catches) undoes only itself.

The outermost transaction sends the NOTIFY of its events just before COMMIT (delivered only if it
commits) and runs the commit hooks after it, in the committing thread.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from graphium.errors import GraphiumError, StoreError
from graphium.records.event import Event
from graphium.store.base import CommitHook
from graphium.store.memory import brief

log = logging.getLogger("graphium.store")

Connection = psycopg.Connection[tuple[Any, ...]]


@dataclass
class Frame:
    """The transaction a thread's batch (or single write) is in, and what it did so far."""

    conn: Connection
    events: list[Event] = field(default_factory=list)
    wrote: bool = False


def describe(exc: BaseException, where: str, secret: str | None) -> str:
    """A one-line error naming the database (no password: not even one a driver echoed)."""
    text = brief(exc) if isinstance(exc, Exception) else type(exc).__name__
    if secret:
        text = text.replace(secret, "***")
    return f"{where}: {text}"


class IdleCheck:
    """The pool's check of a connection it hands out: one that sat idle for ``seconds`` is
    pinged first (a database restart or an idle timeout leaves dead connections in the pool;
    handing one out would fail the caller's operation), a busy one is trusted (no round trip)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._returned: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    def check(self, conn: Connection) -> None:
        returned = self._returned.get(conn)
        if returned is None or time.monotonic() - returned >= self.seconds:
            conn.execute("")  # raises if the connection is dead: the pool replaces it

    def reset(self, conn: Connection) -> None:
        self._returned[conn] = time.monotonic()


class Sessions:
    """The pool and the per-thread transaction frames of one store instance."""

    def __init__(
        self,
        pool: ConnectionPool[Connection],
        where: str,
        secret: str | None,
        before_commit: Callable[[Connection, list[Event]], None],
    ) -> None:
        self.pool = pool
        self.where = where  # the URL without its password
        self._secret = secret
        self._before_commit = before_commit
        self._local = threading.local()
        self._hooks: list[CommitHook] = []  # replaced, never changed in place: read without a lock
        self._hooks_lock = threading.Lock()
        self.closed = False

    def error(self, exc: BaseException) -> StoreError:
        return StoreError(describe(exc, self.where, self._secret))

    # hooks ----------------------------------------------------------------------------------
    def add_hook(self, hook: CommitHook) -> Callable[[], None]:
        with self._hooks_lock:
            self._hooks = [*self._hooks, hook]

        def remove() -> None:
            with self._hooks_lock:
                self._hooks = [h for h in self._hooks if h is not hook]

        return remove

    def _run_hooks(self, events: list[Event]) -> None:
        for hook in self._hooks:
            try:
                hook(events)
            except Exception:
                log.exception("%s: a commit hook failed", self.where)

    # transactions ---------------------------------------------------------------------------
    def frame(self) -> Frame | None:
        frame: Frame | None = getattr(self._local, "frame", None)
        return frame

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection to read with: the batch's, or a pooled one in autocommit (one round trip)."""
        frame = self.frame()
        if frame is not None:
            yield frame.conn
            return
        with self._translated(), self._checkout() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Frame]:
        """One operation's transaction: a savepoint inside a batch, else a transaction of its own."""
        frame = self.frame()
        if frame is None:
            with self.batch() as outer:
                outer.wrote = True
                yield outer
            return
        mark = len(frame.events)
        try:
            with self._translated(), frame.conn.transaction():
                yield frame
        except BaseException:
            del frame.events[mark:]
            raise
        frame.wrote = True

    @contextmanager
    def batch(self) -> Iterator[Frame]:
        """The thread's outermost transaction (joined by everything the thread does inside it)."""
        frame = self.frame()
        if frame is not None:  # a nested batch joins the outer one
            yield frame
            return
        with self._translated(), self._checkout() as conn:
            frame = Frame(conn)
            self._local.frame = frame
            try:
                with conn.transaction():
                    yield frame
                    if frame.events:
                        self._before_commit(conn, frame.events)
            finally:
                self._local.frame = None
        if frame.wrote:
            self._run_hooks(frame.events)

    @contextmanager
    def _checkout(self) -> Iterator[Connection]:
        if self.closed:
            raise StoreError(f"{self.where}: the store is closed")
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors become StoreError naming the database; graphium's own errors pass."""
        try:
            yield
        except GraphiumError:
            raise
        except psycopg.Error as exc:
            raise self.error(exc) from exc


__all__ = ["Connection", "Frame", "IdleCheck", "Sessions", "describe"]
