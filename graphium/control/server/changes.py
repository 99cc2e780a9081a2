"""Wake long-polls and event streams when the store changes, and only then.

Waiting is driven by real changes, never by a timer: an idle server with a hundred agents in
claim long-polls does no work at all until something happens.

* Writes made through this server wake waiters once they are durable, through the store's commit
  hook, and by topic: a commit whose events touch tasks of host ``vm1`` wakes the claim long-polls
  of ``vm1`` (and, when a task completed, every host's, since dependants may sit anywhere); any
  commit with events wakes the event streams and the background runs. A commit without events
  (an agent's contact written by the task monitor, an observation) makes nothing claimable and
  wakes nobody.
* Writes by other processes sharing the JSON store (``graphium-run apply`` on the same file) are
  seen through inotify on the store's directory; the store then says whether the change
  was someone else's, and if so every waiter wakes, since we cannot tell what changed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from graphium.records.event import Event
from graphium.store.base import TaskStore
from graphium.store.files import file_identity

log = logging.getLogger("graphium.control.server")

#: Without inotify, the store's files are stat-ed this often.
FALLBACK_POLL = 0.5


class ChangeFeed:
    """Version counters (one for everything, one per host) and broadcast wake-ups; safe to
    notify from any thread."""

    def __init__(self) -> None:
        self._version = 0
        self._event = asyncio.Event()
        self._everyone = 0  # wake-ups of every host: part of each host's version
        self._hosts: dict[str, int] = {}
        self._host_events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard = threading.Lock()
        self._due_hosts: set[str] = set()  # hosts to wake at the next bump (guarded)
        self._due_all = False
        self._scheduled = False  # a bump is already on its way to the loop

    @property
    def version(self) -> int:
        return self._version

    def host_version(self, host_id: str) -> int:
        return self._everyone + self._hosts.get(host_id, 0)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def attach(self, store: TaskStore) -> None:
        """Be notified after every durable commit made through ``store``."""
        store.on_commit(self._committed)

    def _committed(self, events: list[Event]) -> None:
        if not events:
            return
        hosts = {e.host_id for e in events if e.task_id is not None and e.host_id}
        everyone = any(e.data.get("status") == "completed" for e in events if e.task_id is not None)
        self.notify(hosts, everyone=everyone)

    def notify(self, hosts: set[str] | frozenset[str] = frozenset(), *, everyone: bool = True) -> None:
        """Wake the event waiters and the claim waiters of ``hosts`` (of every host when
        ``everyone``) soon; notifications in a burst wake them once."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._guard:
            self._due_hosts |= hosts
            self._due_all = self._due_all or everyone
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop.call_soon_threadsafe(self._bump)
        except RuntimeError:  # the loop closed meanwhile
            with self._guard:
                self._scheduled = False

    def _bump(self) -> None:
        with self._guard:
            self._scheduled = False
            hosts, self._due_hosts = self._due_hosts, set()
            everyone, self._due_all = self._due_all, False
        self._version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()
        if everyone:
            self._everyone += 1
            hosts = set(self._host_events)
        else:
            for host in hosts:
                self._hosts[host] = self._hosts.get(host, 0) + 1
        for host in hosts:
            waiting = self._host_events.pop(host, None)
            if waiting is not None:
                waiting.set()

    async def wait(self, since: int, timeout: float) -> None:
        """Return once anything changed after version ``since``, or after ``timeout`` seconds."""
        if self._version != since:
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)

    async def wait_any(self, timeout: float) -> None:
        await self.wait(self._version, timeout)

    async def wait_host(self, host_id: str, since: int, timeout: float) -> None:
        """Return once ``host_id``'s tasks may have changed after its version ``since``, or after
        ``timeout`` seconds."""
        if self.host_version(host_id) != since:
            return
        event = self._host_events.get(host_id)
        if event is None:
            event = self._host_events[host_id] = asyncio.Event()
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def watch(self, paths: list[Path], foreign: Callable[[], bool]) -> None:
        """Wake everyone when another process wrote the store: inotify on the store's directory
        (its descriptor in the event loop, so waiting costs nothing), then ``foreign()`` (in a
        thread) says whether a change was not this server's own. Without inotify (not Linux),
        the files are stat-ed every FALLBACK_POLL seconds instead."""
        try:
            from inotify_simple import INotify, flags  # type: ignore[import-untyped]

            inotify = INotify()
        except (ImportError, AttributeError, OSError):
            await self._poll(paths, foreign)
            return
        names = {p.name for p in paths}
        ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        with inotify:
            # journal appends modify, compactions rename into place; not CLOSE_WRITE, which the
            # store's lock file sends at every transaction
            inotify.add_watch(paths[0].parent, flags.MODIFY | flags.MOVED_TO | flags.CREATE)
            loop.add_reader(inotify.fileno(), ready.set)
            try:
                while True:
                    await ready.wait()
                    ready.clear()
                    if any(e.name in names for e in inotify.read(timeout=0)):
                        await self._check(foreign)
            finally:
                loop.remove_reader(inotify.fileno())

    async def _poll(self, paths: list[Path], foreign: Callable[[], bool]) -> None:
        last = [file_identity(p) for p in paths]
        while True:
            await asyncio.sleep(FALLBACK_POLL)
            now = [file_identity(p) for p in paths]
            if now != last:
                last = now
                await self._check(foreign)

    async def _check(self, foreign: Callable[[], bool]) -> None:
        elsewhere: bool = await asyncio.to_thread(foreign)
        if elsewhere:
            self.notify(everyone=True)


__all__ = ["ChangeFeed"]
