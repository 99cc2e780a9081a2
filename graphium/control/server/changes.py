"""Wake long-polls and event streams when the store changes, whoever changed it.

Writes made through this server wake waiters once they are durable: :meth:`ChangeFeed.attach`
registers a commit hook on the store. Writes by other processes sharing the JSON store (the CLI,
a runner) are seen by :meth:`ChangeFeed.watch`, which stats the store's files every ``interval``:
a stat is far cheaper than a claim attempt, so thousands of idle long-polls cost one stat per tick.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress
from pathlib import Path

from graphium.records.event import Event
from graphium.store.base import TaskStore
from graphium.store.files import file_identity

WATCH_INTERVAL = 0.05


class ChangeFeed:
    """A version counter plus a broadcast wake-up; safe to notify from any thread."""

    def __init__(self, paths: list[Path], interval: float = WATCH_INTERVAL) -> None:
        self._paths = paths
        self._interval = interval
        self._version = 0
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False  # a bump is already on its way to the loop
        self._guard = threading.Lock()

    @property
    def version(self) -> int:
        return self._version

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def attach(self, store: TaskStore) -> None:
        """Be notified after every durable commit made through ``store``."""
        store.on_commit(self._committed)

    def _committed(self, _: list[Event]) -> None:
        self.notify()

    def _bump(self) -> None:
        with self._guard:
            self._scheduled = False
        self._version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def notify(self) -> None:
        """Wake every waiter soon; commits in a burst wake them once."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._guard:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._bump)
        except RuntimeError:  # the loop closed meanwhile
            with self._guard:
                self._scheduled = False

    async def wait(self, since: int, timeout: float) -> None:
        """Return once the version moved past ``since``, or after ``timeout`` seconds."""
        if self._version != since:
            return
        event = self._event
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def wait_any(self, timeout: float) -> None:
        await self.wait(self._version, timeout)

    async def watch(self) -> None:
        """Poll the store's files forever, bumping the version when any of them changed."""
        last = [file_identity(p) for p in self._paths]
        while True:
            await asyncio.sleep(self._interval)
            now = [file_identity(p) for p in self._paths]
            if now != last:
                last = now
                self._bump()


__all__ = ["ChangeFeed"]
