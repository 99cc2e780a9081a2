"""The agent's delivery of task results: batched, one request in flight, retried until it lands.

Each result costs the server a durable write, so :class:`Reporter` sends whatever finished while
its previous batch was on the wire as one request (one write shared by the batch). It knows
nothing of HTTP: the agent gives it the function that sends a batch, which raises
:class:`Unreachable` (retry later, with :class:`Backoff`) or :class:`Refused` (for good).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["REPORT_BATCH", "Answer", "Backoff", "Refused", "Reporter", "Unreachable", "batch_answers"]

#: Most results one report carries (the server's cap).
REPORT_BATCH = 1000

#: The server's answer for one task of a batch: (HTTP-like code, detail).
Answer = tuple[int, str]


class Unreachable(Exception):
    """The server could not be reached or answered 5xx: retry later."""


class Refused(Exception):
    """The server refused the request for good (4xx other than 409/404 on a task)."""


class Backoff:
    """Capped exponential backoff with jitter, so restarted servers are not stampeded."""

    def __init__(self, base: float = 0.1, cap: float = 5.0) -> None:
        self.base, self.cap, self.attempts = base, cap, 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempts)
        self.attempts += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempts = 0


@dataclass
class _Report:
    """A status change waiting to be sent; ``done`` gets the server's answer, or None when it was
    given up (lease lost, forced stop)."""

    body: dict[str, Any]
    lost: asyncio.Event
    done: asyncio.Future[Answer | None]

    def settle(self, answer: Answer | None) -> None:
        if not self.done.done():  # its task may have been cancelled meanwhile
            self.done.set_result(answer)


def batch_answers(items: Any, count: int) -> list[Answer]:
    """Per-task answers from a batch report's JSON answer, in request order."""
    try:
        if isinstance(items, list) and len(items) == count:
            return [(int(i["code"]), str(i.get("detail") or "")) for i in items]
    except (ValueError, TypeError, KeyError):
        pass
    return [(502, "the server answered an unreadable batch result")] * count


class Reporter:
    """Queue of results and the loop that sends them (run :meth:`run` as a task).

    ``send(bodies)`` delivers one batch and returns the answers in order. ``force`` set means a
    forced stop: every waiting report is given up. ``on_unreachable``/``on_back`` let the agent log
    an outage once.
    """

    def __init__(
        self,
        send: Callable[[list[dict[str, Any]]], Awaitable[list[Answer]]],
        *,
        force: asyncio.Event,
        backoff_cap: float,
        on_unreachable: Callable[[BaseException], None],
        on_back: Callable[[], None],
    ) -> None:
        self._send = send
        self._force = force
        self._backoff_cap = backoff_cap
        self._on_unreachable = on_unreachable
        self._on_back = on_back
        self._queue: list[_Report] = []
        self._ready = asyncio.Event()

    async def deliver(self, body: dict[str, Any], lost: asyncio.Event) -> Answer | None:
        """Queue ``body`` and wait for the server's answer; None when given up (``lost`` was set
        before it went out, or a forced stop)."""
        done: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Report(body, lost, done))
        self._ready.set()
        return await done

    async def run(self) -> None:
        """Send queued reports in batches with one request in flight: whatever ended while the
        previous batch was on the wire goes in the next. Unreachable server: retried with backoff
        until it lands."""
        backoff = Backoff(cap=self._backoff_cap)
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                if self._force.is_set():  # a forced stop gives every report up
                    for report in self._queue:
                        report.settle(None)
                    self._queue.clear()
                    break
                batch, self._queue = self._queue[:REPORT_BATCH], self._queue[REPORT_BATCH:]
                live = [r for r in batch if not r.lost.is_set()]
                for report in batch:
                    if report.lost.is_set():
                        report.settle(None)
                if live and await self._send_batch(live, backoff):
                    backoff.reset()

    async def _send_batch(self, live: list[_Report], backoff: Backoff) -> bool:
        """One attempt at ``live``; True when the server answered. Unreachable: the batch goes
        back first in line after a backoff pause (cut short by a forced stop)."""
        try:
            answers = await self._send([r.body for r in live])
        except Unreachable as exc:
            self._on_unreachable(exc)
            self._queue[:0] = live
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._force.wait(), backoff.next_delay())
            return False
        except Refused as exc:
            for report in live:
                report.settle((400, str(exc)))
            return False
        self._on_back()
        for report, answer in zip(live, answers, strict=True):
            report.settle(answer)
        return True
