"""What an agent tells the server about itself and its host: who it is, and what runs there.

The agent registers once (id, version, slots, engine version: the agents' list shows them) and
then reports the host's graphium-managed containers whenever tasks ended, one report at a time
covering every task that ended meanwhile. Both are best effort and retried with backoff; an
observation not yet delivered is re-sent as it is for a while, so an outage does not turn into
an engine-polling loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

from graphium.control.reporter import Backoff, Refused, Unreachable
from graphium.docker.protocol import ContainerEngine
from graphium.errors import GraphiumError
from graphium.plan.model import ObservedHost

log = logging.getLogger("graphium.control.agent")

#: An observation not yet delivered is re-sent as it is for this long, then taken afresh.
OBSERVED_MAX_AGE = 10.0
VERSION = metadata.version("graphium")

#: ``request(method, url, json=..., ok=...)``: the agent's one request function.
Request = Callable[..., Awaitable[Any]]


class SelfReport:
    """Registration and observed-state reports of one agent."""

    def __init__(
        self, request: Request, engine: ContainerEngine, *, agent_id: str, slots: int, backoff_cap: float
    ) -> None:
        self._request = request
        self._engine = engine
        self._agent_id = agent_id
        self._slots = slots
        self._backoff_cap = backoff_cap
        self._registered = False
        self._observed: ObservedHost | None = None
        self._observed_at = 0.0
        self._wanted = asyncio.Event()

    def engine_changed(self) -> None:
        """A task ended: observe afresh and report soon."""
        self._observed = None
        self._wanted.set()

    async def first(self) -> None:
        """Register and report once at start; what fails is retried by :meth:`run`."""
        if not await self.report():
            self._wanted.set()

    async def run(self) -> None:
        """Report whenever wanted, forever (cancelled when the agent stops)."""
        backoff = Backoff(cap=self._backoff_cap)
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if await self.report():
                backoff.reset()
            else:
                self._wanted.set()
                await asyncio.sleep(backoff.next_delay())

    async def report(self) -> bool:
        """Register if not yet done, then tell the server what graphium-managed containers this
        host has (planning uses it); False when it failed."""
        host = self._engine.host_id
        if not self._registered:
            self._registered = await self._register()
        now = time.monotonic()
        if self._observed is None or now - self._observed_at > OBSERVED_MAX_AGE:
            try:
                self._observed = await self._engine.observe()
            except GraphiumError as exc:
                self._observed = ObservedHost(host=host, error=str(exc))
                log.warning("cannot observe the engine: %s", exc)
            self._observed_at = now
        try:
            await self._request("PUT", f"/agents/{host}/observed", json=self._observed.dump(), ok=(200, 204))
        except (Unreachable, Refused) as exc:
            log.debug("observed state not reported: %s", exc)
            return False
        return self._registered

    async def _register(self) -> bool:
        host = self._engine.host_id
        try:
            engine: str | None = await self._engine.server_version()
        except GraphiumError:
            engine = None
        body = {
            "agentId": self._agent_id,
            "hostId": host,
            "version": VERSION,
            "slots": self._slots,
            "engineVersion": engine,
        }
        try:
            await self._request("PUT", f"/agents/{host}/registration", json=body)
        except Unreachable as exc:
            log.debug("registration not sent: %s", exc)
            return False
        except Refused as exc:  # a server without the route: carry on unregistered
            log.warning("the server refused the registration: %s", exc)
        return True


__all__ = ["OBSERVED_MAX_AGE", "VERSION", "SelfReport"]
