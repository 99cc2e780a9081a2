"""One engine's container event stream, shared by every wait on that host.

A deploy must see that its container stays up (no health check) or turns healthy. Polling with
inspects cost ~4 requests per container, each a round trip over SSH and work for a busy engine;
the engine already says when a container dies, is killed for memory or changes health. So one
``GET /events`` stream per engine (``die``, ``oom``, ``health_status``), opened on the first wait
and read by its own thread, wakes the waits it concerns. A stream that ends (engine restart, read
timeout, close) is reported to its waiters, which fall back to polling; the next wait opens a new
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ContainerEvents", "Subscription"]

_FILTERS = {"type": ["container"], "event": ["die", "oom", "health_status"]}
_ENDED = "ended"  # what a waiter's queue gets when its stream is gone


class Subscription:
    """One container's share of the stream: its events, in order, while the stream lasts."""

    def __init__(self, owner: ContainerEvents, container_id: str, stream: int) -> None:
        self._owner = owner
        self.container_id = container_id
        self.stream = stream  # the stream it was made on (its generation)
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.broken = False

    @property
    def intact(self) -> bool:
        """Whether every event of the container since the subscription reached the queue."""
        return not self.broken and self._owner.live_stream == self.stream

    async def next(self, timeout: float) -> str | None:
        """The next event's action (``die``, ``health_status: healthy``…), or None after
        ``timeout`` without one; marks the subscription broken when the stream ended."""
        try:
            action = await asyncio.wait_for(self.queue.get(), max(0.0, timeout))
        except TimeoutError:
            return None
        if action == _ENDED:
            self.broken = True
        return action

    def close(self) -> None:
        self._owner.unsubscribe(self)


class ContainerEvents:
    """The event stream of one engine; ``client`` makes the docker-py client (in a thread)."""

    def __init__(self, client: Callable[[], Any], host_id: str) -> None:
        self._client = client
        self.host_id = host_id
        self.live_stream = 0  # generation of the stream now read, 0 when none is
        self._generation = 0
        self._opening: asyncio.Future[int] | None = None
        self._stream: Any = None
        self._waiters: dict[str, list[Subscription]] = {}
        self._closed = False

    async def subscribe(self, container_id: str) -> Subscription | None:
        """Start following ``container_id`` (opening the stream if needed); None when the stream
        cannot be had (the caller polls instead). Events from the moment this returns arrive."""
        if self._closed:
            return None
        if not self.live_stream:
            if self._opening is None or self._opening.done():
                self._opening = asyncio.get_running_loop().create_future()
                self._start(self._opening)
            try:
                await asyncio.shield(self._opening)
            except Exception:  # no stream (the engine refused it): poll
                return None
        subscription = Subscription(self, container_id, self.live_stream)
        self._waiters.setdefault(container_id, []).append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subs = self._waiters.get(subscription.container_id, [])
        if subscription in subs:
            subs.remove(subscription)
        if not subs:
            self._waiters.pop(subscription.container_id, None)

    def close(self) -> None:
        """End the stream (its thread ends with it); idempotent."""
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    # the reading thread ---------------------------------------------------------------------------
    def _start(self, opened: asyncio.Future[int]) -> None:
        self._generation += 1
        loop = asyncio.get_running_loop()
        thread = threading.Thread(
            target=self._read,
            args=(loop, opened, self._generation),
            name=f"docker-events-{self.host_id}",
            daemon=True,
        )
        thread.start()

    def _read(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[int], generation: int) -> None:
        """Open the stream, say so, then hand every event to the loop until the stream ends."""
        try:
            stream = self._client().events(decode=True, filters=_FILTERS)
        except BaseException as exc:
            _call_soon(loop, _fail, opened, exc)
            return
        self._stream = stream
        _call_soon(loop, self._opened, opened, generation)
        try:
            for event in stream:
                _call_soon(loop, self._dispatch, event)
        except Exception:  # a broken stream ends like a closed one
            pass
        finally:
            if self._stream is stream:
                self._stream = None
            with contextlib.suppress(Exception):
                stream.close()
            _call_soon(loop, self._ended, generation)

    def _opened(self, opened: asyncio.Future[int], generation: int) -> None:
        if self._closed:
            with contextlib.suppress(Exception):
                self.close()
        self.live_stream = generation
        if not opened.done():
            opened.set_result(generation)

    def _dispatch(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        actor = event.get("Actor") or {}
        container_id = str(event.get("id") or actor.get("ID") or "")
        action = str(event.get("Action") or event.get("status") or "")
        for subscription in self._waiters.get(container_id, ()):
            subscription.queue.put_nowait(action)

    def _ended(self, generation: int) -> None:
        if self.live_stream == generation:
            self.live_stream = 0
        for subs in self._waiters.values():
            for subscription in subs:
                if subscription.stream == generation:
                    subscription.queue.put_nowait(_ENDED)


def _fail(future: asyncio.Future[int], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Hand ``fn(*args)`` to the loop; nothing when the loop is gone (the process is ending)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn, *args)
