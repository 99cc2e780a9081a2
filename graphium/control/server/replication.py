"""What differs when several server processes (replicas) share one store.

Two things depend on the store, and are decided here so that the app does not branch on it:

* **Other processes' commits.** A store that can tell of them (PostgreSQL: ``LISTEN/NOTIFY``,
  ``store.listen(wake)``) wakes the change feed by topic, like this server's own commits do.
  The JSON file cannot: its directory is watched (inotify) and everyone wakes when another
  process wrote it.
* **Who runs the task monitor.** Requeueing expired leases and settling stacks must happen on
  one replica at a time. A store that offers leadership (a PostgreSQL session advisory lock,
  ``store.leadership(name)``) gives it to one replica; the others try again every
  ``LEADER_CHECK`` seconds, so when the leader dies (its session ends, the lock goes) another
  takes over within that. A JSON store has one server: it always leads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable

from graphium.control.server.changes import ChangeFeed
from graphium.store.base import TaskStore

log = logging.getLogger("graphium.control.server")

#: How often a replica that does not lead checks whether the leader is gone.
LEADER_CHECK = 2.0
MONITOR_LOCK = "task-monitor"


@runtime_checkable
class ListeningStore(Protocol):
    """A store that hears other processes' commits."""

    def listen(self, wake: Callable[[frozenset[str], bool], None]) -> Coroutine[Any, Any, None]: ...


class Lock(Protocol):
    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


@runtime_checkable
class LeadingStore(Protocol):
    """A store that can elect one of the processes sharing it."""

    def leadership(self, name: str) -> Lock: ...


def watch_others(store: TaskStore, feed: ChangeFeed) -> Coroutine[Any, Any, None]:
    """The background job that wakes ``feed`` when another process commits to ``store``."""
    if isinstance(store, ListeningStore):
        return store.listen(lambda hosts, everyone: feed.notify(hosts, everyone=everyone))
    from graphium.store.json_store import JsonTaskStore

    if not isinstance(store, JsonTaskStore):
        raise TypeError(f"cannot watch {type(store).__name__} for other processes' changes")
    return feed.watch([store.path, store.journal_path], store.changed_elsewhere)


class MonitorLeadership:
    """Whether this replica runs the task monitor now (see the module)."""

    def __init__(self, store: TaskStore) -> None:
        self._lock = store.leadership(MONITOR_LOCK) if isinstance(store, LeadingStore) else None
        self._leading = self._lock is None
        self.shared = self._lock is not None  # other replicas may lead instead

    @property
    def leading(self) -> bool:
        return self._leading

    async def check(self) -> bool:
        """Whether this replica leads, taking the lead when it is free (and saying so)."""
        if self._lock is None:
            return True
        leading = await asyncio.to_thread(self._lock.try_acquire)
        if leading != self._leading:
            log.info("task monitor: %s", "this replica leads" if leading else "another replica leads")
        self._leading = leading
        return leading

    def release(self) -> None:
        """Give the lead up at shutdown, so another replica takes it at its next check."""
        if self._lock is not None:
            self._lock.release()
            self._leading = False


__all__ = ["LEADER_CHECK", "MONITOR_LOCK", "MonitorLeadership", "watch_others"]
