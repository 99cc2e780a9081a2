"""Wake long-polls and event streams when the store changes, whoever changed it.

Writes made through this server wake waiters at once (:class:`NotifyingStore` calls
:meth:`ChangeFeed.notify`). Writes by other processes sharing the JSON store (the CLI, a runner)
are seen by :meth:`ChangeFeed.watch`, which stats the store's files every ``interval``: a stat is
far cheaper than a claim attempt, so thousands of idle long-polls cost one stat per tick.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

from graphium.plan.model import ObservedHost
from graphium.records.event import Event
from graphium.records.stack import StackRecord
from graphium.records.task import Task, TaskStatus
from graphium.store.base import TaskStore

WATCH_INTERVAL = 0.05


class ChangeFeed:
    """A version counter plus a broadcast wake-up; safe to notify from any thread."""

    def __init__(self, paths: list[Path], interval: float = WATCH_INTERVAL) -> None:
        self._paths = paths
        self._interval = interval
        self._version = 0
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def version(self) -> int:
        return self._version

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _bump(self) -> None:
        self._version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    def notify(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._bump)

    async def wait(self, since: int, timeout: float) -> None:
        """Return once the version moved past ``since``, or after ``timeout`` seconds."""
        if self._version != since:
            return
        event = self._event
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def wait_any(self, timeout: float) -> None:
        await self.wait(self._version, timeout)

    def _identities(self) -> list[tuple[int, int, int] | None]:
        out: list[tuple[int, int, int] | None] = []
        for path in self._paths:
            try:
                st = os.stat(path)
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
        return out

    async def watch(self) -> None:
        """Poll the store's files forever, bumping the version when any of them changed."""
        last = self._identities()
        while True:
            await asyncio.sleep(self._interval)
            now = self._identities()
            if now != last:
                last = now
                self._bump()


class NotifyingStore:
    """A TaskStore that tells a :class:`ChangeFeed` about every write it makes."""

    def __init__(self, inner: TaskStore, feed: ChangeFeed) -> None:
        self.inner = inner
        self._feed = feed
        self._local = threading.local()  # batch depth per thread: threads share one store

    def _depth(self) -> int:
        return int(getattr(self._local, "depth", 0))

    def _changed(self) -> None:
        if self._depth() == 0:
            self._feed.notify()

    # stacks
    def get_stack(self, stack_id: str) -> StackRecord | None:
        return self.inner.get_stack(stack_id)

    def list_stacks(self) -> list[StackRecord]:
        return self.inner.list_stacks()

    def save_stack(self, record: StackRecord, *, expected_revision: int | None = None) -> StackRecord:
        out = self.inner.save_stack(record, expected_revision=expected_revision)
        self._changed()
        return out

    def delete_stack(self, stack_id: str) -> None:
        self.inner.delete_stack(stack_id)
        self._changed()

    # tasks
    def create_tasks(self, tasks: list[Task]) -> None:
        self.inner.create_tasks(tasks)
        self._changed()

    def get_task(self, task_id: str) -> Task:
        return self.inner.get_task(task_id)

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        stack_id: str | None = None,
        host_id: str | None = None,
    ) -> list[Task]:
        return self.inner.list_tasks(status=status, stack_id=stack_id, host_id=host_id)

    def transition(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        agent_id: str | None = None,
        expected: TaskStatus | None = None,
    ) -> Task:
        out = self.inner.transition(
            task_id, status, error=error, result=result, agent_id=agent_id, expected=expected
        )
        self._changed()
        return out

    def claim(self, host_id: str, agent_id: str, lease_seconds: float) -> Task | None:
        return self.inner.claim(host_id, agent_id, lease_seconds)  # takes work, makes none

    def claim_many(
        self, host_id: str, agent_id: str, lease_seconds: float, limit: int, *, start: bool = False
    ) -> list[Task]:
        return self.inner.claim_many(host_id, agent_id, lease_seconds, limit, start=start)

    def heartbeat(self, task_id: str, agent_id: str, lease_seconds: float) -> Task:
        return self.inner.heartbeat(task_id, agent_id, lease_seconds)

    def requeue_expired(self, now: str | None = None) -> list[Task]:
        out = self.inner.requeue_expired(now)
        if out:
            self._changed()
        return out

    def stats(self, *, stack_id: str | None = None) -> dict[str, int]:
        return self.inner.stats(stack_id=stack_id)

    # events
    def append_events(self, events: list[Event]) -> list[Event]:
        out = self.inner.append_events(events)
        self._changed()
        return out

    def list_events(self, *, after: int = 0, stack_id: str | None = None, limit: int = 1000) -> list[Event]:
        return self.inner.list_events(after=after, stack_id=stack_id, limit=limit)

    # observations
    def save_observation(self, observed: ObservedHost) -> None:
        self.inner.save_observation(observed)

    def get_observation(self, host_id: str) -> tuple[ObservedHost, str] | None:
        return self.inner.get_observation(host_id)

    # grouping
    def batch(self) -> AbstractContextManager[None]:
        return self._batch()

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """Waiters are woken once, after the group is written, not in the middle of it."""
        with self.inner.batch():
            self._local.depth = self._depth() + 1
            try:
                yield
            finally:
                self._local.depth -= 1
        if self._depth() == 0:
            self._feed.notify()


__all__ = ["ChangeFeed", "NotifyingStore"]
