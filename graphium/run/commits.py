"""Group commit: the store writes of tasks that start or end at about the same moment, in one batch.

Every store batch is one durable write (for the JSON store, one fsynced journal line under the
file lock; for PostgreSQL, one transaction), and the runner made two per task: one when it starts,
one when it ends, each with its event, the second also rewriting the stack record's progress.
Tasks start in bursts (every task a scheduling pass made runnable) and often end close together,
so each write waits up to ``window`` seconds for others to join it: one batch then holds them
all, and the work done once per batch (the stack's progress) is done once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from graphium.store.base import TaskStore

__all__ = ["GroupCommit"]

_T = TypeVar("_T")
DEFAULT_WINDOW = 0.003  # seconds a write waits for others; short next to any task


class GroupCommit:
    """Runs write functions inside shared store batches, then ``after(outcomes)`` once per batch.

    Each function is applied in its own right: one that raises gets its own exception back and
    the others still commit (a store runs each operation of a batch atomically). A failure of the
    batch itself (the commit) reaches every writer of that batch.
    """

    def __init__(
        self,
        store: TaskStore,
        *,
        window: float = DEFAULT_WINDOW,
        after: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._store = store
        self._window = window
        self._after = after
        self._queue: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        self._scheduled: asyncio.TimerHandle | None = None

    async def write(self, fn: Callable[[], _T]) -> _T:
        """``fn()`` inside the next shared batch; its result once that batch is durable."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_T] = loop.create_future()
        self._queue.append((fn, done))
        if self._scheduled is None:
            self._scheduled = loop.call_later(self._window, self.flush)
        return await asyncio.shield(done)  # a cancelled writer's change is written all the same

    def flush(self) -> None:
        """Write everything queued now, in one batch."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        queue, self._queue = self._queue, []
        if not queue:
            return
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            with self._store.batch():
                for fn, done in queue:
                    try:
                        outcomes.append((done, fn(), None))
                    except Exception as exc:
                        outcomes.append((done, None, exc))
                if self._after is not None:
                    self._after([value for _, value, error in outcomes if error is None])
        except BaseException as exc:
            for _, done in queue:
                if not done.done():
                    done.set_exception(exc)
            return
        for done, value, error in outcomes:
            if done.done():
                continue
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(value)
